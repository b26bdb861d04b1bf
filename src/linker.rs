//! Hand-over to the system linker.
//!
//! gcc and rustc find the linker by running `ld` from PATH. Once this program is installed as
//! `~/.cargo/bin/ld`, it comes first, so every link would reach it. It recognises a linker
//! invocation (no subcommand of its own, and linker flags or object files) and replaces itself
//! with the next `ld` on PATH that is a different file, so builds keep working.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

/// The subcommands and global flags of this program; anything else in first position is
/// considered a linker's argument when it looks like one.
const OWN_WORDS: &[&str] = &[
    "record",
    "import",
    "replay",
    "diff",
    "baseline",
    "runs",
    "ca",
    "demo",
    "lint",
    "schema",
    "init",
    "mcp",
    "merge",
    "collect",
    "k8s",
    "serve",
    "help",
    "-h",
    "--help",
    "-V",
    "--version",
];

/// Environment variable that lists the `ld` files already passed over, so two copies of this
/// program on PATH never hand over to each other in a loop.
const SEEN_VAR: &str = "LD_TOOLKIT_LINKER_SEEN";

/// True when `args` (with the program name first) are a linker's arguments.
pub(crate) fn is_linker_invocation(args: &[OsString]) -> bool {
    let Some(first) = args.get(1) else {
        return false;
    };
    let first = first.to_string_lossy();
    if OWN_WORDS.contains(&first.as_ref()) {
        return false;
    }
    args[1..].iter().any(|a| {
        let a = a.to_string_lossy();
        a.starts_with('-')
            || a.starts_with('@')
            || [".o", ".a", ".so", ".lo", ".obj", ".rlib"]
                .iter()
                .any(|ext| a.ends_with(ext))
            || a.contains(".so.")
    })
}

/// Replaces this process with the next linker on PATH; returns only on failure.
pub(crate) fn hand_over(args: &[OsString]) -> ExitCode {
    let me = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .unwrap_or_default();
    let mut seen: Vec<PathBuf> = std::env::var_os(SEEN_VAR)
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    seen.push(me);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(next) = next_linker(&path, &seen) else {
        eprintln!(
            "ld: error: called with linker arguments, but no other `ld` is on PATH to hand them to\n  \
             this is the ld traffic toolkit; install binutils (or put the system linker on PATH)"
        );
        return ExitCode::from(exit::RUNTIME);
    };
    let seen_value = std::env::join_paths(&seen).unwrap_or_default();
    exec(&next, &args[1..], &seen_value)
}

/// The first executable file named `ld` in `path` that is none of `seen`.
fn next_linker(path: &OsStr, seen: &[PathBuf]) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join("ld"))
        .filter(|candidate| is_executable(candidate))
        .find(|candidate| {
            let real = candidate
                .canonicalize()
                .unwrap_or_else(|_| candidate.clone());
            !seen.contains(&real)
        })
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(unix)]
fn exec(program: &Path, args: &[OsString], seen: &OsStr) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(program)
        .args(args)
        .env(SEEN_VAR, seen)
        .exec();
    eprintln!(
        "ld: error: could not run the linker {}: {err}",
        program.display()
    );
    ExitCode::from(exit::RUNTIME)
}

#[cfg(not(unix))]
fn exec(program: &Path, args: &[OsString], seen: &OsStr) -> ExitCode {
    match std::process::Command::new(program)
        .args(args)
        .env(SEEN_VAR, seen)
        .status()
    {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1) as u8),
        Err(err) => {
            eprintln!(
                "ld: error: could not run the linker {}: {err}",
                program.display()
            );
            ExitCode::from(exit::RUNTIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("ld")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn linker_arguments_are_recognised() {
        assert!(is_linker_invocation(&args(&[
            "-plugin",
            "/usr/lib/x.so",
            "-o",
            "a.out"
        ])));
        assert!(is_linker_invocation(&args(&[
            "--eh-frame-hdr",
            "-pie",
            "crt1.o"
        ])));
        assert!(is_linker_invocation(&args(&["main.o", "-lc"])));
        assert!(is_linker_invocation(&args(&["-v"])));
        assert!(is_linker_invocation(&args(&["@/tmp/args"])));
    }

    #[test]
    fn own_commands_are_not_linker_arguments() {
        assert!(!is_linker_invocation(&args(&[])));
        assert!(!is_linker_invocation(&args(&[
            "import",
            "x.har",
            "-o",
            "plan.json"
        ])));
        assert!(!is_linker_invocation(&args(&["--help"])));
        assert!(!is_linker_invocation(&args(&["improt", "x.har"])));
    }
}
