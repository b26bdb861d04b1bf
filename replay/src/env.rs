//! The `env.` namespace of parameters: the plan's secrets side file, then the process
//! environment, which wins when both name a variable (a CI job can override a recorded
//! secret without editing the file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The side file `ld import` writes beside `plan`: `actions.json` → `actions.json.secrets.env`
/// (also accepted: `actions.secrets.env`).
pub(crate) fn secrets_path(plan: &Path) -> Option<PathBuf> {
    let dir = plan.parent().unwrap_or(Path::new(""));
    let file = plan.file_name()?.to_string_lossy().into_owned();
    let stem = plan.file_stem()?.to_string_lossy().into_owned();
    [format!("{file}.secrets.env"), format!("{stem}.secrets.env")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Reads `KEY=VALUE` lines; blank lines and `#` comments are skipped, `export ` is allowed,
/// and a value may be wrapped in single or double quotes.
pub(crate) fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            if v.starts_with('"') {
                inner
                    .replace("\\n", "\n")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
            } else {
                inner.to_string()
            }
        } else {
            v.to_string()
        };
        out.insert(k.trim().to_string(), v);
    }
    out
}

/// The environment a plan sees: the side file's values, overridden by the process's.
pub(crate) fn load(plan: &Path) -> Result<(HashMap<String, String>, Option<PathBuf>)> {
    let mut env = HashMap::new();
    let side = secrets_path(plan);
    if let Some(path) = &side {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        env.extend(parse_env_file(&text));
    }
    env.extend(std::env::vars());
    Ok((env, side))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_quotes_comments_and_export() {
        let env = parse_env_file("# secrets\nA=1\nexport B = \"two words\"\nC='x=y'\n\nbad line\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x=y");
        assert_eq!(env.len(), 3);
    }
}
