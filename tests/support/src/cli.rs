//! Running the real `ld replay` from a test: a one-test plan, a run in a temporary
//! directory, and what it printed, with the failure report read line by line.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{Value, json};

/// A plan of one `LD_start_test` for `user` with `tasks` (one user, at most 5 s).
pub fn plan(user: &str, tasks: Value) -> String {
    let kw = json!({"user_detail_dict": {"user": user}, "user_count": 1, "spawn_rate": 1,
                    "test_time": 5, "tasks": tasks});
    serde_json::to_string_pretty(&json!({"load_density": [["LD_start_test", kw]]}))
        .expect("a plan serializes")
}

/// What one run of `ld` printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// The failure report's line (`N × kind name: reason`) for task `name`.
    pub fn failure(&self, name: &str) -> Option<&str> {
        let needle = format!(" {name}: ");
        self.stdout
            .lines()
            .skip_while(|l| l.trim() != "failures:")
            .map(str::trim)
            .find(|l| l.contains('×') && l.contains(&needle))
    }

    /// Asserts the exit code.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    /// Asserts `needle` is on stdout or stderr.
    pub fn expect_output(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "{needle:?} not in\n{self}"
        );
        self
    }
}

/// Writes `plan` to `dir/plan.json` and runs it once there without storing the run, with
/// `args` after the plan; at most 60 s.
pub fn replay_once(dir: &Path, plan: &str, args: &[&str]) -> Run {
    std::fs::write(dir.join("plan.json"), plan).expect("write the plan");
    let out = Command::cargo_bin("ld")
        .expect("the ld binary")
        .current_dir(dir)
        .args(["replay", "plan.json", "--once", "--no-store"])
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run ld");
    Run::from(out)
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
