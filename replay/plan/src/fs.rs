//! Writing outputs so that a good file is never half-overwritten: the bytes go to a temporary
//! file in the same directory, which is then renamed over the target.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically. With `private`, the file is created with mode 0600
/// (secrets), before any byte is written.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    write_atomic_with(path, private, |out| out.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `fill` into a buffered writer, so large
/// outputs are never held whole in memory.
pub fn write_atomic_with(
    path: &Path,
    private: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    // A device or a pipe (`-o /dev/null`, `-o /dev/stdout`, a FIFO) is written in place:
    // renaming a temporary file over it would replace the device with a regular file.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut writer = std::io::BufWriter::new(file);
        return fill(&mut writer).and_then(|()| writer.flush()).map_err(io);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let tmp_path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = options.open(&tmp_path).map_err(io)?;
    let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
    let result = fill(&mut writer)
        .and_then(|()| writer.into_inner().map_err(|e| e.into_error()))
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp_path, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ld-plan-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let target = dir.join("plan.json");
        std::fs::write(&target, b"old").expect("seed");
        write_atomic(&target, b"new", true).expect("write");
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Regression: `-o /dev/null` once renamed a temporary file over the device, turning
    /// `/dev/null` into a regular file that every later reader of it saw.
    #[cfg(unix)]
    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        write_atomic(Path::new("/dev/null"), b"discarded", false).expect("write");
        let meta = std::fs::metadata("/dev/null").expect("meta");
        assert!(meta.file_type().is_char_device());
    }
}
