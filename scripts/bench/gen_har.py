#!/usr/bin/env python3
"""Writes a synthetic, Chrome-like HAR for import benchmarks.

    python3 scripts/bench/gen_har.py N OUT [--seed S]

Deterministic for a given N and seed (default 20240611): N=20000 gives 47.1 MB (45 MiB).
Entries look like a DevTools "Save all as HAR with content" export of a single-page app
talking to its API: 14-19 request headers (16 on average), query strings, cookies, JSON / form /
text POST bodies, JSON and HTML response bodies of a few KB, Chrome's "_" fields,
timings with -1 for reused connections. All URLs are on http://127.0.0.1:18765.
Written as a stream of compact JSON (as Playwright's recordHar writes it), so memory stays flat.
At 45 MiB for 20,000 entries an entry averages about 2.4 KB, so most API responses are small
records; listing pages and HTML documents carry the bodies of a few KB.
"""

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

HOST = "127.0.0.1:18765"
ORIGIN = "http://" + HOST
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/156.0.0.0 Safari/537.36")
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
         "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu order invoice customer "
         "shipment product basket price stock warehouse review rating session token report metric").split()
RESOURCES = ["orders", "products", "customers", "invoices", "shipments", "reviews", "baskets", "reports"]
START = datetime(2024, 6, 11, 9, 0, 0, tzinfo=timezone.utc)
# Share of each kind of request (api_get, api_post, api_put, api_delete, form_post, text_post, page) and
# of listing responses among API GETs; together they set the size: N=20000 gives 45 MiB.
WEIGHTS = [65, 12, 5, 5, 6, 4, 3]
LIST_SHARE = 0.03


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.t = START
        self.mono = 1000.0

    def words(self, a, b):
        return " ".join(self.r.choice(WORDS) for _ in range(self.r.randint(a, b)))

    def record(self, i):
        r = self.r
        return {
            "id": i, "sku": "SKU-%06d" % r.randint(0, 999999), "name": self.words(2, 4).title(),
            "description": self.words(8, 24), "price": round(r.uniform(1, 500), 2),
            "currency": r.choice(["EUR", "USD", "GBP"]), "in_stock": r.random() < 0.8,
            "tags": [r.choice(WORDS) for _ in range(r.randint(1, 4))],
            "updated_at": (START - timedelta(minutes=r.randint(0, 100000))).isoformat().replace("+00:00", "Z"),
        }

    def json_body(self, lo, hi):
        """A JSON document of roughly lo..hi bytes."""
        target = self.r.randint(lo, hi)
        doc = {"page": self.r.randint(1, 50), "per_page": 20, "total": self.r.randint(20, 5000), "items": []}
        text = json.dumps(doc)
        while len(text) < target:
            doc["items"].append(self.record(len(doc["items"]) + 1))
            text = json.dumps(doc, separators=(",", ":"))
        return text

    def html_body(self, lo, hi):
        target = self.r.randint(lo, hi)
        parts = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>"
                 "<link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main>" % self.words(2, 4)]
        size = len(parts[0])
        while size < target:
            p = "<section class=\"card\"><h2>%s</h2><p>%s</p><a href=\"/%s/%d\">more</a></section>\n" % (
                self.words(2, 5), self.words(15, 40), self.r.choice(RESOURCES), self.r.randint(1, 9999))
            parts.append(p)
            size += len(p)
        parts.append("</main><script src=\"/static/app.js\"></script></body></html>")
        return "".join(parts)

    def entry(self, i):
        r = self.r
        self.t += timedelta(milliseconds=r.randint(1, 250))
        res = r.choice(RESOURCES)
        kind = r.choices(["api_get", "api_post", "api_put", "api_delete", "form_post", "text_post", "page"],
                         weights=WEIGHTS)[0]
        query = []
        if kind == "page":
            method, path = "GET", "/%s" % res
            if r.random() < 0.5:
                query = [("view", r.choice(["grid", "list"])), ("utm_source", r.choice(["mail", "ad", "feed"]))]
        elif kind == "api_get":
            method, path = "GET", "/api/v1/%s" % res
            query = [("page", str(r.randint(1, 50))), ("per_page", "20"),
                     ("sort", r.choice(["-updated_at", "name", "price"]))]
            if r.random() < 0.4:
                query.append(("q", self.words(1, 2)))
            if r.random() < 0.3:
                query.append(("filter[tag]", r.choice(WORDS)))
        elif kind in ("api_post", "form_post", "text_post"):
            method, path = "POST", "/api/v1/%s" % res
        elif kind == "api_put":
            method, path = "PUT", "/api/v1/%s/%d" % (res, r.randint(1, 99999))
        else:
            method, path = "DELETE", "/api/v1/%s/%d" % (res, r.randint(1, 99999))
        qs = "&".join("%s=%s" % (k, v.replace(" ", "+").replace("[", "%5B").replace("]", "%5D"))
                      for k, v in query)
        url = ORIGIN + path + ("?" + qs if qs else "")

        cookies = [("session", "%024x" % r.getrandbits(96)), ("theme", r.choice(["dark", "light"]))]
        # What Chrome sends: 14 headers on a same-origin fetch, more on documents and writes.
        headers = [
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" if kind == "page"
             else "application/json, text/plain, */*"),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ("Accept-Language", "en-GB,en;q=0.9"),
            ("Connection", "keep-alive"),
            ("Cookie", "; ".join("%s=%s" % c for c in cookies)),
            ("Host", HOST),
            ("Referer", ORIGIN + "/%s" % r.choice(RESOURCES)),
            ("Sec-Fetch-Dest", "document" if kind == "page" else "empty"),
            ("Sec-Fetch-Mode", "navigate" if kind == "page" else "cors"),
            ("Sec-Fetch-Site", "same-origin"),
            ("User-Agent", UA),
            ("sec-ch-ua", "\"Chromium\";v=\"156\", \"Not:A-Brand\";v=\"24\""),
            ("sec-ch-ua-mobile", "?0"),
            ("sec-ch-ua-platform", "\"Linux\""),
        ]
        if kind == "page":
            headers += [("Upgrade-Insecure-Requests", "1"), ("Sec-Fetch-User", "?1"),
                        ("Cache-Control", "max-age=0")]
        else:
            if r.random() < 0.5:
                headers.append(("Authorization", "Bearer %024x" % r.getrandbits(96)))
            if method != "GET":
                headers += [("Origin", ORIGIN), ("X-CSRF-Token", "%016x" % r.getrandbits(64))]

        post = None
        if kind in ("api_post", "api_put"):
            text = json.dumps(self.record(r.randint(1, 99999)), separators=(",", ":"))
            post = {"mimeType": "application/json", "text": text}
        elif kind == "form_post":
            params = [("name", self.words(1, 3)), ("email", "%s@example.test" % r.choice(WORDS)),
                      ("comment", self.words(5, 20) + " & more + extras"), ("csrf", "%032x" % r.getrandbits(128))]
            text = "&".join("%s=%s" % (k, v.replace("&", "%26").replace("+", "%2B").replace(" ", "+").replace(
                "@", "%40")) for k, v in params)
            post = {"mimeType": "application/x-www-form-urlencoded", "text": text,
                    "params": [{"name": k, "value": v} for k, v in params]}
        elif kind == "text_post":
            post = {"mimeType": "text/plain;charset=UTF-8", "text": self.words(20, 80)}
        if post is not None:
            blen = len(post["text"].encode("utf-8"))
            headers += [("Content-Type", post["mimeType"]), ("Content-Length", str(blen))]
        headers.sort(key=lambda h: h[0].lower())

        # Response.
        if kind == "api_delete":
            status, text, mime = 204, None, "x-unknown"
        elif kind == "page":
            status, text, mime = 200, self.html_body(1500, 4500), "text/html"
        elif kind in ("api_post", "form_post", "text_post"):
            status = r.choices([201, 200, 422], weights=[70, 20, 10])[0]
            text = ('{"error":"validation failed","field":"%s"}' % r.choice(WORDS) if status == 422 else
                    '{"id":%d,"status":"%s"}' % (r.randint(1, 99999), "created" if status == 201 else "ok"))
            mime = "application/json"
        else:
            status = r.choices([200, 304, 404], weights=[92, 5, 3])[0]
            mime = "application/json"
            if status == 304:
                text = ""
            elif status == 404:
                text = '{"error":"not found"}'
            elif r.random() < LIST_SHARE:  # a page of a listing: a few KB
                text = self.json_body(1500, 4500)
            else:  # one small record or a counter
                text = json.dumps({"id": r.randint(1, 99999), "status": r.choice(["open", "paid", "shipped"]),
                                   "updated_at": self.t.isoformat(timespec="seconds").replace("+00:00", "Z")},
                                  separators=(",", ":"))
        size = len(text.encode("utf-8")) if text is not None else 0
        gz = status == 200 and size > 1000
        transfer = int(size * 0.3) if gz else size
        rheaders = [("Content-Type", mime + "; charset=utf-8" if mime != "x-unknown" else "text/plain"),
                    ("Date", self.t.strftime("%a, %d %b %Y %H:%M:%S GMT")), ("Server", "nginx/1.25.3")]
        if status != 204:
            rheaders.append(("Cache-Control", "private, max-age=0"))
        if gz:
            rheaders.append(("Content-Encoding", "gzip"))
        elif status != 204:
            rheaders.append(("Content-Length", str(size)))
        if r.random() < 0.05:
            rheaders.append(("Set-Cookie", "session=%032x; Path=/; HttpOnly; SameSite=Lax" % r.getrandbits(128)))
        rheaders.sort(key=lambda h: h[0].lower())
        content = {"size": size if text is not None else -1, "mimeType": mime}
        if gz:
            content["compression"] = size - transfer
        if text is not None:
            content["text"] = text

        reused = r.random() < 0.85
        t = {"blocked": round(r.uniform(0.3, 4), 3), "dns": -1 if reused else round(r.uniform(0.01, 2), 3),
             "ssl": -1, "connect": -1 if reused else round(r.uniform(0.2, 3), 3),
             "send": round(r.uniform(0.02, 0.4), 3), "wait": round(r.uniform(3, 180), 3),
             "receive": round(r.uniform(0.1, 25), 3)}
        total = round(sum(v for k, v in t.items() if not k.startswith("_") and v > 0), 3)
        self.mono += r.uniform(1, 250)

        return {
            "_resourceType": "document" if kind == "page" else "fetch",
            "cache": {},
            "pageref": "page_%d" % (1 + i // 500),
            "request": {
                "method": method, "url": url, "httpVersion": "HTTP/1.1",
                "headers": [{"name": n, "value": v} for n, v in headers],
                "queryString": [{"name": k, "value": v} for k, v in query],
                "cookies": [{"name": n, "value": v} for n, v in cookies],
                "headersSize": sum(len(n) + len(v) + 4 for n, v in headers) + len(url) + 14,
                "bodySize": len(post["text"].encode("utf-8")) if post else 0,
                **({"postData": post} if post else {}),
            },
            "response": {
                "status": status, "statusText": {200: "OK", 201: "Created", 204: "No Content",
                                                 304: "Not Modified", 404: "Not Found",
                                                 422: "Unprocessable Entity"}[status],
                "httpVersion": "HTTP/1.1",
                "headers": [{"name": n, "value": v} for n, v in rheaders],
                "cookies": [], "content": content, "redirectURL": "",
                "headersSize": sum(len(n) + len(v) + 4 for n, v in rheaders) + 17,
                "bodySize": transfer if text is not None else 0,
                "_transferSize": transfer + 300,
            },
            "serverIPAddress": "127.0.0.1",
            "startedDateTime": self.t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "time": total,
            "timings": t,
        }


def write(n, out, seed):
    g = Gen(seed)
    pages = [{"startedDateTime": (START + timedelta(seconds=60 * p)).isoformat(timespec="milliseconds")
              .replace("+00:00", "Z"), "id": "page_%d" % (p + 1), "title": ORIGIN + "/",
              "pageTimings": {"onContentLoad": 412.5, "onLoad": 980.25}} for p in range((n + 499) // 500)]
    head = {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": pages}
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        text = json.dumps({"log": head}, **compact)
        f.write(text[:-2] + ',"entries":[')  # reopen "log" (text ends with "}}") to stream the entries
        for i in range(n):
            if i:
                f.write(",")
            f.write(json.dumps(g.entry(i), **compact))
        f.write("]}}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of entries")
    ap.add_argument("out", help="output HAR path")
    ap.add_argument("--seed", type=int, default=20240611)
    a = ap.parse_args()
    write(a.n, a.out, a.seed)
    print("wrote %s (%d entries)" % (a.out, a.n), file=sys.stderr)


if __name__ == "__main__":
    main()
