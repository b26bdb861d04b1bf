#!/usr/bin/env python3
"""End to end: real servers receive what `ld replay --out` sends.

Debian's `prometheus` scrapes `--out prometheus=` once a second and its query API must return
the run's request count; the same Prometheus, its remote-write receiver on, takes
`--out prometheus-rw=` and must count the same (those series carry no `job` label); Debian's `influxdb` (1.x) takes `--out influxdb=http://.../write`
and a count query must return the same number. Both are started here on 127.0.0.1 with
scratch directories, as is the HTTP server the plan loads.

    scripts/e2e/exporters.py LD_BIN

Exits 0 when every count equals the summary's; prints what differs otherwise.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request


def log(msg):
    print(f"[exporters-e2e] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, data=None, timeout=5):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def wait_for(what, check, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"[exporters-e2e] FAIL: {what} did not come up within {seconds} s")


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"fine" if self.path == "/ok" else b"busy"
        self.send_response(200 if self.path == "/ok" else 503)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    ld = os.path.abspath(sys.argv[1])
    scratch = tempfile.mkdtemp(prefix="ld-exporters-")
    procs = []
    ok = False
    try:
        api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        api_port = api.server_address[1]

        # InfluxDB 1.x on loopback, every directory in the scratch space.
        influx_http, influx_rpc = free_port(), free_port()
        conf = os.path.join(scratch, "influxdb.conf")
        with open(conf, "w") as f:
            f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:{influx_rpc}"
[meta]
  dir = "{scratch}/influx/meta"
[data]
  dir = "{scratch}/influx/data"
  wal-dir = "{scratch}/influx/wal"
[http]
  bind-address = "127.0.0.1:{influx_http}"
  log-enabled = false
""")
        procs.append(subprocess.Popen(["influxd", "-config", conf],
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(scratch, "influxd.log"), "w")))
        influx = f"http://127.0.0.1:{influx_http}"
        wait_for("influxd", lambda: urllib.request.urlopen(f"{influx}/ping", timeout=2).status == 204)
        get_json(f"{influx}/query", data=urllib.parse.urlencode({"q": "CREATE DATABASE ld"}).encode())

        # Prometheus scraping ld's endpoint once a second.
        ld_prom, prom_port = free_port(), free_port()
        pconf = os.path.join(scratch, "prometheus.yml")
        with open(pconf, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ld
    static_configs:
      - targets: ["127.0.0.1:{ld_prom}"]
""")
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={pconf}", f"--storage.tsdb.path={scratch}/prom",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--web.enable-remote-write-receiver"],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(scratch, "prometheus.log"), "w")))
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for("prometheus", lambda: urllib.request.urlopen(f"{prom}/-/ready", timeout=2).status == 200)

        tasks = [
            {"method": "get", "request_url": f"http://127.0.0.1:{api_port}/ok", "name": "fine",
             "think_time": 0.02, "assertions": [{"type": "status_code", "value": 200}]},
            {"method": "get", "request_url": f"http://127.0.0.1:{api_port}/busy",
             "name": "busy step", "think_time": 0.02},
        ]
        plan = {"load_density": [["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"}, "user_count": 2, "spawn_rate": 100,
            "test_time": 4, "tasks": tasks}]]}
        with open(os.path.join(scratch, "plan.json"), "w") as f:
            json.dump(plan, f)
        log("ld replay with --out prometheus and --out influxdb=http://")
        run = subprocess.Popen(
            [ld, "replay", "plan.json", "-q", "--no-store", "--report", "summary",
             "--out", f"prometheus=127.0.0.1:{ld_prom}",
             "--out", f"influxdb={influx}/write?db=ld",
             "--out", f"prometheus-rw=http://127.0.0.1:{prom_port}/api/v1/write", "--linger", "8s"],
            cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(run)
        # The summary is written when the run ends; ld then serves its final figures for the
        # --linger period, while Prometheus scrapes them (a target that is gone would make
        # its series stale, so the queries are made before ld exits).
        summary_path = os.path.join(scratch, "loaddensity-summary.json")
        wait_for("the run's summary", lambda: os.path.exists(summary_path), seconds=60)
        time.sleep(3)
        with open(summary_path) as f:
            total = json.load(f)["totals"]["requests"]
        log(f"the summary counts {total} requests")

        q = urllib.parse.urlencode({"query": 'sum(loaddensity_requests_total{job="ld"})'})
        result = get_json(f"{prom}/api/v1/query?{q}")["data"]["result"]
        scraped = int(float(result[0]["value"][1])) if result else None
        q = urllib.parse.urlencode({"query": 'sum(loaddensity_requests_total{job="",name="busy step",status="503"})'})
        result = get_json(f"{prom}/api/v1/query?{q}")["data"]["result"]
        written_busy = int(float(result[0]["value"][1])) if result else None
        q = urllib.parse.urlencode({"query": 'sum(loaddensity_requests_total{job=""})'})
        result = get_json(f"{prom}/api/v1/query?{q}")["data"]["result"]
        written = int(float(result[0]["value"][1])) if result else None
        q = urllib.parse.urlencode({"query": 'loaddensity_request_latency_ms{job="",name="fine",quantile="0.95"}'})
        result = get_json(f"{prom}/api/v1/query?{q}")["data"]["result"]
        written_p95 = float(result[0]["value"][1]) if result else None
        log(f"prometheus remote write: sum = {written}, busy step 503 = {written_busy}, fine p95 = {written_p95} ms")
        q = urllib.parse.urlencode({"query": 'sum(loaddensity_requests_total{job="ld",name="busy step",status="503"})'})
        result = get_json(f"{prom}/api/v1/query?{q}")["data"]["result"]
        busy = int(float(result[0]["value"][1])) if result else None
        log(f"prometheus: sum(loaddensity_requests_total) = {scraped}, busy step 503 = {busy}")

        q = urllib.parse.urlencode({"db": "ld", "q": 'SELECT last("requests") FROM "loaddensity_request" GROUP BY "name"'})
        series = get_json(f"{influx}/query?{q}")["results"][0].get("series", [])
        stored = sum(s["values"][0][1] for s in series)
        log(f"influxdb: the last `requests` of each name add up to {stored} ({len(series)} names)")

        code = run.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"[exporters-e2e] FAIL: ld replay exited {code}: {run.stderr.read()}")
        ok = (scraped == total and stored == total and written == total and busy is not None
              and 0 < busy < total and written_busy == busy and written_p95 is not None and written_p95 > 0)
        if not ok:
            raise SystemExit(f"[exporters-e2e] FAIL: summary {total}, prometheus {scraped}, "
                             f"remote write {written} (busy {written_busy} vs {busy}), influxdb {stored}")
        log("PASS")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if ok and not os.environ.get("KEEP"):
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            log(f"scratch kept: {scratch}")


if __name__ == "__main__":
    main()
