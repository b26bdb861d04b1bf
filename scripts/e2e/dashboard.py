"""Headless Chromium watches ld's live dashboard through the DevTools protocol (the Browser of
chromium_record.py): while the run goes on the page must say `running` with requests counted
and the plan's users active; once the run is over it must say `done` with the request count of
the run's summary report, in the totals and in the name's row.

  dashboard.py --chromium PATH --url URL --summary FILE --users N --work DIR
"""
import argparse
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


record = load("ld_chromium_record", os.path.join(HERE, "chromium_record.py"))

READ = """JSON.stringify({
  state: document.getElementById("state").textContent,
  requests: Number(document.getElementById("requests").textContent),
  users: document.getElementById("users").textContent,
  row: Array.from(document.querySelectorAll("#names tr")).map(r => Array.from(r.cells).map(c => c.textContent)),
})"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chromium", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = args.work
    argv = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-default-browser-check", "--password-store=basic",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--remote-debugging-pipe", "--user-data-dir=" + os.path.join(args.work, "profile"),
            "about:blank"]
    browser = record.Browser(argv, env, os.path.join(args.work, "chromium.log"))
    problems = []
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Runtime.enable", session=session)
        browser.call("Page.navigate", {"url": args.url}, session=session)

        def read():
            try:
                value = browser.call("Runtime.evaluate", {"expression": READ, "returnByValue": True},
                                     session=session)["result"].get("value")
                return json.loads(value) if value else None
            except (record.ProtocolError, ValueError):
                return None

        def wait_for(test, seconds):
            deadline = time.monotonic() + seconds
            seen = None
            while time.monotonic() < deadline:
                seen = read()
                if seen and test(seen):
                    return seen, True
                browser.pump(0.2)
            return seen, False

        live, ok = wait_for(lambda s: s["state"] == "running" and s["requests"] > 0, 20)
        print("live:  %s" % live)
        if not ok:
            problems.append("the page never showed the run going on: %s" % live)
        elif live["users"] != args.users:
            problems.append("live users %r, expected %s" % (live["users"], args.users))
        final, ok = wait_for(lambda s: s["state"] == "done", 40)
        print("final: %s" % final)
        if not ok:
            problems.append("the page never said done: %s" % final)
        else:
            deadline = time.monotonic() + 10
            while not os.path.exists(args.summary) and time.monotonic() < deadline:
                time.sleep(0.1)
            total = json.load(open(args.summary))["totals"]["requests"]
            print("the summary counts %d" % total)
            if final["requests"] != total:
                problems.append("the page counts %d, the summary %d" % (final["requests"], total))
            if not final["row"] or final["row"][0][1] != str(total):
                problems.append("the name's row is %s" % final["row"])
    finally:
        browser.close()
    if problems:
        sys.exit("dashboard check failed: " + "; ".join(problems))
    print("Chromium renders the dashboard's live and final figures")


if __name__ == "__main__":
    main()
