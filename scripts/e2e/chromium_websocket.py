#!/usr/bin/env python3
"""The parts of scripts/e2e/chromium_websocket.sh. Standard library only.

  browse  drives headless Chromium over its DevTools pipe (the Browser class of
          chromium_record.py) through the proxy: opens the page of scripts/fixtures/ws_site.py,
          waits until its title is 'done', reads window.wsReceived, and writes the WebSocket
          frames Chromium reports (Network.webSocketFrameSent/Received) as JSON.
  har     checks the HAR written by `ld record`: one WebSocket entry for the page's socket
          (status 101, _resourceType websocket), whose _webSocketMessages are the messages the
          browser and the server saw, in order, with Chrome's fields (type, time, opcode, data).
  plan    checks the plan `ld import` made of that HAR: a connect task for the socket's URL,
          one sendrecv task per message sent and its echo, a close task; --step-out writes the
          name of the JSON message's task, the step the broken servers must fail.
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
        self.frames = []
        self.notes = []

    def __call__(self, message):
        if message.get("sessionId") != self.session:
            return
        method, p = message["method"], message.get("params", {})
        if method == "Network.webSocketCreated":
            self.sockets[p["requestId"]] = {"url": p["url"], "status": None, "closed": False}
        elif method == "Network.webSocketHandshakeResponseReceived":
            if p["requestId"] in self.sockets:
                self.sockets[p["requestId"]]["status"] = p["response"]["status"]
        elif method == "Network.webSocketClosed":
            if p["requestId"] in self.sockets:
                self.sockets[p["requestId"]]["closed"] = True
        elif method in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            f = p["response"]
            self.frames.append({"type": "send" if method.endswith("Sent") else "receive",
                                "opcode": f.get("opcode"), "data": f.get("payloadData")})
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
        started = time.monotonic()
        nav = browser.call("Page.navigate", {"url": args.url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError("navigation failed: %s" % nav["errorText"])
        state = None
        while time.monotonic() < started + args.page_timeout:
            try:
                state = browser.call("Runtime.evaluate", {
                    "expression": "[location.href, document.title, window.wsReceived || null]",
                    "returnByValue": True}, session=session)["result"].get("value")
            except record.ProtocolError:
                state = None
            if state and state[0] == args.url and (state[1] == "done" or state[1].startswith("error")):
                break
            browser.pump(0.1)
        if not state or state[1] != "done":
            failures.append("the page did not finish within %d s (href, title, received: %s)"
                            % (args.page_timeout, state))
        else:
            received = state[2]
            if received != MESSAGES:
                failures.append("the page received %r, sent %r" % (received, MESSAGES))
        # The close handshake's events come last.
        settle = time.monotonic() + 5
        while time.monotonic() < settle and not all(s["closed"] for s in frames.sockets.values()):
            browser.pump(0.1)
        print("browse: %s done in %.1f s" % (args.url, time.monotonic() - started), file=sys.stderr)
    except RuntimeError as e:
        failures.append(str(e))
    finally:
        browser.close()
    sockets = list(frames.sockets.values()) if frames else []
    if len(sockets) != 1:
        failures.append("the page opened %d WebSockets, not 1" % len(sockets))
    for s in sockets:
        if s["status"] != 101 or not s["closed"]:
            failures.append("socket %s: handshake status %s, closed %s" % (s["url"], s["status"], s["closed"]))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"sockets": sockets, "frames": frames.frames if frames else [], "received": received,
                   "failures": failures, "notes": frames.notes if frames else []}, f, indent=1)
    for line in failures:
        print("browse: FAIL %s" % line, file=sys.stderr)
    if failures:
        for note in (frames.notes if frames else [])[-20:]:
            print("browse: %s" % note, file=sys.stderr)
        return 1
    return 0


# -- har --------------------------------------------------------------------------------------

def check_har(args):
    with open(args.har, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    with open(args.browser, encoding="utf-8") as f:
        seen = json.load(f)
    with open(args.server_log, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    problems = []
    ws_url = args.origin.replace("http://", "ws://", 1) + "/echo"

    urls = sorted(e["request"]["url"] for e in entries)
    want_urls = sorted([args.origin + "/", ws_url])
    if urls != want_urls:
        problems.append("the HAR holds %s, expected %s" % (urls, want_urls))
    sockets = [e for e in entries if "_webSocketMessages" in e]
    if len(sockets) != 1:
        problems.append("%d entries with _webSocketMessages, expected 1" % len(sockets))
    for e in sockets:
        if e["request"]["url"] != ws_url:
            problems.append("the WebSocket entry is for %s, expected %s" % (e["request"]["url"], ws_url))
        if e["response"]["status"] != 101:
            problems.append("the WebSocket entry's status is %s, expected 101" % e["response"]["status"])
        if e.get("_resourceType") != "websocket":
            problems.append("the WebSocket entry's _resourceType is %r" % e.get("_resourceType"))
        messages = e["_webSocketMessages"]
        for m in messages:
            if set(m) != {"type", "time", "opcode", "data"}:
                problems.append("a message has the fields %s, Chrome writes type, time, opcode, data" % sorted(m))
        times = [m.get("time") for m in messages]
        if not all(isinstance(t, (int, float)) and t > 1e9 for t in times) or times != sorted(times):
            problems.append("message times are not increasing epoch seconds: %s" % times)
        har = [(m.get("type"), m.get("opcode"), m.get("data")) for m in messages]
        want = []
        for text in MESSAGES:
            want += [("send", 1, text), ("receive", 1, text)]
        browser = [(f["type"], f["opcode"], f["data"]) for f in seen["frames"]]
        server = [("send" if ev["event"] == "recv" else "receive", ev["opcode"], ev["data"])
                  for ev in events if ev["event"] in ("recv", "send")]
        for name, got in (("the HAR", har), ("the browser", browser), ("the server", server)):
            if got != want:
                problems.append("%s: the messages are %s, expected %s" % (name, got, want))
        print("WebSocket entry %s: status %s, %d messages (%s)" % (
            e["request"]["url"], e["response"]["status"], len(messages),
            ", ".join("%s %r" % (t, d) for t, _, d in har)))
    if problems:
        print("FAIL: %d problem(s)" % len(problems))
        for p in problems:
            print("  - " + p)
        return 1
    print("PASS: the HAR holds the page and its WebSocket session as the browser and the server saw it")
    return 0


# -- plan -------------------------------------------------------------------------------------

def check_plan(args):
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    ws_url = args.origin.replace("http://", "ws://", 1) + "/echo"
    tasks = []
    for command in plan["load_density"]:
        if command[0] == "LD_start_test":
            listed = command[1]["tasks"]
            tasks += listed["tasks"] if isinstance(listed, dict) else listed
    problems = []
    ws = [t for t in tasks if t.get("protocol") == "websocket" or str(t.get("request_url", "")).startswith("ws")]
    methods = [t.get("method") for t in ws]
    want = ["connect"] + ["sendrecv"] * len(MESSAGES) + ["close"]
    if methods != want:
        problems.append("websocket tasks %s, expected %s" % (methods, want))
    payloads = [t.get("payload") for t in ws if t.get("method") == "sendrecv"]
    if payloads != MESSAGES:
        problems.append("sendrecv payloads %s, expected %s" % (payloads, MESSAGES))
    for t in ws:
        if t.get("request_url") not in (None, ws_url):
            problems.append("task %r is for %s, expected %s" % (t.get("name"), t.get("request_url"), ws_url))
    if ws and ws[0].get("request_url") != ws_url:
        problems.append("the connect task names no URL %s" % ws_url)
    http = [t for t in tasks if t not in ws]
    if [t.get("request_url") for t in http] != [args.origin + "/"]:
        problems.append("HTTP tasks %s, expected the page alone" % [t.get("request_url") for t in http])
    for t in tasks:
        print("  task %-28s %-8s %s" % (t.get("name"), t.get("method"), t.get("payload", t.get("request_url", ""))))
    # The step of the JSON message: the one the broken servers' replies must fail.
    json_steps = [t.get("name") for t in ws if t.get("method") == "sendrecv" and t.get("payload") == MESSAGES[1]]
    if len(json_steps) != 1:
        problems.append("no single sendrecv task for the JSON message")
    elif args.step_out:
        with open(args.step_out, "w", encoding="utf-8") as f:
            f.write(json_steps[0] + "\n")
    if problems:
        print("FAIL: %d problem(s)" % len(problems))
        for p in problems:
            print("  - " + p)
        return 1
    print("PASS: the plan holds the page and %d websocket tasks" % len(ws))
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
    p.add_argument("url")
    p = sub.add_parser("har")
    p.add_argument("--har", required=True)
    p.add_argument("--browser", required=True)
    p.add_argument("--server-log", required=True)
    p.add_argument("--origin", required=True)
    p = sub.add_parser("plan")
    p.add_argument("--plan", required=True)
    p.add_argument("--step-out", help="write the name of the JSON message's task here")
    p.add_argument("--origin", required=True)
    args = ap.parse_args()
    return {"browse": browse, "har": check_har, "plan": check_plan}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
