//! `ld init DIR`: a starting project: a plan, a README and a GitHub Actions workflow that runs
//! the functional check and compares with the `main` baseline. Existing files are never
//! overwritten; each file is written atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::exit;

/// Arguments of `ld init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The directory to create the project in (created if missing)
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

const PLAN: &str = r#"{
  "load_density": [
    [
      "LD_register_variables",
      {
        "variables": {
          "base": "http://127.0.0.1:8080"
        }
      }
    ],
    [
      "LD_start_test",
      {
        "user_detail_dict": {
          "user": "fast_http_user"
        },
        "tasks": {
          "mode": "sequence",
          "tasks": [
            {
              "method": "get",
              "request_url": "${var.base}/health",
              "name": "GET /health",
              "assertions": [
                {
                  "type": "status_code",
                  "value": 200
                }
              ]
            }
          ]
        },
        "user_count": 10,
        "spawn_rate": 5,
        "test_time": 60
      }
    ]
  ]
}
"#;

const README: &str = "# Load tests\n\n`actions.json` is a LoadDensity action JSON plan. Set `base` to the service under test.\n\n```sh\nld lint actions.json           # check the plan\nld replay actions.json --once  # one user, one iteration: exit 0, 1 or 2\nld replay actions.json         # the load test the plan describes\nld baseline set latest --name main\nld replay actions.json --once --diff main\n```\n";

const WORKFLOW: &str = "name: ld\non: [push, pull_request]\njobs:\n  replay:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: Install ld\n        run: cargo install --git https://github.com/ld/ld ld\n      - name: Lint the plan\n        run: ld lint actions.json --format sarif > ld-lint.sarif\n      - name: Functional check against the main baseline\n        run: ld replay actions.json --once --diff main\n";

pub(crate) fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let files = [
        (args.dir.join("actions.json"), PLAN),
        (args.dir.join("README.md"), README),
        (args.dir.join(".github/workflows/ld.yml"), WORKFLOW),
    ];
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(exit::input_error(format!(
            "not overwriting existing files: {}",
            existing.join(", ")
        )));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        ld_plan::fs::write_atomic(path, text.as_bytes(), false)
            .map_err(|e| anyhow::anyhow!("cannot write {e}"))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
