//! Where a gRPC task's message types come from, resolved once per plan and shared by every
//! user: `.proto` files compiled when the plan is (protox, with import paths), a descriptor set
//! file (`protoc -o`, `buf build -o`), or the server's reflection service (`grpc.reflection.v1`,
//! falling back to `v1alpha`), asked on the first call to each target.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Uri;
use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use tokio::sync::OnceCell;
use tonic::Code;

use super::super::net::Endpoint;
use super::super::{Failure, FailureKind};
use super::conn::H2;

/// Files a reflection answer may pull in, at most: a bound on what a server can make `ld` hold.
const MAX_FILES: usize = 512;

/// A task's descriptors: known now, or asked of the server once.
#[derive(Debug, Clone)]
pub(super) enum Schema {
    Static(DescriptorPool),
    Reflect(Arc<Reflected>),
}

/// The descriptors a target's reflection service gave, asked once; a failed attempt (the
/// server was not up yet) is retried by the next call.
#[derive(Debug, Default)]
pub(super) struct Reflected {
    pool: OnceCell<DescriptorPool>,
}

/// Every schema of a plan, keyed by what it was made from, so tasks share them.
#[derive(Debug, Default)]
pub(crate) struct Schemas {
    files: HashMap<(Vec<PathBuf>, Vec<PathBuf>), DescriptorPool>,
    sets: HashMap<PathBuf, DescriptorPool>,
    reflected: HashMap<String, Arc<Reflected>>,
}

impl Schemas {
    /// `.proto` files compiled with `includes` (each file's own directory is added).
    pub(super) fn protos(
        &mut self,
        files: Vec<PathBuf>,
        mut includes: Vec<PathBuf>,
    ) -> Result<Schema, String> {
        let key = (files.clone(), includes.clone());
        if let Some(p) = self.files.get(&key) {
            return Ok(Schema::Static(p.clone()));
        }
        for f in &files {
            let dir = f.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !includes.contains(&dir) {
                includes.push(dir);
            }
        }
        let mut compiler = protox::Compiler::new(&includes).map_err(|e| e.to_string())?;
        compiler.include_imports(true);
        for f in &files {
            compiler.open_file(f).map_err(|e| format!("{e}"))?;
        }
        let pool = compiler.descriptor_pool();
        self.files.insert(key, pool.clone());
        Ok(Schema::Static(pool))
    }

    /// A binary `FileDescriptorSet`.
    pub(super) fn descriptor_set(&mut self, file: PathBuf) -> Result<Schema, String> {
        if let Some(p) = self.sets.get(&file) {
            return Ok(Schema::Static(p.clone()));
        }
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let pool = DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
            format!(
                "{}: not a protobuf FileDescriptorSet (protoc --descriptor_set_out, buf build -o): {e}",
                file.display()
            )
        })?;
        self.sets.insert(file, pool.clone());
        Ok(Schema::Static(pool))
    }

    /// The server's reflection, shared by every task whose target reads `target`.
    pub(super) fn reflect(&mut self, target: &str) -> Schema {
        Schema::Reflect(
            self.reflected
                .entry(target.to_string())
                .or_default()
                .clone(),
        )
    }
}

/// What a call needs from the descriptors.
#[derive(Debug, Clone)]
pub(super) struct Method {
    pub(super) path: PathAndQuery,
    pub(super) input: MessageDescriptor,
    pub(super) output: MessageDescriptor,
    pub(super) client_streaming: bool,
    pub(super) server_streaming: bool,
}

/// The method `service/method` of `pool`, with a near name when there is none.
pub(super) fn method(pool: &DescriptorPool, service: &str, method: &str) -> Result<Method, String> {
    let Some(svc) = pool.get_service_by_name(service) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        let hint = crate::template::nearest(service, known.iter().map(String::as_str));
        return Err(format!(
            "no service `{service}` in the descriptors (services: {}){hint}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    let Some(m) = svc.methods().find(|m| m.name() == method) else {
        let known: Vec<String> = svc.methods().map(|m| m.name().to_string()).collect();
        let hint = crate::template::nearest(method, known.iter().map(String::as_str));
        return Err(format!(
            "service `{service}` has no method `{method}` (methods: {}){hint}",
            known.join(", ")
        ));
    };
    let path = format!("/{}/{}", svc.full_name(), m.name())
        .parse()
        .map_err(|e| format!("invalid method path: {e}"))?;
    Ok(Method {
        path,
        input: m.input(),
        output: m.output(),
        client_streaming: m.is_client_streaming(),
        server_streaming: m.is_server_streaming(),
    })
}

impl Reflected {
    /// The pool, asking the server on the first call (and after a failed one) over a
    /// connection of its own, closed once the answer is in.
    pub(super) async fn pool(
        &self,
        ep: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        origin: &Uri,
        service: &str,
    ) -> Result<DescriptorPool, Failure> {
        self.pool
            .get_or_try_init(|| async {
                let h2 = super::conn::dial(ep, tls).await?;
                reflect(h2, origin.clone(), service.to_string())
                    .await
                    .map_err(|e| Failure::new(FailureKind::Protocol, e))
            })
            .await
            .cloned()
    }
}

/// Asks `grpc.reflection.v1`, then `v1alpha` when the server has only that, for the file that
/// defines `service` and every file it imports.
async fn reflect(h2: H2, origin: Uri, service: String) -> Result<DescriptorPool, String> {
    let files = match v1::files(h2.clone(), origin.clone(), &service).await {
        Err(Ask::Status(s)) if s.code() == Code::Unimplemented => {
            v1alpha::files(h2, origin, &service).await
        }
        other => other,
    }
    .map_err(|e| match e {
        Ask::Status(s) if s.code() == Code::Unimplemented => {
            "the server has no reflection service (grpc.reflection.v1 or v1alpha): give the task \
             `proto` (.proto files) or `descriptor_set`"
                .to_string()
        }
        Ask::Status(s) => format!("server reflection: {} {}", s.code(), s.message()),
        Ask::Other(m) => format!("server reflection: {m}"),
    })?;
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files)
        .map_err(|e| format!("server reflection gave invalid descriptors: {e}"))?;
    Ok(pool)
}

enum Ask {
    Status(tonic::Status),
    Other(String),
}

/// Decodes the files of one answer and queues the imports not seen yet.
fn take_files(
    answer: Vec<Vec<u8>>,
    files: &mut Vec<FileDescriptorProto>,
    seen: &mut HashSet<String>,
    wanted: &mut Vec<String>,
) -> Result<(), Ask> {
    for bytes in answer {
        let file = FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| Ask::Other(format!("undecodable file descriptor: {e}")))?;
        let name = file.name().to_string();
        if !seen.insert(name) {
            continue;
        }
        for dep in &file.dependency {
            if !seen.contains(dep) && !wanted.contains(dep) {
                wanted.push(dep.clone());
            }
        }
        files.push(file);
        if files.len() > MAX_FILES {
            return Err(Ask::Other(format!(
                "more than {MAX_FILES} files in the answer"
            )));
        }
    }
    Ok(())
}

/// A well-known type's file (`google/protobuf/...`) from the built-in pool, for servers that
/// do not serve them.
fn well_known(name: &str) -> Option<FileDescriptorProto> {
    DescriptorPool::global()
        .get_file_by_name(name)
        .map(|f| f.file_descriptor_proto().clone())
}

/// The reflection client of one protocol version: both versions have the same messages under
/// different packages.
macro_rules! reflection_client {
    ($name:ident, $pb:path) => {
        mod $name {
            use std::collections::HashSet;

            use http::Uri;
            use prost_reflect::prost_types::FileDescriptorProto;
            use $pb as pb;
            use pb::server_reflection_client::ServerReflectionClient;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;

            use super::super::conn::H2;
            use super::{Ask, take_files, well_known};

            async fn ask(
                client: &mut ServerReflectionClient<H2>,
                request: MessageRequest,
            ) -> Result<MessageResponse, Ask> {
                let req = pb::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                };
                let mut answers = client
                    .server_reflection_info(futures_util::stream::iter([req]))
                    .await
                    .map_err(Ask::Status)?
                    .into_inner();
                let answer = answers
                    .message()
                    .await
                    .map_err(Ask::Status)?
                    .ok_or_else(|| Ask::Other("no answer".to_string()))?;
                answer
                    .message_response
                    .ok_or_else(|| Ask::Other("an empty answer".to_string()))
            }

            pub(super) async fn files(
                h2: H2,
                origin: Uri,
                service: &str,
            ) -> Result<Vec<FileDescriptorProto>, Ask> {
                let mut client = ServerReflectionClient::with_origin(h2, origin)
                    .max_decoding_message_size(16 << 20);
                let mut files = Vec::new();
                let mut seen = HashSet::new();
                let mut wanted = Vec::new();
                match ask(
                    &mut client,
                    MessageRequest::FileContainingSymbol(service.to_string()),
                )
                .await?
                {
                    MessageResponse::FileDescriptorResponse(r) => {
                        take_files(r.file_descriptor_proto, &mut files, &mut seen, &mut wanted)?
                    }
                    MessageResponse::ErrorResponse(e) => {
                        return Err(Ask::Other(format!(
                            "service `{service}`: {} (code {})",
                            e.error_message, e.error_code
                        )));
                    }
                    _ => return Err(Ask::Other("an unexpected answer".to_string())),
                }
                while let Some(name) = wanted.pop() {
                    if seen.contains(&name) {
                        continue;
                    }
                    match ask(&mut client, MessageRequest::FileByFilename(name.clone())).await? {
                        MessageResponse::FileDescriptorResponse(r) => take_files(
                            r.file_descriptor_proto,
                            &mut files,
                            &mut seen,
                            &mut wanted,
                        )?,
                        _ => match well_known(&name) {
                            Some(f) => {
                                seen.insert(name);
                                files.push(f);
                            }
                            None => {
                                return Err(Ask::Other(format!(
                                    "the server does not give `{name}`, which its descriptors import"
                                )));
                            }
                        },
                    }
                }
                Ok(files)
            }
        }
    };
}

reflection_client!(v1, tonic_reflection::pb::v1);
reflection_client!(v1alpha, tonic_reflection::pb::v1alpha);
