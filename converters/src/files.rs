//! The files an input names for its bodies (curl's `-d @FILE`, `-F name=@FILE`, `-T FILE`;
//! a Postman collection's form-data file parts and file bodies): read relative to the input
//! file's directory, as the tool would have run from there, bounded in size, and embedded in
//! the plan. A file that cannot be read is an error naming it and where the input names it,
//! never an empty body.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::output::Body;
use crate::{Error, ImportOptions, Result};

/// The largest file one option reads.
pub(crate) const MAX_FILE: u64 = 16 << 20;
/// The most all the files of one import read together.
pub(crate) const MAX_TOTAL: u64 = 64 << 20;

/// Reads the files of one import.
pub(crate) struct Files<'a> {
    /// The input file's name, for messages.
    name: &'a str,
    /// What the input is called in messages (`command file`, `collection`).
    input: &'static str,
    base: Option<&'a Path>,
    within: Option<&'a Path>,
    total: u64,
}

impl<'a> Files<'a> {
    /// Reads the files named by the input `name`, which messages call `input`.
    pub(crate) fn new(name: &'a str, input: &'static str, options: &'a ImportOptions) -> Files<'a> {
        Files {
            name,
            input,
            base: options.base_dir.as_deref(),
            within: options.files_within.as_deref(),
            total: 0,
        }
    }

    /// `path` as the plan names it: relative ones joined to the input file's directory.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match self.base {
            Some(base) if p.is_relative() && base != Path::new(".") => base.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The content of `path`, which `option` (as written, `-d @data.json`) on `line` names.
    pub(crate) fn read(&mut self, path: &str, option: &str, line: usize) -> Result<Vec<u8>> {
        let at = format!("{}:{line}: curl {option}", self.name);
        if path.is_empty() {
            return Err(Error::Invalid(format!(
                "{at} names no file: write the file's name after `@` or `<`"
            )));
        }
        self.read_at(path, &at)
    }

    /// The content of `path`, which the place `at` (the input's name and a line or a JSON
    /// pointer, as messages show it) names.
    pub(crate) fn read_at(&mut self, path: &str, at: &str) -> Result<Vec<u8>> {
        let input = self.input;
        if path == "-" || path == "." {
            return Err(Error::Invalid(format!(
                "{at} reads standard input, which an import cannot read again at replay: save the \
                 content to a file and name it instead (for example `@body.json`)"
            )));
        }
        if Path::new(path).is_relative() && self.base.is_none() {
            return Err(Error::Invalid(format!(
                "{at} reads {path} relative to the {input}, but the {input} came from \
                 standard input: give the file's full path, or import the {input} itself"
            )));
        }
        let full = self.path(path);
        if let Some(within) = self.within
            && !std::fs::canonicalize(&full).is_ok_and(|p| p.starts_with(within))
        {
            return Err(Error::Invalid(format!(
                "{at}: {} is not inside {}, where the files the {input} names are read; move it there",
                full.display(),
                within.display()
            )));
        }
        let shown = full.display();
        let file = std::fs::File::open(&full).map_err(|e| {
            Error::Invalid(format!(
                "{at}: cannot read {shown}: {}; a relative file is read from the {input}'s \
                 directory: put the file there or give its full path",
                io_reason(&e)
            ))
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let room = MAX_FILE.min(MAX_TOTAL - self.total);
        if size > room {
            return Err(Error::Invalid(format!(
                "{at}: {shown} is {size} bytes, more than the {room} bytes an import embeds \
                 (at most {} MiB a file, {} MiB in all); send a smaller file",
                MAX_FILE >> 20,
                MAX_TOTAL >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // Bounded even when the file grows while it is read.
        std::io::Read::read_to_end(&mut std::io::Read::take(file, room + 1), &mut bytes)
            .map_err(|e| Error::Invalid(format!("{at}: cannot read {shown}: {}", io_reason(&e))))?;
        if bytes.len() as u64 > room {
            return Err(Error::Invalid(format!(
                "{at}: {shown} grew past the {room} bytes an import embeds while it was read"
            )));
        }
        self.total += bytes.len() as u64;
        Ok(bytes)
    }
}

/// The reason of an I/O error without the OS error number.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        _ => e.to_string(),
    }
}

/// A part's content: `value` when it is text, else `base64`.
pub(crate) fn content(part: &mut Map<String, Value>, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(text) => part.insert("value".into(), Value::String(text)),
        Err(e) => part.insert(
            "base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
        ),
    };
}

/// A body of bytes sent as they are: text when it is, else base64.
pub(crate) fn bytes_body(bytes: &[u8]) -> Body {
    match std::str::from_utf8(bytes) {
        Ok(text) => Body::Text(text.to_string()),
        Err(_) => Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}
