//! The files a curl command reads (`-d @FILE`, `--data-urlencode name@FILE`, `-F name=@FILE`,
//! `-F name=<FILE`, `-T FILE`): read relative to the command file's directory, as the command
//! would have been run from there, bounded in size, and embedded in the plan. A file that
//! cannot be read is an error naming it and the command's line, never an empty body.

use std::path::{Path, PathBuf};

use crate::{Error, ImportOptions, Result};

/// The largest file one option reads.
pub(crate) const MAX_FILE: u64 = 16 << 20;
/// The most all the commands of one import read together.
pub(crate) const MAX_TOTAL: u64 = 64 << 20;

/// Reads the files of one import's commands.
pub(crate) struct Files<'a> {
    /// The command file's name, for messages.
    name: &'a str,
    base: Option<&'a Path>,
    within: Option<&'a Path>,
    total: u64,
}

impl<'a> Files<'a> {
    pub(crate) fn new(name: &'a str, options: &'a ImportOptions) -> Files<'a> {
        Files {
            name,
            base: options.base_dir.as_deref(),
            within: options.files_within.as_deref(),
            total: 0,
        }
    }

    /// `path` as the plan names it: relative ones joined to the command file's directory.
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
        if path == "-" || path == "." {
            return Err(Error::Invalid(format!(
                "{at} reads standard input, which an import cannot read again at replay: save the \
                 content to a file and name it instead (for example `@body.json`)"
            )));
        }
        if path.is_empty() {
            return Err(Error::Invalid(format!(
                "{at} names no file: write the file's name after `@` or `<`"
            )));
        }
        if Path::new(path).is_relative() && self.base.is_none() {
            return Err(Error::Invalid(format!(
                "{at} reads {path} relative to the command file, but the commands came from \
                 standard input: give the file's full path, or import the command file itself"
            )));
        }
        let full = self.path(path);
        if let Some(within) = self.within
            && !std::fs::canonicalize(&full).is_ok_and(|p| p.starts_with(within))
        {
            return Err(Error::Invalid(format!(
                "{at}: {} is not inside {}, where the files a command names are read; move it there",
                full.display(),
                within.display()
            )));
        }
        let shown = full.display();
        let file = std::fs::File::open(&full).map_err(|e| {
            Error::Invalid(format!(
                "{at}: cannot read {shown}: {}; a relative file is read from the command file's \
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
