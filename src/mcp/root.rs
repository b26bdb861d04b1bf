//! The directory `ld mcp` may read and write: every path a tool is given is resolved against
//! it, and refused when it (or the directory it would be created in) resolves outside it,
//! whether through `..`, an absolute path or a symbolic link.
//!
//! Depends on nothing else of the server.

use std::path::{Component, Path, PathBuf};

/// The root directory, canonical.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    dir: PathBuf,
}

/// A path refused or not found, with the path as the caller gave it.
#[derive(Debug)]
pub(crate) enum PathError {
    /// The path resolves outside the root.
    Outside { given: String },
    /// The path (or the directory a new file goes in) does not exist or cannot be read.
    Missing { given: String, message: String },
}

impl Root {
    /// The root `dir`, which must be a directory.
    pub(crate) fn new(dir: &Path) -> std::io::Result<Root> {
        let dir = std::fs::canonicalize(dir)?;
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Root { dir })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// An existing file or directory inside the root.
    pub(crate) fn existing(&self, given: &str) -> Result<PathBuf, PathError> {
        let joined = self.dir.join(given);
        // Outside by its very spelling: refused as such, whether or not it exists.
        self.inside(given, lexical(&joined))?;
        let resolved = std::fs::canonicalize(&joined).map_err(|e| PathError::Missing {
            given: given.to_string(),
            message: e.to_string(),
        })?;
        self.inside(given, resolved)
    }

    /// A file to write inside the root: its directory must exist inside the root, its name
    /// must be a plain name, and a link already standing there must point inside the root.
    pub(crate) fn writable(&self, given: &str) -> Result<PathBuf, PathError> {
        let joined = self.dir.join(given);
        let name = match joined.components().next_back() {
            Some(Component::Normal(name)) => name.to_owned(),
            _ => {
                return Err(PathError::Outside {
                    given: given.to_string(),
                });
            }
        };
        let parent = joined.parent().unwrap_or(&self.dir);
        let parent = std::fs::canonicalize(parent).map_err(|e| PathError::Missing {
            given: given.to_string(),
            message: format!("its directory: {e}"),
        })?;
        let parent = self.inside(given, parent)?;
        let path = parent.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            // Whatever stands there now (a link included) must lead inside the root.
            let resolved = std::fs::canonicalize(&path).map_err(|_| PathError::Outside {
                given: given.to_string(),
            })?;
            self.inside(given, resolved)?;
        }
        Ok(path)
    }

    fn inside(&self, given: &str, resolved: PathBuf) -> Result<PathBuf, PathError> {
        if resolved.starts_with(&self.dir) {
            Ok(resolved)
        } else {
            Err(PathError::Outside {
                given: given.to_string(),
            })
        }
    }
}

/// `path` with `.` and `..` taken away as written, links not followed.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_parent_absolute_and_links_out() {
        let outer = tempfile::tempdir().expect("tempdir");
        let root_dir = outer.path().join("root");
        std::fs::create_dir(&root_dir).expect("mkdir");
        std::fs::write(outer.path().join("secret.txt"), "x").expect("write");
        std::fs::write(root_dir.join("plan.json"), "{}").expect("write");
        let root = Root::new(&root_dir).expect("root");
        assert!(root.existing("plan.json").is_ok());
        assert!(matches!(
            root.existing("../secret.txt"),
            Err(PathError::Outside { .. })
        ));
        let absolute = outer.path().join("secret.txt");
        assert!(matches!(
            root.existing(&absolute.display().to_string()),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            root.existing("../no/such/file"),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            root.writable("../new.json"),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            root.writable(".."),
            Err(PathError::Outside { .. })
        ));
        assert!(root.writable("new.json").is_ok());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path(), root_dir.join("out")).expect("symlink");
            assert!(matches!(
                root.existing("out/secret.txt"),
                Err(PathError::Outside { .. })
            ));
            assert!(matches!(
                root.writable("out/new.json"),
                Err(PathError::Outside { .. })
            ));
            std::os::unix::fs::symlink(outer.path().join("secret.txt"), root_dir.join("l.json"))
                .expect("symlink");
            assert!(matches!(
                root.writable("l.json"),
                Err(PathError::Outside { .. })
            ));
        }
    }
}
