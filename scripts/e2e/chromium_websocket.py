#!/usr/bin/env python3
"""The parts of scripts/e2e/chromium_websocket.sh. Standard library only.

  browse  drives headless Chromium over its DevTools pipe (the Browser class of
          chromium_record.py) through the proxy: opens each URL (a page of
          scripts/fixtures/ws_site.py), waits until its title is 'done', reads window.wsReceived,
          and writes the WebSocket frames Chromium reports (Network.webSocketFrameSent/Received),
          per socket, as JSON.
  har     checks the HAR written by `ld record`: each page, and one WebSocket entry for its
          socket (status 101, _resourceType websocket) whose _webSocketMessages are the messages
          the browser and that server saw, in order, with Chrome's fields (type, time, opcode,
          data); nothing else.
  plan    checks the plan `ld import` made of that HAR: per page, its GET, then on a connection
          of its own a connect task for the socket's URL, one sendrecv task per message sent and
          its echo, and a close task; --step-out writes the names of the JSON message's tasks
          (each with how many tasks have it), the steps the broken servers must fail.
"""

import argparse
import importlib.util
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SITE_PY = os.path.join(HERE, "..", "fixtures", "ws_site.py")


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


record = load("ld_chromium_record", os.path.join(HERE, "chromium_record.py"))
MESSAGES = load("ld_fixture_ws_site", SITE_PY).MESSAGES


# -- browse -----------------------------------------------------------------------------------

class Frames:
    """The page's WebSocket traffic, from Network events."""

    def __init__(self, session):
        self.session = session
        self.sockets = {}
        self.notes = []

    def __call__(self, message):
        if message.get("sessionId") != self.session:
            return
        method, p = message["method"], message.get("params", {})
        if method == "Network.webSocketCreated":
            self.sockets[p["requestId"]] = {"url": p["url"], "status": None, "closed": False, "frames": []}
        elif method == "Network.webSocketHandshakeResponseReceived":
            if p["requestId"] in self.sockets:
                self.sockets[p["requestId"]]["status"] = p["response"]["status"]
        elif method == "Network.webSocketClosed":
            if p["requestId"] in self.sockets:
                self.sockets[p["requestId"]]["closed"] = True
        elif method in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            f = p["response"]
            frame = {"type": "send" if method.endswith("Sent") else "receive",
                     "opcode": f.get("opcode"), "data": f.get("payloadData")}
            if p["requestId"] in self.sockets:
                self.sockets[p["requestId"]]["frames"].append(frame)
            else:
                self.notes.append("a frame of an unknown socket: %s" % frame)
        elif method == "Network.webSocketFrameError":
            self.notes.append("frame error: %s" % p.get("errorMessage"))
        elif method == "Runtime.exceptionThrown":
            self.notes.append("exception: %s" % p["exceptionDetails"].get("text"))
        elif method == "Log.entryAdded":
            e = p["entry"]
            self.notes.append("log %s: %s %s" % (e.get("level"), e.get("text"), e.get("url", "")))


def browse(args):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = args.home
    # The flags of chromium_record.py, and its way of keeping every request on 127.0.0.1: the
    # page and its socket through the proxy, every named host failed inside Chromium.
    letters = ";".join("*%s*" % c for c in "abcdefghijklmnopqrstuvwxyz")
    argv = [args.chromium,
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-default-browser-check", "--password-store=basic",
            "--remote-debugging-pipe", "--user-data-dir=" + args.profile,
            "--proxy-server=http://" + args.proxy,
            "--proxy-bypass-list=<-loopback>;" + letters,
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "about:blank"]
    browser = record.Browser(argv, env, args.chromium_log)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = []
    frames = None
    received = None
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        frames = Frames(session)
        browser.handlers.append(frames)
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.call(domain + ".enable", session=session)
        received = {}
        for url in args.urls:
            started = time.monotonic()
            nav = browser.call("Page.navigate", {"url": url}, session=session)
            if nav.get("errorText"):
                failures.append("%s: navigation failed: %s" % (url, nav["errorText"]))
                continue
            state = None
            while time.monotonic() < started + args.page_timeout:
                try:
                    state = browser.call("Runtime.evaluate", {
                        "expression": "[location.href, document.title, window.wsReceived || null]",
                        "returnByValue": True}, session=session)["result"].get("value")
                except record.ProtocolError:
                    state = None  # between two documents: ask again
                if state and state[0] == url and (state[1] == "done" or state[1].startswith("error")):
                    break
                browser.pump(0.1)
            if state and state[0] == url and state[1].startswith("error"):
                failures.append("%s: the page says %s (received: %s)" % (url, state[1], state[2]))
            elif not state or state[0] != url or state[1] != "done":
                failures.append("%s: the page did not finish within %d s (href, title, received: %s)"
                                % (url, args.page_timeout, state))
            else:
                received[url] = state[2]
                if state[2] != MESSAGES:
                    failures.append("%s: the page received %r, sent %r" % (url, state[2], MESSAGES))
            # The close handshake's events come last.
            settle = time.monotonic() + 5
            while time.monotonic() < settle and not all(s["closed"] for s in frames.sockets.values()):
                browser.pump(0.1)
            print("browse: %s done in %.1f s" % (url, time.monotonic() - started), file=sys.stderr)
    except RuntimeError as e:
        failures.append(str(e))
    finally:
        browser.close()
    sockets = list(frames.sockets.values()) if frames else []
    if len(sockets) != len(args.urls):
        failures.append("the pages opened %d WebSockets, not %d" % (len(sockets), len(args.urls)))
    for s in sockets:
        if s["status"] != 101 or not s["closed"]:
            failures.append("socket %s: handshake status %s, closed %s" % (s["url"], s["status"], s["closed"]))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"sockets": sockets, "received": received,
                   "failures": failures, "notes": frames.notes if frames else []}, f, indent=1)
    for line in failures:
        print("browse: FAIL %s" % line, file=sys.stderr)
    if failures:
        for note in (frames.notes if frames else [])[-20:]:
            print("browse: %s" % note, file=sys.stderr)
        return 1
    return 0


# -- har --------------------------------------------------------------------------------------

def ws_url_of(origin):
    return origin.replace("http", "ws", 1) + "/echo"


def problems_out(problems):
    print("FAIL: %d problem(s)" % len(problems))
    for p in problems:
        print("  - " + p)
    return 1


def check_har(args):
    with open(args.har, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    with open(args.browser, encoding="utf-8") as f:
        seen = json.load(f)
    sites = [site.split("=", 1) for site in args.site]
    problems = []

    urls = sorted(e["request"]["url"] for e in entries)
    want_urls = sorted(u for origin, _ in sites for u in (origin + "/", ws_url_of(origin)))
    if urls != want_urls:
        problems.append("the HAR holds %s, expected %s" % (urls, want_urls))
    want = []
    for text in MESSAGES:
        want += [("send", 1, text), ("receive", 1, text)]
    for origin, server_log in sites:
        ws_url = ws_url_of(origin)
        sockets = [e for e in entries if e["request"]["url"] == ws_url]
        if len(sockets) != 1 or "_webSocketMessages" not in sockets[0]:
            problems.append("%s: %d entries, expected 1 with _webSocketMessages" % (ws_url, len(sockets)))
            continue
        e = sockets[0]
        if e["response"]["status"] != 101:
            problems.append("%s: status %s, expected 101" % (ws_url, e["response"]["status"]))
        if e.get("_resourceType") != "websocket":
            problems.append("%s: _resourceType %r, expected 'websocket'" % (ws_url, e.get("_resourceType")))
        messages = e["_webSocketMessages"]
        for m in messages:
            if set(m) != {"type", "time", "opcode", "data"}:
                problems.append("%s: a message has the fields %s, Chrome writes type, time, opcode, data"
                                % (ws_url, sorted(m)))
        times = [m.get("time") for m in messages]
        if not all(isinstance(t, (int, float)) and t > 1e9 for t in times) or times != sorted(times):
            problems.append("%s: message times are not increasing epoch seconds: %s" % (ws_url, times))
        har = [(m.get("type"), m.get("opcode"), m.get("data")) for m in messages]
        browser = [(f["type"], f["opcode"], f["data"])
                   for s in seen["sockets"] if s["url"] == ws_url for f in s["frames"]]
        with open(server_log, encoding="utf-8") as f:
            events = [json.loads(line) for line in f if line.strip()]
        server = [("send" if ev["event"] == "recv" else "receive", ev["opcode"], ev["data"])
                  for ev in events if ev["event"] in ("recv", "send")]
        for name, got in (("the HAR", har), ("the browser", browser), ("the server", server)):
            if got != want:
                problems.append("%s: %s has the messages %s, expected %s" % (ws_url, name, got, want))
        print("WebSocket entry %s: status %s, %d messages (%s)" % (
            ws_url, e["response"]["status"], len(messages), ", ".join("%s %r" % (t, d) for t, _, d in har)))
    if problems:
        return problems_out(problems)
    print("PASS: the HAR holds the pages and their WebSocket sessions as the browser and the servers saw them")
    return 0


# -- plan -------------------------------------------------------------------------------------

def check_plan(args):
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    tasks = []
    for command in plan["load_density"]:
        if command[0] == "LD_start_test":
            listed = command[1]["tasks"]
            tasks += listed["tasks"] if isinstance(listed, dict) else listed
    for t in tasks:
        print("  task %-30s %-9s %s" % (t.get("name"), t.get("method"), t.get("payload", t.get("request_url", ""))))
    problems = []
    ws = [t for t in tasks if t.get("protocol") == "websocket"]
    http = [t for t in tasks if t.get("protocol") in (None, "http")]
    if [t.get("request_url") for t in http] != [o + "/" for o in args.origin]:
        problems.append("HTTP tasks %s, expected the pages alone" % [t.get("request_url") for t in http])
    connections = []
    for t in ws:
        if t.get("connection") not in connections:
            connections.append(t.get("connection"))
    if len(connections) != len(args.origin):
        problems.append("websocket tasks on the connections %s, expected %d" % (connections, len(args.origin)))
    steps = []
    for origin, connection in zip(args.origin, connections):
        ws_url = ws_url_of(origin)
        session = [t for t in ws if t.get("connection") == connection]
        methods = [t.get("method") for t in session]
        want = ["connect"] + ["sendrecv"] * len(MESSAGES) + ["close"]
        if methods != want:
            problems.append("%s: websocket tasks %s, expected %s" % (connection, methods, want))
        payloads = [t.get("payload") for t in session if t.get("method") == "sendrecv"]
        if payloads != MESSAGES:
            problems.append("%s: sendrecv payloads %s, expected %s" % (connection, payloads, MESSAGES))
        for t in session:
            if t.get("request_url") != ws_url:
                problems.append("task %r is for %s, expected %s" % (t.get("name"), t.get("request_url"), ws_url))
        # The step of the JSON message: the one the broken servers' replies must fail.
        steps += [t.get("name") for t in session if t.get("method") == "sendrecv" and t.get("payload") == MESSAGES[1]]
    if len(steps) != len(args.origin):
        problems.append("the JSON message's tasks are not one per session: %s" % steps)
    if problems:
        return problems_out(problems)
    if args.step_out:
        # Tasks are named by path, so both sessions' steps may have one name (and one row in
        # the replay's summary): one line per name, "COUNT<TAB>NAME".
        with open(args.step_out, "w", encoding="utf-8") as f:
            f.write("".join("%d\t%s\n" % (steps.count(step), step) for step in sorted(set(steps))))
    print("PASS: the plan holds the pages and %d websocket tasks on %d connections" % (len(ws), len(connections)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("browse")
    p.add_argument("--chromium", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--proxy", required=True, help="HOST:PORT of the proxy")
    p.add_argument("--out", required=True)
    p.add_argument("--chromium-log", required=True)
    p.add_argument("--page-timeout", type=int, default=30)
    p.add_argument("urls", nargs="+")
    p = sub.add_parser("har")
    p.add_argument("--har", required=True)
    p.add_argument("--browser", required=True)
    p.add_argument("--site", action="append", required=True,
                   help="ORIGIN=SERVER_LOG, once per site (its page and socket)")
    p = sub.add_parser("plan")
    p.add_argument("--plan", required=True)
    p.add_argument("--step-out", help="write the name of the JSON message's task here")
    p.add_argument("--origin", action="append", required=True, help="each site's origin, in order")
    args = ap.parse_args()
    return {"browse": browse, "har": check_har, "plan": check_plan}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
