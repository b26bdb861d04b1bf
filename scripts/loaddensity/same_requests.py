"""Replays plans with LoadDensity and with ld against one recording server, and compares what
each engine sent: methods, request targets, the headers both send, and body bytes.

Usage: python same_requests.py LD_BIN PLAN...   (run with the venv that has je-load-density)

Each plan is rewritten the same way for both engines: every absolute http(s) URL points at the
recording server on 127.0.0.1, think times, throttles and retries go, random placeholders
(`${uuid()}`, `${randint(..)}`, `${now()}`, `${faker.X}`) become the same fixed text, a task's
binary `body` (which LoadDensity does not send; `ld lint` warns) and an `auth` helper of ld's own
(`oauth2`, `sigv4`, `jwt`: LoadDensity neither fetches tokens nor signs) are left out and said so, and
the test is one user for a short while. WebSocket, SSE and socket tasks are left out (and said
so): LoadDensity's HTTP users do not run them.
`${env.NAME}` placeholders get the value `value-of-NAME` in both environments (`c=value-of-NAME`
for cookie secrets). TLS fields (`verify`, `cert`) go too, since the recorder speaks plain HTTP. ld runs the plan
once (`--once`); LoadDensity runs it for a few seconds and its first pass over the tasks is
compared (one user, sequence mode: its requests come in task order).

What counts as the same request:
  - the method and the request target (path and query), byte for byte;
  - every header, with the same values, but those each client adds on its own (User-Agent,
    Accept, Accept-Encoding, Connection, Content-Length, Host);
  - the body bytes, with each side's multipart boundary replaced by one placeholder (as in
    the Content-Type header).

Exit status: 0 when every plan's requests agree, 1 otherwise (each difference is printed),
2 on a usage or setup error.
"""

import copy
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

CLIENT_HEADERS = {"user-agent", "accept", "accept-encoding", "connection", "content-length", "host"}
ENV_RE = re.compile(r"\$\{\s*env\.([A-Za-z0-9_]+)\s*\}")
URL_RE = re.compile(r"^https?://[^/?#]+", re.IGNORECASE)
LOADDENSITY_SECONDS = 4


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        with Recorder.lock:
            Recorder.received.append(
                {
                    "method": self.command,
                    "target": self.path,
                    "headers": [(k.lower(), v) for k, v in self.headers.items()],
                    "body": body,
                }
            )
        reply = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing its connection at the end of a run is no finding.
        pass


RANDOM_RE = re.compile(r"\$\{\s*(uuid\(\)|now\(\)|randint\([^}]*\)|faker\.([A-Za-z_]+))\s*\}")


def constant(m):
    """A random placeholder's stand-in: the same text for both engines."""
    return "random-" + re.sub(r"[^A-Za-z0-9]+", "-", m.group(1)).strip("-")


def rewrite(value, base, notes):
    """The plan for both engines: URLs to the recorder, no pacing, random values fixed."""
    if isinstance(value, str):
        return RANDOM_RE.sub(constant, URL_RE.sub(base, value))
    if isinstance(value, list):
        kept = []
        for v in value:
            if isinstance(v, dict) and not is_http_task(v):
                notes.append(f"{v.get('name') or v.get('request_url')}: not an HTTP task, left out")
                continue
            kept.append(rewrite(v, base, notes))
        return kept
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            # Pacing is not what is compared; TLS settings mean nothing to a plain-HTTP recorder.
            if k in ("think_time", "recorded", "throttle", "retry", "verify", "cert", "client_cert"):
                continue
            if k == "body" and "method" in value:
                # LoadDensity sends no `body` (ld lint says so, not-sent-by-loaddensity): such a
                # task is compared without it.
                notes.append(f"{value.get('name') or value.get('request_url')}: binary `body` left out")
                continue
            if k == "auth" and "method" in value and isinstance(v, dict) and v.get("type") in ("oauth2", "sigv4", "jwt"):
                # ld's own auth helpers: LoadDensity neither signs nor fetches tokens.
                notes.append(f"{value.get('name') or value.get('request_url')}: ld's `{v['type']}` auth left out")
                continue
            out[k] = rewrite(v, base, notes)
        return out
    return value


def is_http_task(value):
    """LoadDensity's HTTP users run HTTP tasks only: WebSocket, SSE and socket tasks go."""
    url = str(value.get("request_url") or value.get("url") or "")
    return not ("method" in value and ("protocol" in value or url.lower().startswith(("ws:", "wss:"))))


def one_user(plan):
    for action in plan.get("load_density", plan if isinstance(plan, list) else []):
        if isinstance(action, list) and action and action[0] == "LD_start_test" and len(action) > 1:
            kw = action[1]
            if isinstance(kw, dict):
                kw["user_count"] = 1
                kw["spawn_rate"] = 1
                kw["test_time"] = LOADDENSITY_SECONDS
    return plan


def boundary(headers):
    for k, v in headers:
        if k == "content-type":
            m = re.search(r"boundary=\"?([^\";]+)\"?", v)
            if m:
                return m.group(1)
    return None


def normal(req):
    b = boundary(req["headers"])
    body = req["body"]
    headers = {}
    for k, v in req["headers"]:
        if b:
            v = v.replace(b, "BOUNDARY")
        headers.setdefault(k, []).append(v)
    if b:
        body = body.replace(b.encode(), b"BOUNDARY")
    return req["method"], req["target"], headers, body


def compare(name, ours, theirs):
    problems = []
    if len(ours) != len(theirs):
        problems.append(f"ld sent {len(ours)} requests, LoadDensity's first pass {len(theirs)}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        ma, ta, ha, ba = normal(a)
        mb, tb, hb, bb = normal(b)
        where = f"request {i + 1} ({ma} {ta})"
        if ma != mb:
            problems.append(f"{where}: method {ma} vs LoadDensity's {mb}")
        if ta != tb:
            problems.append(f"{where}: target {ta!r} vs LoadDensity's {tb!r}")
        for k in sorted(set(ha) | set(hb)):
            if k in CLIENT_HEADERS:
                continue
            if k in ha and k in hb:
                if ha[k] != hb[k]:
                    problems.append(f"{where}: header {k}: {ha[k]} vs LoadDensity's {hb[k]}")
            else:
                side = "only ld" if k in ha else "only LoadDensity"
                problems.append(f"{where}: header {k} sent by {side}: {ha.get(k) or hb.get(k)}")
        if ba != bb:
            cut = len(os.path.commonprefix([ba, bb]))
            start = max(0, cut - 40)
            problems.append(
                f"{where}: body differs at byte {cut}: ...{ba[start:cut + 80]!r} vs "
                f"LoadDensity's ...{bb[start:cut + 80]!r}"
            )
    for p in problems:
        print(f"  {name}: {p}")
    return not problems


def first_pass(received, count):
    return received[:count]


LOADDENSITY_RUNNER = """
import json, sys
from locust import constant
from je_load_density.utils.executor.action_executor import executor
from je_load_density.wrapper.user_template.request_executor import execute_tasks  # noqa: F401
import je_load_density.wrapper.user_template.fast_http_user_template as fast
import je_load_density.wrapper.user_template.http_user_template as slow
for mod in (fast, slow):
    for obj in vars(mod).values():
        if isinstance(obj, type) and hasattr(obj, "wait_time"):
            obj.wait_time = constant(0.05)
plan = json.load(open(sys.argv[1]))
executor.execute_action(plan["load_density"])
"""


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ld_bin, plans = os.path.abspath(argv[1]), argv[2:]
    server = QuietServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    ok = True
    with tempfile.TemporaryDirectory() as work:
        runner = os.path.join(work, "run_loaddensity.py")
        with open(runner, "w") as f:
            f.write(LOADDENSITY_RUNNER)
        for path in plans:
            name = os.path.relpath(path)
            with open(path) as f:
                text = f.read()
            notes = []
            plan = one_user(rewrite(json.loads(text), base, notes))
            for n in notes:
                print(f"  {name}: {n}")
            env = dict(os.environ)
            for var in set(ENV_RE.findall(text)):
                # A cookie secret holds name=value pairs, as a recorded Cookie header does.
                env[var] = f"c=value-of-{var}" if "COOKIE" in var else f"value-of-{var}"
            target = os.path.join(work, os.path.basename(path))
            with open(target, "w") as f:
                json.dump(plan, f)
            # Data files a plan names (CSV sources, uploads) are found beside it.
            src_dir = os.path.dirname(os.path.abspath(path))
            for entry in os.listdir(src_dir):
                if not entry.endswith(".json") and not os.path.exists(os.path.join(work, entry)):
                    try:
                        os.symlink(os.path.join(src_dir, entry), os.path.join(work, entry))
                    except OSError:
                        pass

            Recorder.received = []
            subprocess.run(
                [ld_bin, "replay", target, "--once", "--no-store", "-q", "--report-dir", work],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=120,
            )
            ours = list(Recorder.received)

            Recorder.received = []
            res = subprocess.run(
                [sys.executable, runner, target], cwd=work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
            )
            theirs = first_pass(list(Recorder.received), len(ours))
            if not Recorder.received and res.returncode != 0:
                print(f"  {name}: LoadDensity did not run: {res.stderr.decode()[-400:]}")
            same = compare(name, ours, theirs)
            print(f"{'same' if same else 'DIFFERENT'}  {name}  ({len(ours)} requests)")
            ok = ok and same
    server.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
