#!/usr/bin/env python3
"""The three parts of scripts/e2e/chromium_record.sh. Standard library only.

  serve   the test site (scripts/fixtures/site.py) over HTTP and HTTPS on 127.0.0.1, plus two
          routes of its own, logging every request it answers (method, URL, status, and the
          SHA-256 of the request body and of the response body before any gzip) to a JSON-lines
          file. Prints {"http": PORT, "https": PORT} on its first line of stdout.
  browse  drives headless Chromium through the DevTools protocol over --remote-debugging-pipe:
          opens each URL, waits until the page's script sets its title to 'done', and writes
          every HTTP(S) request the page made (one item per redirect hop) as JSON.
  check   compares the HAR written by `ld record` with the server's log and the browser's list:
          the same requests, the same statuses, the same request and response bodies.
"""

import argparse
import base64
import collections
import fcntl
import hashlib
import importlib.util
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SITE_PY = os.path.join(HERE, "..", "fixtures", "site.py")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# -- serve ------------------------------------------------------------------------------------

# Fetches run all at once, so the browser multiplexes them (HTTP/2 through the proxy's TLS
# interception) and the proxy has several exchanges in flight. `other` is a second origin,
# fetched cross-origin (the site answers with Access-Control-Allow-Origin: *).
PARALLEL_HTML = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>loading</title><link rel="icon" href="data:,"></head>
<body>
<p>parallel fetches</p>
<script>
const other = new URLSearchParams(location.search).get('other');
const upload = new Uint8Array(200000).map(function (_, i) { return (i * 7919 + (i >> 8)) & 255; });
const requests = [
  ['/api/items?page=1'], ['/api/items?page=2'], ['/api/items?page=3'],
  ['/api/search?q=item%201&api_key=SECRET123'],
  ['/static/logo.png'], ['/static/app.css'],
  ['/blob/300000'],
  ['/new'],
  ['/missing'],
  ['/api/binary', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: upload }],
  ['/api/form', { method: 'POST', body: new URLSearchParams({ city: 'K\\u00f8benhavn', n: '1 2' }) }],
];
if (other) { requests.push([other + '/api/items?page=2']); requests.push([other + '/blob/1000']); }
Promise.all(requests.map(function (r) {
  return fetch(r[0], r[1]).then(function (res) { return res.arrayBuffer().then(function () { return res.status; }); });
})).then(function () { document.title = 'done'; },
         function (e) { document.title = 'error: ' + e; });
</script>
</body>
</html>
"""


def blob(n):
    """n deterministic bytes that are not valid UTF-8 (the HAR keeps them as base64)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(4, "big")).digest()
        i += 1
    return bytes(out[:n])


def load_site():
    spec = importlib.util.spec_from_file_location("ld_fixture_site", SITE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handler_class(site, scheme, log_file, log_lock):
    class Handler(site.Handler):
        def parse_request(self):
            self.req_body = b""
            self.resp_body = None
            return super().parse_request()

        def body(self):
            self.req_body = super().body()
            return self.req_body

        def send(self, status, body=b"", ctype=None, headers=(), allow_gzip=False):
            self.resp_body = b"" if status == 204 else body
            headers = list(headers) + [("Access-Control-Allow-Origin", "*")]
            super().send(status, body, ctype, headers, allow_gzip)

        # Called by send_response, before the head and body go out: a client that saw the
        # response always finds it in the log.
        def log_request(self, code="-", size="-"):
            port = self.server.server_address[1]
            line = {
                "method": self.command,
                "url": "%s://127.0.0.1:%d%s" % (scheme, port, self.path),
                "status": int(code),
                "request_sha256": sha256(self.req_body),
                "request_size": len(self.req_body),
                "response_sha256": None if self.resp_body is None else sha256(self.resp_body),
                "response_size": None if self.resp_body is None else len(self.resp_body),
            }
            with log_lock:
                log_file.write(json.dumps(line) + "\n")
                log_file.flush()

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/parallel":
                self.send(200, PARALLEL_HTML, "text/html; charset=utf-8")
            elif path.startswith("/blob/") and path[6:].isdigit() and int(path[6:]) <= 4 << 20:
                self.send(200, blob(int(path[6:])), "application/octet-stream")
            else:
                super().do_GET()

    return Handler


def serve(args):
    site = load_site()
    log_file = open(args.log, "a", encoding="utf-8")
    log_lock = threading.Lock()

    http_srv = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(site, "http", log_file, log_lock))
    https_srv = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(site, "https", log_file, log_lock))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    # The handshake happens on the handler's thread, never in the accept loop.
    https_srv.socket = ctx.wrap_socket(https_srv.socket, server_side=True, do_handshake_on_connect=False)
    for srv in (http_srv, https_srv):
        srv.daemon_threads = True
        srv.quiet = True

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=https_srv.serve_forever, daemon=True).start()
    print(json.dumps({"http": http_srv.server_address[1], "https": https_srv.server_address[1]}), flush=True)
    try:
        http_srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


# -- browse -----------------------------------------------------------------------------------

class ProtocolError(RuntimeError):
    """The browser answered a command with an error."""


class Browser:
    """Chromium with the DevTools protocol on fds 3 (its input) and 4 (its output): JSON
    messages, each ended by a NUL byte."""

    def __init__(self, argv, env, log_path):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium's ends move above 10 first, so that putting them on fds 3 and 4 cannot
        # overwrite one with the other; the shell then execs Chromium with them there.
        to_chrome_r = self.move_high(to_chrome_r)
        from_chrome_w = self.move_high(from_chrome_w)
        script = 'exec 3<&%d 4>&%d %d<&- %d>&-; exec "$@"' % (
            to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", script, "bash"] + argv,
            pass_fds=(to_chrome_r, from_chrome_w), env=env, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.last_id = 0
        self.handlers = []

    @staticmethod
    def move_high(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def write(self, message):
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self.to_chrome, data):]
        except BrokenPipeError:
            raise RuntimeError("Chromium closed the DevTools pipe (exit code %s)" % self.proc.poll())

    def read(self, deadline):
        """The next message, or None when the deadline passes."""
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if ready:
                chunk = os.read(self.from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (exit code %s)" % self.proc.poll())
                self.buf += chunk
        message, self.buf = self.buf.split(b"\0", 1)
        return json.loads(message)

    def dispatch(self, message):
        for handler in self.handlers:
            handler(message)

    def call(self, method, params=None, session=None, timeout=30):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.write(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.read(deadline)
            if reply is None:
                raise RuntimeError("no answer to %s within %d s" % (method, timeout))
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise ProtocolError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            if "method" in reply:
                self.dispatch(reply)

    def pump(self, seconds):
        """Handles events for a while."""
        deadline = time.monotonic() + seconds
        while True:
            message = self.read(deadline)
            if message is None:
                return
            if "method" in message:
                self.dispatch(message)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
            except (RuntimeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Renderers and helpers are in the browser's process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.log.close()


class Requests:
    """Every HTTP(S) request of the page, one item per redirect hop, from Network events."""

    def __init__(self, session):
        self.session = session
        self.hops = []
        self.current = {}
        self.notes = []

    def __call__(self, message):
        if message.get("sessionId") != self.session:
            return
        method, p = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not url.startswith(("http://", "https://")):
                return
            rid = p["requestId"]
            if "redirectResponse" in p and rid in self.current:
                hop = self.hops[self.current[rid]]
                hop["status"] = p["redirectResponse"]["status"]
                hop["finished"] = True
            self.current[rid] = len(self.hops)
            self.hops.append({"method": p["request"]["method"], "url": url, "status": None,
                              "finished": False, "error": None, "type": p.get("type")})
        elif method == "Network.responseReceived":
            if p["requestId"] in self.current:
                self.hops[self.current[p["requestId"]]]["status"] = p["response"]["status"]
        elif method == "Network.loadingFinished":
            if p["requestId"] in self.current:
                self.hops[self.current[p["requestId"]]]["finished"] = True
        elif method == "Network.loadingFailed":
            if p["requestId"] in self.current:
                hop = self.hops[self.current[p["requestId"]]]
                hop["finished"] = True
                error = p.get("errorText") or "failed"
                if error == "net::ERR_ABORTED" and hop["status"] is not None:
                    # Answered, then cancelled because the page never read the body (the
                    # site's 204 to DELETE) and moved on: a request made and answered.
                    hop["aborted_after_response"] = True
                else:
                    hop["error"] = error
        elif method == "Log.entryAdded":
            e = p["entry"]
            self.notes.append("log %s: %s %s" % (e.get("level"), e.get("text"), e.get("url", "")))
        elif method == "Runtime.exceptionThrown":
            self.notes.append("exception: %s" % p["exceptionDetails"].get("text"))
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.notes.append("console.%s: %s" % (p.get("type"), text))


def browse(args):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = args.home
    argv = [args.chromium,
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-default-browser-check", "--password-store=basic",
            "--remote-debugging-pipe", "--user-data-dir=" + args.profile,
            "about:blank"]
    if args.proxy:
        # The proxy as a user sets it: <-loopback> so that 127.0.0.1 goes through it too. The
        # browser's own services (network time, component updates, Google account checks) still
        # call Google hosts whatever the flags say; the bypass rules send every host name with a
        # letter in it direct instead, where the resolver rule fails it inside Chromium, so only
        # 127.0.0.1 crosses the proxy and nothing leaves the machine, not even a DNS query.
        letters = ";".join("*%s*" % c for c in "abcdefghijklmnopqrstuvwxyz")
        argv[-1:-1] = ["--proxy-server=http://" + args.proxy,
                       "--proxy-bypass-list=<-loopback>;" + letters,
                       "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
    browser = Browser(argv, env, args.chromium_log)
    # SIGTERM from the calling script: close Chromium on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = []
    requests = None
    try:
        version = browser.call("Browser.getVersion")
        print("browse: %s" % version.get("product"), file=sys.stderr)
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        requests = Requests(session)
        browser.handlers.append(requests)
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.call(domain + ".enable", session=session)
        for url in args.urls:
            started = time.monotonic()
            nav = browser.call("Page.navigate", {"url": url}, session=session)
            if nav.get("errorText"):
                failures.append("%s: navigation failed: %s" % (url, nav["errorText"]))
                continue
            deadline = started + args.page_timeout
            state = None
            while time.monotonic() < deadline:
                try:
                    state = browser.call("Runtime.evaluate", {
                        "expression": "[location.href, document.readyState, document.title]",
                        "returnByValue": True}, session=session)["result"].get("value")
                except ProtocolError:
                    state = None  # between two documents: ask again
                if state and state[0] == url and (state[2] == "done" or state[2].startswith("error")):
                    break
                browser.pump(0.1)
            if not state or state[0] != url or state[2] != "done":
                failures.append("%s: the page did not finish within %d s (href, readyState, title: %s)"
                                % (url, args.page_timeout, state))
                continue
            # Everything the page waited for has finished; give late events a moment.
            settle = time.monotonic() + 5
            while time.monotonic() < settle and not all(h["finished"] for h in requests.hops):
                browser.pump(0.1)
            browser.pump(0.2)
            print("browse: %s done in %.1f s" % (url, time.monotonic() - started), file=sys.stderr)
    except RuntimeError as e:
        failures.append(str(e))
    finally:
        browser.close()
    hops = requests.hops if requests else []
    for hop in hops:
        if hop["error"]:
            failures.append("%s %s failed in the browser: %s" % (hop["method"], hop["url"], hop["error"]))
        elif not hop["finished"] or hop["status"] is None:
            failures.append("%s %s never finished in the browser" % (hop["method"], hop["url"]))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"requests": hops, "failures": failures,
                   "notes": requests.notes if requests else []}, f, indent=1)
    if failures:
        for line in failures:
            print("browse: FAIL %s" % line, file=sys.stderr)
        for note in (requests.notes if requests else [])[-20:]:
            print("browse: %s" % note, file=sys.stderr)
        return 1
    return 0


# -- check ------------------------------------------------------------------------------------

def har_body(content):
    if content is None or "text" not in content or content["text"] is None:
        return b""
    if content.get("encoding") == "base64":
        return base64.b64decode(content["text"])
    return content["text"].encode("utf-8")


def check(args):
    with open(args.har, encoding="utf-8") as f:
        har = json.load(f)
    entries = har["log"]["entries"]
    with open(args.server_log, encoding="utf-8") as f:
        served = [json.loads(line) for line in f if line.strip()]
    with open(args.browser, encoding="utf-8") as f:
        seen = json.load(f)["requests"]
    origins = tuple(o.rstrip("/") + "/" for o in args.origin)
    problems = []

    def key(method, url):
        return (method, url)

    by_key = collections.defaultdict(lambda: {"browser": [], "server": [], "har": []})
    for hop in seen:
        by_key[key(hop["method"], hop["url"])]["browser"].append(hop)
    for line in served:
        by_key[key(line["method"], line["url"])]["server"].append(line)
    for entry in entries:
        req = entry["request"]
        by_key[key(req["method"], req["url"])]["har"].append(entry)

    # 1. The same requests: every one the browser made reached the server and is in the HAR,
    #    and the HAR holds nothing else.
    for (method, url), found in sorted(by_key.items()):
        n_b, n_s, n_h = len(found["browser"]), len(found["server"]), len(found["har"])
        if not url.startswith(origins):
            problems.append("request to an unexpected origin: %s %s (browser %d, server %d, HAR %d)"
                            % (method, url, n_b, n_s, n_h))
            found["skip"] = True
        elif not n_b == n_s == n_h:
            problems.append("%s %s: browser made %d, server answered %d, HAR holds %d"
                            % (method, url, n_b, n_s, n_h))
            found["skip"] = True

    # 2. Statuses and bodies, compared as multisets per request (identical requests may come
    #    back in any order).
    statuses = collections.Counter()
    versions = collections.Counter()
    cancelled_redirects = []
    bodies = {"response": 0, "request": 0, "gzip": 0, "base64": 0}
    for (method, url), found in sorted(by_key.items()):
        if found.get("skip"):
            continue
        har_status = sorted(e["response"]["status"] for e in found["har"])
        server_status = sorted(s["status"] for s in found["server"])
        browser_status = sorted(h["status"] for h in found["browser"] if h["status"] is not None)
        if found["server"] and har_status != server_status:
            problems.append("%s %s: status in the HAR %s, from the server %s" % (method, url, har_status, server_status))
        if found["browser"] and browser_status != server_status:
            problems.append("%s %s: status in the browser %s, from the server %s"
                            % (method, url, browser_status, server_status))
        for entry in found["har"]:
            statuses[entry["response"]["status"]] += 1
            scheme = entry["request"]["url"].split(":", 1)[0]
            versions["%s: browser-proxy %s, proxy-server %s" % (
                scheme, entry["request"].get("httpVersion"), entry["response"].get("httpVersion"))] += 1
            if "_error" in entry:
                problems.append("%s %s: the HAR entry is an error: %s" % (method, url, entry["_error"]))
        # Over HTTP/2 Chromium may cancel a redirect's body once it has the Location; ld then
        # marks the entry incomplete, as it should. Any other incomplete entry is a problem.
        complete = []
        for e in found["har"]:
            if not e.get("_incomplete"):
                complete.append(e)
            elif 300 <= e["response"]["status"] < 400:
                cancelled_redirects.append("%s %s" % (method, url))
            else:
                problems.append("%s %s: the HAR entry is incomplete: %s" % (method, url, e.get("comment")))
        if all(s["response_sha256"] is not None for s in found["server"]):
            got = collections.Counter(sha256(har_body(e["response"].get("content"))) for e in complete)
            want = collections.Counter(s["response_sha256"] for s in found["server"])
            if got - want:
                problems.append("%s %s: response body in the HAR differs from what the server sent" % (method, url))
            else:
                bodies["response"] += len(complete)
                for e in complete:
                    headers = {h["name"].lower(): h["value"] for h in e["response"]["headers"]}
                    bodies["gzip"] += "gzip" in headers.get("content-encoding", "")
                    bodies["base64"] += e["response"].get("content", {}).get("encoding") == "base64"
        got = sorted(sha256(har_body(e["request"].get("postData"))) for e in found["har"])
        want = sorted(s["request_sha256"] for s in found["server"])
        if got != want:
            problems.append("%s %s: request body in the HAR differs from what the server read" % (method, url))
        elif any(s["request_size"] for s in found["server"]):
            bodies["request"] += len(got)

    # 3. A few entries read as a person would.
    def entry_for(method, suffix, scheme):
        for e in entries:
            if e["request"]["method"] == method and e["request"]["url"].startswith(scheme + "://") \
                    and e["request"]["url"].endswith(suffix):
                return e
        problems.append("no %s %s entry over %s" % (method, suffix, scheme))
        return None

    for scheme in ("http", "https"):
        e = entry_for("GET", "/api/items?page=1", scheme)
        if e:
            items = json.loads(har_body(e["response"]["content"]))
            if items.get("page") != 1 or len(items.get("items", [])) != 10:
                problems.append("%s /api/items?page=1: unexpected JSON in the HAR" % scheme)
        e = entry_for("GET", "/old", scheme)
        if e and (e["response"]["status"] != 302 or not e["response"].get("redirectURL", "").endswith("/new")):
            problems.append("%s /old: expected a 302 to /new, HAR has %s %r"
                            % (scheme, e["response"]["status"], e["response"].get("redirectURL")))
        e = entry_for("POST", "/api/login", scheme)
        if e and json.loads(e["request"]["postData"]["text"]).get("username") != "alice":
            problems.append("%s /api/login: request JSON not recorded" % scheme)
        e = entry_for("GET", "/static/logo.png", scheme)
        if e and not har_body(e["response"]["content"]).startswith(b"\x89PNG\r\n\x1a\n"):
            problems.append("%s /static/logo.png: not a PNG in the HAR" % scheme)

    # Report.
    print("requests per origin (browser / server / HAR):")
    for origin in origins:
        n = [sum(len(f[k]) for (m, u), f in by_key.items() if u.startswith(origin))
             for k in ("browser", "server", "har")]
        print("  %-32s %3d / %3d / %3d" % (origin, n[0], n[1], n[2]))
    print("statuses in the HAR: %s" % ", ".join("%d x%d" % kv for kv in sorted(statuses.items())))
    print("httpVersion in the HAR:")
    for version, n in sorted(versions.items()):
        print("  %-50s x%d" % (version, n))
    print("response bodies identical to what the server sent: %d of %d entries (%d gzip-decoded, %d base64)"
          % (bodies["response"], len(entries), bodies["gzip"], bodies["base64"]))
    if cancelled_redirects:
        print("redirects whose body the browser cancelled, marked incomplete: %s" % ", ".join(cancelled_redirects))
    print("request bodies identical to what the server read: %d" % bodies["request"])
    if problems:
        print("FAIL: %d problem(s)" % len(problems))
        for p in problems:
            print("  - " + p)
        return 1
    print("PASS: the HAR holds every request the pages made (%d), with the server's statuses and bodies"
          % len(entries))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--log", required=True)
    p = sub.add_parser("browse")
    p.add_argument("--chromium", required=True)
    p.add_argument("--home", required=True, help="HOME for Chromium (its NSS database is HOME/.pki/nssdb)")
    p.add_argument("--profile", required=True)
    p.add_argument("--proxy", required=True, help="HOST:PORT of the proxy ('' for none)")
    p.add_argument("--out", required=True)
    p.add_argument("--chromium-log", required=True)
    p.add_argument("--page-timeout", type=int, default=30)
    p.add_argument("urls", nargs="+")
    p = sub.add_parser("check")
    p.add_argument("--har", required=True)
    p.add_argument("--server-log", required=True)
    p.add_argument("--browser", required=True)
    p.add_argument("--origin", action="append", required=True)
    args = ap.parse_args()
    if args.command == "serve":
        serve(args)
        return 0
    return {"browse": browse, "check": check}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
