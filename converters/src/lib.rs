//! Importers: turn recordings (HAR), API descriptions (OpenAPI, Postman collections), curl
//! commands and JMeter plans into `ld` plans.
//!
//! Every importer produces the same thing, an [`Import`]: a plan of `LD_start_test` with one HTTP
//! task per kept request and a `status_code` assertion on each, the secrets moved out of it, and
//! a summary of what was kept, dropped and why. The filters, task naming and secrets handling
//! are shared by all formats.
//!
//! This crate depends on the plan model only. It must build without the engine's network stack
//! (no tokio, hyper, reqwest), so that importing stays a fast, small, offline step.

mod canonical;
pub mod curl;
mod detect;
mod error;
mod files;
mod filter;
mod form;
mod grpc_schema;
pub mod har;
pub mod jmeter;
mod learn;
mod naming;
pub mod openapi;
mod output;
mod pm_script;
pub mod postman;
mod secrets;
mod url_parts;
mod words;

#[cfg(test)]
mod test_rand {
    /// One step of xorshift64: the same inputs on every run, no dependency.
    pub(crate) fn step(seed: &mut u64) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
    }
}

pub use error::{Error, Result};
pub use filter::{Filter, header_name, header_names_from_file, patterns_from_file};
pub use grpc_schema::GrpcSchema;
pub use learn::{BodyChecks, Report as CorrelationReport};
pub use output::{GivenLoad, Import, ImportOptions, Summary};
pub use secrets::Secret;

/// The input formats `ld import` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Har,
    Postman,
    OpenApi,
    Curl,
    Jmeter,
}

impl Format {
    /// Every format, in the order detection tries them.
    pub const ALL: &'static [Format] = &[
        Format::Har,
        Format::Postman,
        Format::OpenApi,
        Format::Curl,
        Format::Jmeter,
    ];

    /// The name used by `--from`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Har => "har",
            Format::Postman => "postman",
            Format::OpenApi => "openapi",
            Format::Curl => "curl",
            Format::Jmeter => "jmeter",
        }
    }

    /// The format named `name`, as given to `--from`.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .or(match name.to_ascii_lowercase().as_str() {
                "swagger" => Some(Format::OpenApi),
                "jmx" => Some(Format::Jmeter),
                _ => None,
            })
    }

    /// Recognises a format by the keys of the root object (JSON or YAML), wherever they are in
    /// the content, then by the text tests of each format on its start.
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        detect::detect(bytes)
    }

    /// Like [`Format::detect`], reading from `reader`: a JSON text is walked in chunks, never
    /// held whole; at most 512 MiB are read.
    pub fn detect_reader(reader: impl std::io::Read) -> std::io::Result<Option<Format>> {
        detect::detect_reader(reader)
    }

    /// Recognises a format by the text tests on the start of the content.
    fn detect_head(head: &[u8]) -> Option<Format> {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}').trim_start();
        // A HAR's first key is `log`; a collection names its schema in `info`, which exporters
        // put first or last. The HAR test on words comes after: a collection's requests may
        // contain them.
        if first_key(text) == Some("log") && har::looks_like_har(text) {
            return Some(Format::Har);
        }
        if postman::looks_like_postman(text) {
            return Some(Format::Postman);
        }
        if text.starts_with('{') && har::looks_like_har(text) {
            return Some(Format::Har);
        }
        if openapi::looks_like_openapi(text) {
            return Some(Format::OpenApi);
        }
        if text.starts_with('<') && jmeter::looks_like_jmeter(text) {
            return Some(Format::Jmeter);
        }
        if curl::looks_like_curl(text) {
            return Some(Format::Curl);
        }
        None
    }
}

/// The first key of a JSON object text, if it is a plain string.
fn first_key(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('{')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// Imports `bytes` (read from a file called `name`, used in error messages) as `format`.
pub fn import(format: Format, name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    match format {
        Format::Har => har::import(name, bytes, options),
        Format::OpenApi => openapi::import(name, bytes, options),
        Format::Curl => curl::import(name, bytes, options),
        Format::Postman => postman::import(name, bytes, options),
        Format::Jmeter => jmeter::import(name, bytes, options),
    }
}

/// Imports the file at `path` as `format`. A HAR is streamed (never held whole in memory);
/// the other formats are small enough to be read at once.
pub fn import_file(
    format: Format,
    path: &std::path::Path,
    options: &ImportOptions,
) -> Result<Import> {
    match format {
        Format::Har => har::import_file(path, options),
        _ => {
            let bytes = std::fs::read(path).map_err(|source| Error::Read {
                path: path.display().to_string(),
                source,
            })?;
            import(format, &path.display().to_string(), &bytes, options)
        }
    }
}
