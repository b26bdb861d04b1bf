//! Writing outputs so that a good file is never half-overwritten: the bytes go to a temporary
//! file in the same directory, which is then renamed over the target.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically. With `private`, the file is created with mode 0600
/// (secrets), before any byte is written.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut tmp = std::fs::OpenOptions::new();
    tmp.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        tmp.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let tmp_path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = tmp.open(&tmp_path).map_err(io)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
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
}
