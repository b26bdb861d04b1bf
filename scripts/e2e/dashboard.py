"""Headless Chromium watches ld's live dashboard through the DevTools protocol (the Browser of
chromium_record.py): while the run goes on the page must say `running` with the plan's users
active and its request count rising; once the run is over it must say `done` with the request
count of the run's summary report, in the totals and in the name's row; its "save the report"
button must save a page holding those figures; and every request the page made must have gone
to the dashboard itself. A screenshot of the final page is saved.

  dashboard.py --chromium PATH --url URL --summary FILE --users N --work DIR --screenshot PNG
"""
import base64
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
    p.add_argument("--screenshot", required=True)
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
        urls = []
        browser.handlers.append(lambda m: urls.append(m["params"]["request"]["url"])
                                if m.get("method") == "Network.requestWillBeSent" else None)
        for domain in ("Runtime", "Network", "Page"):
            browser.call(domain + ".enable", session=session)
        downloads = os.path.join(args.work, "downloads")
        os.makedirs(downloads, exist_ok=True)
        browser.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
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
        else:
            later, ok = wait_for(lambda s: s["state"] == "running" and s["requests"] > live["requests"], 10)
            print("later: %s" % later)
            if not ok:
                problems.append("the live numbers did not change: %s then %s" % (live, later))
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
            shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            print("screenshot: %s" % args.screenshot)
            browser.call("Runtime.evaluate", {"expression": 'document.getElementById("save").click()'},
                         session=session)
            saved = os.path.join(downloads, "ld-dashboard-report.html")
            deadline = time.monotonic() + 15
            while not os.path.exists(saved) and time.monotonic() < deadline:
                browser.pump(0.2)
            if not os.path.exists(saved):
                problems.append("the save button saved nothing")
            else:
                report = open(saved).read()
                if '<b id="requests">%d</b>' % total not in report or "<script" in report:
                    problems.append("the saved report does not hold the final figures alone")
                else:
                    print("saved report: %d bytes with the final figures" % len(report))
        elsewhere = [u for u in urls if not u.startswith(args.url)]
        print("the page requested %d URLs" % len(urls))
        if elsewhere:
            problems.append("requests off the dashboard: %s" % elsewhere)
    finally:
        browser.close()
    if problems:
        sys.exit("dashboard check failed: " + "; ".join(problems))
    print("Chromium renders the dashboard's live and final figures")


if __name__ == "__main__":
    main()
