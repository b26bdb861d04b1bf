//! The `env.` namespace of parameters: the plan's secrets side file, the secrets file the
//! plan's `ld_secrets_file` variable names, the one `--secrets-file` names, then the process
//! environment, which wins when several name a variable (a CI job can override a recorded
//! secret without editing the file). A `${env.X}` found in none of them stops the run before
//! any request is sent.

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

/// The plan variable that names a secrets file (relative to the plan).
pub(crate) const PLAN_VARIABLE: &str = "ld_secrets_file";

/// What a plan's `${env.X}` resolve from, and where it was looked for.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Every name: the files' values, overridden by the process environment's.
    pub(crate) env: HashMap<String, String>,
    /// Every file looked at, in order, and whether it was there.
    pub(crate) looked: Vec<(PathBuf, bool)>,
    /// The values to mask: every value of the files, and the process environment's values
    /// of the names the plan uses.
    pub(crate) secrets: Vec<String>,
}

/// The environment a plan sees: the side file beside the plan, the file its
/// `ld_secrets_file` variable names, then `explicit` (`--secrets-file`, which must exist),
/// each overriding the ones before; the process environment `process` overrides them all.
pub(crate) fn load(
    plan: &Path,
    text: &str,
    explicit: Option<&Path>,
    process: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded> {
    let mut out = Loaded::default();
    let dir = plan.parent().unwrap_or(Path::new(""));
    match secrets_path(plan) {
        Some(path) => read_into(&mut out, &path)?,
        None => {
            if let Some(file) = plan.file_name() {
                let file = file.to_string_lossy();
                out.looked
                    .push((dir.join(format!("{file}.secrets.env")), false));
            }
        }
    }
    let (named, used) = scan(plan, text);
    if let Some(rel) = named {
        let path = dir.join(rel);
        if path.is_file() {
            read_into(&mut out, &path)?;
        } else {
            out.looked.push((path, false));
        }
    }
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(Error::Read {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        read_into(&mut out, path)?;
    }
    for (k, v) in process {
        if used.contains(&k) {
            out.secrets.push(v.clone());
        }
        out.env.insert(k, v);
    }
    Ok(out)
}

fn read_into(out: &mut Loaded, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    let values = parse_env_file(&text);
    out.secrets.extend(values.values().cloned());
    out.env.extend(values);
    out.looked.push((path.to_path_buf(), true));
    Ok(())
}

/// The `ld_secrets_file` the plan registers (`LD_register_variables`, `LD_register_variable`
/// or `LD_start_test`'s `variables`), and the names its `${env.X}` use, in the plan and in the
/// files `LD_execute_files` runs. A plan that does not parse gives nothing: compiling it
/// reports why.
fn scan(plan: &Path, text: &str) -> (Option<String>, std::collections::HashSet<String>) {
    let mut named = None;
    let mut used = std::collections::HashSet::new();
    let mut files = vec![(plan.to_path_buf(), None)];
    let mut seen = Vec::new();
    while let Some((path, read)) = files.pop() {
        if seen.len() > 16 || seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        let read = match read {
            Some(()) => std::fs::read_to_string(&path).ok(),
            None => None,
        };
        let text = match &read {
            Some(t) => t.as_str(),
            None if seen.len() == 1 => text,
            None => continue,
        };
        env_names(text, &mut used);
        // Only these commands and keys name files: a plan without them (most, and every large
        // one) is not read into a value, which would cost about ten times its text.
        if !text.contains("LD_register_variable")
            && !text.contains("LD_execute_files")
            && !text.contains(PLAN_VARIABLE)
        {
            continue;
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        let mut included = Vec::new();
        walk(&value, &mut named, &mut included, seen.len() == 1);
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        files.extend(included.into_iter().map(|f| (dir.join(f), Some(()))));
    }
    (named, used)
}

/// The `X` of every `${env.X}` in `text`.
fn env_names(text: &str, out: &mut std::collections::HashSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let token = rest[start + 2..start + 2 + len].trim();
        if let Some((prefix, name)) = token.split_once('.')
            && prefix.eq_ignore_ascii_case("env")
        {
            out.insert(name.to_string());
        }
        rest = &rest[start + 2 + len + 1..];
    }
}

fn walk(v: &serde_json::Value, named: &mut Option<String>, included: &mut Vec<String>, top: bool) {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            if let [Value::String(cmd), args @ ..] = items.as_slice() {
                match cmd.as_str() {
                    "LD_register_variable" if top => {
                        let pair = match args {
                            [Value::Object(kw)] => (kw.get("name"), kw.get("value")),
                            [Value::Array(list)] => (list.first(), list.get(1)),
                            _ => (args.first(), args.get(1)),
                        };
                        if let (Some(Value::String(n)), Some(Value::String(p))) = pair
                            && n == PLAN_VARIABLE
                        {
                            named.get_or_insert_with(|| p.clone());
                        }
                    }
                    "LD_execute_files" => {
                        let list = match args {
                            [Value::Object(kw)] => kw.get("execute_files_list"),
                            [first, ..] => Some(first),
                            [] => None,
                        };
                        match list {
                            Some(Value::String(s)) => included.push(s.clone()),
                            Some(Value::Array(l)) => included
                                .extend(l.iter().filter_map(Value::as_str).map(str::to_string)),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            items.iter().for_each(|i| walk(i, named, included, top));
        }
        Value::Object(map) => {
            if top
                && let Some(Value::Object(vars)) = map.get("variables")
                && let Some(Value::String(p)) = vars.get(PLAN_VARIABLE)
            {
                named.get_or_insert_with(|| p.clone());
            }
            map.values().for_each(|i| walk(i, named, included, top));
        }
        _ => {}
    }
}

/// A plan error when a `${env.X}` resolved from nowhere: each name, the pointers that use it,
/// and the places looked.
pub(crate) fn check_unresolved(
    plan: &Path,
    unresolved: &[crate::template::Unresolved],
    loaded: &Loaded,
) -> Result<()> {
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for u in unresolved {
        let token = u.raw.trim_start_matches("${").trim_end_matches('}').trim();
        let Some((prefix, name)) = token.split_once('.') else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("env") || loaded.env.contains_key(name) {
            continue;
        }
        match missing.iter_mut().find(|(n, _)| n == name) {
            Some((_, pointers)) => {
                if !pointers.contains(&u.pointer) {
                    pointers.push(u.pointer.clone());
                }
            }
            None => missing.push((name.to_string(), vec![u.pointer.clone()])),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut places = vec!["the process environment".to_string()];
    places.extend(loaded.looked.iter().map(|(p, found)| {
        if *found {
            p.display().to_string()
        } else {
            format!("{} (not found)", p.display())
        }
    }));
    let lines: Vec<String> = missing
        .iter()
        .map(|(name, pointers)| {
            format!(
                "{}: {}: ${{env.{name}}} is not set; looked in {}",
                plan.display(),
                pointers.join(", "),
                places.join(", ")
            )
        })
        .collect();
    Err(Error::plan(format!(
        "{}\n(set it in the environment, or in a secrets file: --secrets-file FILE or the plan variable `{PLAN_VARIABLE}`)",
        lines.join("\n")
    )))
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
