#!/usr/bin/env bash
# Checks that LoadDensity 0.0.79 reads the run database `ld replay` writes, and that ld
# reads what LoadDensity writes into it.
#
# Usage: scripts/loaddensity/check_store.sh
#
# It starts a small JSON API on 127.0.0.1 (a random port), replays a plan against it twice
# with `ld replay --db` (the second time with one endpoint slowed down), then calls
# LoadDensity's own functions on that database:
#   list_runs          the runs ld stored, with their labels and metadata
#   fetch_run_records  every record of each run, LoadDensity's columns and value types
#   diff_runs          the slowed endpoint regresses, the others do not
#   persist_records    LoadDensity stores a run in ld's database; `ld runs` and `ld diff` read it
# and checks that LoadDensity opening the database changed nothing of ld's schema.
# Prints one line per check; exits 1 if any failed.
#
# Environment:
#   LD_BIN                 the ld binary (default: target/debug/ld, built when missing)
#   LD_VENV                venv to use/create (default /tmp/.venv-ld)
#   LOADDENSITY_VERSION    je-load-density version (default 0.0.79)
#   PYTHON                 interpreter that creates the venv and runs the server (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${LD_VENV:-/tmp/.venv-ld}"
VERSION="${LOADDENSITY_VERSION:-0.0.79}"
PYTHON="${PYTHON:-python3}"
LD_BIN="${LD_BIN:-$ROOT/target/debug/ld}"

# shellcheck source=scripts/loaddensity/venv.sh
. "$HERE/venv.sh"
ensure_loaddensity_venv "$VENV" "$VERSION" "$PYTHON"

if [ ! -x "$LD_BIN" ]; then
  echo "[check_store] building ld" >&2
  (cd "$ROOT" && cargo build --quiet --bin ld)
fi

WORK="$(mktemp -d /tmp/ld-check-store.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A JSON API; /api/slow waits 150 ms while the file `slow` exists in the work directory.
cat >"$WORK/server.py" <<'PY'
import http.server, json, os, sys, time
work = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/api/users":
            code, body = 200, {"users": [{"id": 1, "name": "ada"}]}
        elif self.path == "/api/slow":
            if os.path.exists(os.path.join(work, "slow")):
                time.sleep(0.15)
            code, body = 200, {"v": 1}
        elif self.path == "/api/flaky":
            code, body = 503, {"error": "unavailable"}
        else:
            code, body = 404, {"error": "not found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(os.path.join(work, "port"), "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
PY
"$PYTHON" "$WORK/server.py" "$WORK" &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
PORT="$(cat "$WORK/port")"

cat >"$WORK/actions.json" <<JSON
{"load_density": [["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"}, "user_count": 1,
  "spawn_rate": 1, "test_time": 60, "tasks": {"mode": "sequence", "tasks": [
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/api/users", "name": "GET /api/users",
     "assertions": [{"type": "status_code", "value": 200}]},
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/api/slow", "name": "GET /api/slow",
     "assertions": [{"type": "status_code", "value": 200}]},
    {"method": "get", "request_url": "http://127.0.0.1:$PORT/api/flaky", "name": "GET /api/flaky",
     "assertions": [{"type": "status_code", "value": 200}]}
  ]}}]]}
JSON

DB="$WORK/ld.db"
# The flaky endpoint fails its assertion on purpose (exit 1): failures must round-trip too.
"$LD_BIN" replay "$WORK/actions.json" -q -n 20 --db "$DB" --label base --meta branch=main --meta commit=aaa111 || [ $? -eq 1 ]
touch "$WORK/slow"
"$LD_BIN" replay "$WORK/actions.json" -q -n 20 --db "$DB" --label slow --meta branch=pr-7 || [ $? -eq 1 ]
"$LD_BIN" runs list --db "$DB" --json >"$WORK/ld-runs.json"
for id in 1 2; do "$LD_BIN" runs show "$id" --db "$DB" --json >"$WORK/ld-run-$id.json"; done

LD_BIN="$LD_BIN" "$VENV/bin/python" - "$DB" "$WORK" <<'PY'
import json, os, sqlite3, subprocess, sys
from je_load_density.utils.test_record.sqlite_persistence import list_runs, fetch_run_records, persist_records
from je_load_density.utils.test_record.test_record_class import test_record_instance
from je_load_density.utils.regression.diff import diff_runs

db, work = sys.argv[1], sys.argv[2]
ld = os.environ["LD_BIN"]
failed = []
def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failed.append(name)

def schema():
    with sqlite3.connect(db) as c:
        return (c.execute("PRAGMA user_version").fetchone()[0],
                sorted(c.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()))
before = schema()

ld_runs = json.load(open(os.path.join(work, "ld-runs.json")))
runs = list_runs(db)
check("list_runs sees ld's runs, newest first", [r["id"] for r in runs] == [r["id"] for r in ld_runs] == [2, 1],
      f"{[r['id'] for r in runs]} vs {[r['id'] for r in ld_runs]}")
check("list_runs labels", [r["label"] for r in runs] == ["slow", "base"], str(runs))
meta = json.loads(runs[1]["metadata_json"])
check("list_runs metadata_json", meta == {"branch": "main", "commit": "aaa111"}, runs[1]["metadata_json"])
check("started_at is UTC ISO to the second", runs[0]["started_at"].endswith("+00:00") and len(runs[0]["started_at"]) == 25,
      runs[0]["started_at"])

for run_id in (1, 2):
    shown = json.load(open(os.path.join(work, f"ld-run-{run_id}.json")))
    records = fetch_run_records(db, run_id)
    check(f"fetch_run_records(run {run_id}) returns every request",
          len(records) == shown["run"]["requests"] == 60, f"{len(records)} vs {shown['run']['requests']}")
    by_name = {}
    for r in records:
        by_name.setdefault(r["name"], []).append(r)
    check(f"run {run_id}: names", sorted(by_name) == sorted(a["name"] for a in shown["names"]), str(sorted(by_name)))
    ok = all(r["outcome"] == "success" and r["status_code"] == "200" and r["error"] is None
             for n in ("GET /api/users", "GET /api/slow") for r in by_name[n])
    check(f"run {run_id}: successes as LoadDensity writes them", ok, str(by_name["GET /api/users"][0]))
    ok = all(r["outcome"] == "failure" and r["status_code"] == "503" and "expected 200" in (r["error"] or "")
             for r in by_name["GET /api/flaky"])
    check(f"run {run_id}: failures carry status and error", ok, str(by_name["GET /api/flaky"][0]))
    ok = all(r["method"] == "get" and isinstance(r["response_time_ms"], float) and isinstance(r["response_length"], int)
             and r["test_url"].startswith("http://127.0.0.1:") for r in records)
    check(f"run {run_id}: method, latency, length and URL types", ok, str(records[0]))

d = diff_runs(db, 1, 2, tolerance=0.5)
regressed = {r["name"]: r["metrics"] for r in d["regressions"]}
check("diff_runs: the slowed endpoint regresses", "GET /api/slow" in regressed
      and {"p50_ms", "p95_ms"} <= set(regressed["GET /api/slow"]), json.dumps(d["regressions"]))
slow = d["per_name"]["GET /api/slow"]["deltas"]["p50_ms"]
check("diff_runs: p50 of the slowed endpoint grew by about 150 ms", 120 < slow["abs"] < 1000, str(slow))
limits = []
for flag in ("--max-p50-regression", "--max-p95-regression", "--max-p99-regression"):
    limits += [flag, "50%,50ms"]
out = subprocess.run([ld, "diff", "--db", db, "--against", "1", "2", "--format", "json"] + limits,
                     capture_output=True, text=True)
mine = {r["name"] for r in json.loads(out.stdout)["regressions"]}
check("ld diff finds the same regression, and with an absolute threshold nothing else",
      out.returncode == 1 and mine == {"GET /api/slow"}, out.stdout[-400:])

check("LoadDensity opening the database changed nothing of ld's schema", schema() == before, "schema differs")

# LoadDensity writes into ld's database; ld reads the run.
test_record_instance.clear_records()
test_record_instance.test_record_list.extend(
    {"Method": "get", "test_url": "http://h/a", "name": "GET /a", "status_code": 200,
     "response_time_ms": 12.5 + i, "response_length": 10, "error": None} for i in range(4))
test_record_instance.error_record_list.append(
    {"Method": "get", "test_url": "http://h/a", "name": "GET /a", "status_code": 500,
     "response_time_ms": 3.0, "response_length": 2, "error": "boom"})
new_id = persist_records(db, label="from-loaddensity", metadata={"tool": "LoadDensity"})
check("persist_records into ld's database", new_id == 3, str(new_id))
out = subprocess.run([ld, "runs", "show", str(new_id), "--db", db, "--json"], capture_output=True, text=True)
shown = json.loads(out.stdout) if out.returncode == 0 else {}
names = shown.get("names", [])
check("ld runs show reads LoadDensity's run", out.returncode == 0 and shown["run"]["outcome"] == "loaddensity"
      and names and names[0]["requests"] == 5 and names[0]["failures"] == 1
      and names[0]["statuses"] == {"200": 4, "500": 1}, out.stdout[-400:] + out.stderr)
out = subprocess.run([ld, "baseline", "set", str(new_id), "--name", "ld-made", "--db", db], capture_output=True, text=True)
check("a LoadDensity run can be a baseline", out.returncode == 0, out.stderr)
check("the database is still ld's after LoadDensity wrote to it", schema()[0] == before[0], "user_version changed")

print(f"{'all checks passed' if not failed else str(len(failed)) + ' check(s) failed'}")
sys.exit(1 if failed else 0)
PY
