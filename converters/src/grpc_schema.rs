//! Descriptors for showing recorded gRPC messages as JSON (`ld import --proto`): `.proto`
//! files compiled here (protox, no `protoc`), looked up by a call's path. Depends on nothing
//! else in the crate.

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use serde_json::Value;

/// The compiled files, and the paths a plan gives the engine to compile them again.
#[derive(Debug, Clone)]
pub struct GrpcSchema {
    pool: DescriptorPool,
    /// As given, made absolute: the plan may be replayed from another directory.
    pub(crate) protos: Vec<String>,
    pub(crate) import_paths: Vec<String>,
}

/// What JSON a call's messages become.
pub(crate) struct Shown {
    /// One message, or a list for a client-streaming method.
    pub(crate) payload: Value,
}

impl GrpcSchema {
    /// Compiles `protos` with their directories and `import_paths` searched for imports.
    pub fn compile(protos: &[PathBuf], import_paths: &[PathBuf]) -> Result<GrpcSchema, String> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut includes: Vec<PathBuf> = import_paths.iter().map(|p| absolute(p)).collect();
        let files: Vec<PathBuf> = protos.iter().map(|p| absolute(p)).collect();
        for f in &files {
            let dir = f.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !includes.contains(&dir) {
                includes.push(dir);
            }
        }
        let mut compiler = protox::Compiler::new(&includes).map_err(|e| e.to_string())?;
        compiler.include_imports(true);
        for f in &files {
            compiler.open_file(f).map_err(|e| e.to_string())?;
        }
        let text = |p: &PathBuf| p.display().to_string();
        Ok(GrpcSchema {
            pool: compiler.descriptor_pool(),
            protos: files.iter().map(text).collect(),
            import_paths: import_paths.iter().map(|p| text(&absolute(p))).collect(),
        })
    }

    /// The method a call's path (`/package.Service/Method`) names.
    fn method(&self, path: &str) -> Option<MethodDescriptor> {
        let (service, method) = path.trim_start_matches('/').split_once('/')?;
        self.pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }

    /// The recorded messages of the call at `path` as JSON, when the method is known and the
    /// JSON encodes back to exactly the recorded bytes (unknown fields, or an encoder that
    /// wrote fields out of order, would not): replaying the JSON then sends what was
    /// recorded. `None` otherwise.
    pub(crate) fn show(&self, path: &str, messages: &[&[u8]]) -> Option<Shown> {
        let method = self.method(path)?;
        let input = method.input();
        let options = SerializeOptions::new().skip_default_fields(true);
        let mut shown = Vec::with_capacity(messages.len());
        for bytes in messages {
            let message = DynamicMessage::decode(input.clone(), *bytes).ok()?;
            let json = message
                .serialize_with_options(serde_json::value::Serializer, &options)
                .ok()?;
            let again = DynamicMessage::deserialize(input.clone(), json.clone()).ok()?;
            if prost::Message::encode_to_vec(&again) != *bytes {
                return None;
            }
            shown.push(json);
        }
        let payload = if method.is_client_streaming() {
            Value::Array(shown)
        } else if shown.len() == 1 {
            shown.pop()?
        } else {
            return None;
        };
        Some(Shown { payload })
    }
}
