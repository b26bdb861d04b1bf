"""Drives `ld mcp` with the Python `mcp` SDK's stdio client, as an assistant would.

    python mcp_client.py LD_BINARY

It starts a small HTTP API on 127.0.0.1 (the standard library's http.server), writes a HAR of
two requests to it into a fresh root directory, and then, through the SDK: initializes, lists
the tools, imports the HAR (LoadDensity's name, import_har), replays the plan once, makes that
run the baseline `main`, breaks the API (it answers 500), replays against the baseline, diffs,
runs a short bounded load with a progress callback, and asks for a file outside the root.
Every check reads the call's structured content (which the SDK also validates against the
tool's output schema); the API's own log says what arrived. Prints one line per check and
`N passed, 0 failed` at the end; exits 1 at the first failed check.
"""

import asyncio
import http.server
import json
import sys
import tempfile
import threading
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

PASSED = 0


def check(condition, what, detail=None):
    global PASSED
    if not condition:
        print(f"[mcp-e2e] FAIL: {what}" + (f": {detail}" if detail is not None else ""), flush=True)
        sys.exit(1)
    PASSED += 1
    print(f"[mcp-e2e] ok: {what}", flush=True)


class Api(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON: 200 while healthy, 500 once broken."""

    broken = False
    seen = []
    lock = threading.Lock()

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        with Api.lock:
            Api.seen.append((self.command, self.path, body))
        status = 500 if Api.broken else 200
        payload = b'{"error": true}' if Api.broken else b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = handle_one
    do_POST = handle_one

    def log_message(self, *args):
        pass


def har(origin):
    def entry(when, method, path, body=None):
        request = {"method": method, "url": f"{origin}{path}", "headers": []}
        if body is not None:
            request["headers"] = [{"name": "Content-Type", "value": "application/json"}]
            request["postData"] = {"mimeType": "application/json", "text": body}
        return {
            "startedDateTime": f"2024-05-01T10:00:0{when}.000Z",
            "time": 5,
            "request": request,
            "response": {"status": 200, "content": {"mimeType": "application/json", "text": '{"ok": true}'}},
        }

    entries = [entry(0, "GET", "/items/7"), entry(1, "POST", "/orders", '{"item": 7}')]
    return json.dumps({"log": {"version": "1.2", "creator": {"name": "mcp-e2e"}, "entries": entries}})


def content(result):
    return result.structured_content


async def session_checks(ld, root, outside):
    params = StdioServerParameters(command=ld, args=["mcp", "--root", str(root), "--max-duration", "5s"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "ld", "initialize: the server is ld", init.server_info)

            tools = {t.name: t for t in (await session.list_tools()).tools}
            for name in ["import", "replay", "diff", "runs_list", "runs_show", "baseline_set", "lint",
                         "schema", "import_har", "run_action_json", "list_runs", "fetch_run"]:
                check(name in tools, f"tools/list names {name}")
            replay_tool = tools["replay"]
            check(replay_tool.annotations is not None and replay_tool.annotations.destructive_hint is True,
                  "replay is marked destructive", replay_tool.annotations)
            check(replay_tool.output_schema is not None, "replay has an output schema")

            imported = await session.call_tool("import_har", {"file": "recording.har", "output": "plan.json"})
            data = content(imported)
            check(not imported.is_error and data["kept"] == 2 and data["tasks"] == 2,
                  "import_har kept both requests as tasks", data)
            check((root / "plan.json").is_file(), "the plan was written inside the root")

            first = await session.call_tool("replay", {"plan": "plan.json"})
            data = content(first)
            check(not first.is_error and data["passed"] is True and data["requests"] == 2
                  and data["failed"] == 0, "replay --once against the local API passed", data)
            with Api.lock:
                seen = list(Api.seen)
            check([(m, p) for m, p, _ in seen] == [("GET", "/items/7"), ("POST", "/orders")],
                  "the API received the recorded requests", seen)
            check(seen[1][2] == b'{"item": 7}', "the POST body arrived as recorded", seen[1][2])
            first_id = data["run_id"]

            base = await session.call_tool("baseline_set", {"run": str(first_id), "name": "main"})
            check(content(base) == {"baseline": "main", "run_id": first_id}, "baseline_set main", content(base))

            Api.broken = True
            second = await session.call_tool("replay", {"plan": "plan.json", "baseline": "main"})
            data = content(second)
            check(data["passed"] is False and data["failed"] == 2, "the replay against the broken API failed", data)
            check(any(f["kind"] == "check" and "500" in f["message"] for f in data["failures"]),
                  "its failures name the 500", data["failures"])
            check(data["diff"] is not None and data["diff"]["has_regressions"] is True,
                  "its diff against main regressed", data["diff"])
            Api.broken = False

            diffed = await session.call_tool("diff", {"baseline": "main"})
            data = content(diffed)
            regressions = [f for n in data["names"] for f in n["findings"] if f["regression"]]
            check(not diffed.is_error and data["has_regressions"] is True and regressions,
                  "diff lists the regressions as findings", data)
            check(data["current"]["id"] == second.structured_content["run_id"], "diff compared the latest run")

            runs = content(await session.call_tool("list_runs", {}))
            check([r["outcome"] for r in runs["runs"]] == ["failed", "passed"], "list_runs: newest first", runs)

            progress = []

            async def on_progress(done, total, message):
                progress.append((done, message))

            load = await session.call_tool(
                "replay",
                {"plan": "plan.json", "mode": "load", "users": 2, "duration": "2s", "store": False},
                progress_callback=on_progress,
            )
            data = content(load)
            check(not load.is_error and data["passed"] is True and data["requests"] >= 4,
                  "a bounded load of 2 users for 2s passed", data)
            check(len(progress) >= 1, "the load sent progress notifications", progress)

            too_long = await session.call_tool(
                "replay", {"plan": "plan.json", "mode": "load", "users": 1, "duration": "1h"})
            check(too_long.is_error and content(too_long)["error"]["kind"] == "input",
                  "a load longer than --max-duration is refused", content(too_long))

            refused = await session.call_tool("import_har", {"file": f"../{outside.name}", "output": "x.json"})
            data = content(refused)
            check(refused.is_error and data["error"]["kind"] == "outside-root",
                  "a path outside the root is refused", data)
            check(not (root / "x.json").exists(), "nothing was written for the refused call")


def main():
    if len(sys.argv) != 2:
        print("usage: mcp_client.py LD_BINARY", file=sys.stderr)
        sys.exit(2)
    ld = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="ld-mcp-e2e.") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        (root / "recording.har").write_text(har(origin))
        outside = Path(scratch) / "outside.har"
        outside.write_text(har(origin))
        asyncio.run(asyncio.wait_for(session_checks(ld, root, outside), timeout=120))
    server.shutdown()
    print(f"{PASSED} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
