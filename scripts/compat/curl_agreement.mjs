// Helper of curl_agreement.sh: generates the corpus, runs both converters, compares.
// Usage: node curl_agreement.mjs LD_BINARY COUNT SEED
import { spawnSync } from "node:child_process";
import { toJsonObjectWarn } from "curlconverter";

const [ldBin, countArg, seedArg] = process.argv.slice(2);
const count = Number(countArg || 240);
let seed = Number(seedArg || 1);
const verbose = !!process.env.VERBOSE;

// A small deterministic generator, so a run can be repeated.
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;

// Quoting styles for one argument.
function quote(s) {
  const style = pick(["single", "single", "double", "ansi", "bare"]);
  if (style === "bare" && /^[A-Za-z0-9_.\/:=@,+-]+$/.test(s)) return s;
  if (style === "double") return '"' + s.replace(/(["\\$`])/g, "\\$1") + '"';
  if (style === "ansi") return "$'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
  return "'" + s.replace(/'/g, "'\\''") + "'";
}

const hosts = ["https://api.example.test", "http://127.0.0.1:8080", "https://shop.example.test:8443", "example.test", "http://localhost"];
const paths = ["/", "/v1/items", "/v1/items/42", "/search", "/api/users/7/orders", "/a%20b/c", "/upload"];
const queries = ["", "?page=2", "?q=red%20shoes&limit=10", "?a=1&a=2", "?flag"];
const headers = [
  "Accept: application/json",
  "X-Request-Id: 123e4567",
  "Authorization: Bearer abc.def.ghi",
  "X-Api-Key: k-123",
  "Cache-Control: no-cache",
  "Accept-Language: en-US,en;q=0.9",
  "X-Empty;",
  "User-Agent: custom/1.0",
];
const forms = ["a=1", "name=ann lee", "tag=a%26b", "x=1&y=2", "empty="];
const jsons = ['{"a":1}', '{"name": "widget", "tags": ["x", "y"]}', '[1,2,3]', '{"nested": {"k": true}}'];
const raws = ["hello world", "line one\nline two", "a+b=%2B", "@literal-at"];

function generate() {
  const parts = ["curl"];
  const url = pick(hosts) + pick(paths) + pick(queries);
  const opts = [];
  if (chance(0.25)) opts.push(["-X", pick(["POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"])]);
  const nh = Math.floor(rand() * 4);
  for (let i = 0; i < nh; i++) opts.push([pick(["-H", "--header"]), pick(headers)]);
  const body = pick(["none", "none", "d", "d2", "raw", "binary", "urlencode", "json", "jsonheader", "form", "G"]);
  switch (body) {
    case "d": opts.push([pick(["-d", "--data", "--data-ascii"]), pick(forms)]); break;
    case "d2": opts.push(["-d", pick(forms)], ["-d", pick(forms)]); break;
    case "raw": opts.push(["--data-raw", pick(raws)]); opts.push(["-H", "Content-Type: text/plain"]); break;
    case "binary": opts.push(["--data-binary", pick(forms)]); break;
    case "urlencode": opts.push(["--data-urlencode", pick(["q=red shoes", "=a&b", "plain text", "k=é"])]); break;
    case "json": opts.push(["--json", pick(jsons)]); break;
    case "jsonheader": opts.push(["-H", "Content-Type: application/json"], ["-d", pick(jsons)]); break;
    case "form": opts.push(["-F", "title=Report"]); if (chance(0.5)) opts.push(["-F", "file=@report.pdf"]); break;
    case "G": opts.push(["-G"], ["-d", pick(forms)]); break;
  }
  if (chance(0.2)) opts.push(["-u", pick(["ann:s3cret", "bob:p@ss word"])]);
  if (chance(0.2)) opts.push(["-b", pick(["session=abc", "a=1; b=2"])]);
  if (chance(0.15)) opts.push(["-A", "agent/2.0"]);
  if (chance(0.15)) opts.push(["-e", "https://ref.example.test/page"]);
  if (chance(0.1) && body === "none") opts.push(["-I"]);
  if (chance(0.2)) opts.push(["-k"]);
  if (chance(0.2)) opts.push(["--compressed"]);
  if (chance(0.2)) opts.push([pick(["-s", "-sS", "-L", "-v", "-sSL"])]);
  // Shuffle the options; the URL goes first, last or through --url.
  for (let i = opts.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [opts[i], opts[j]] = [opts[j], opts[i]];
  }
  const where = pick(["first", "last", "url"]);
  if (where === "first") parts.push(quote(url));
  for (const o of opts) {
    const [flag, ...args] = o;
    parts.push(flag + (args.length ? " " + args.map(quote).join(" ") : ""));
  }
  if (where === "last") parts.push(quote(url));
  if (where === "url") parts.push("--url " + quote(url));
  const sep = chance(0.4) ? " \\\n  " : " ";
  return parts.join(sep);
}

// Comparison: both sides reduced to method, URL (path and decoded query pairs), headers
// (lower-cased names) and body (canonical text).
function decode(s) {
  try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch { return s; }
}
function normUrl(u) {
  if (!/^[a-z]+:\/\//i.test(u)) u = "http://" + u;
  const m = u.match(/^([a-z]+):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?/i);
  if (!m) return u;
  const path = decodeURIComponent(m[3] || "/") || "/";
  const q = (m[4] || "").slice(1);
  const pairs = q ? q.split("&").map((p) => { const [k, ...v] = p.split("="); return decode(k) + "=" + decode(v.join("=")); }) : [];
  return `${m[1].toLowerCase()}://${m[2].toLowerCase()}${path === "" ? "/" : path}?${pairs.join("&")}`;
}
function formCanon(obj) {
  const pairs = [];
  for (const [k, v] of Object.entries(obj)) {
    for (const one of Array.isArray(v) ? v : [v]) pairs.push(`${k}=${typeof one === "string" ? one : JSON.stringify(one)}`);
  }
  return pairs.join("&");
}
function textCanon(text, contentType) {
  if (/json/i.test(contentType || "")) { try { return "json:" + JSON.stringify(JSON.parse(text)); } catch {} }
  if (/x-www-form-urlencoded/i.test(contentType || "") || !contentType) {
    return "form:" + text.split("&").map((p) => { const [k, ...v] = p.split("="); return decode(k) + "=" + decode(v.join("=")); }).join("&");
  }
  return "text:" + text;
}

function fromCurlconverter(cmd) {
  const [r] = toJsonObjectWarn(cmd);
  const headers = {};
  for (const [k, v] of Object.entries(r.headers || {})) headers[k.toLowerCase()] = v ?? "";
  if (r.auth && r.auth_type === "basic") {
    headers["authorization"] = "Basic " + Buffer.from(`${r.auth.user}:${r.auth.password}`).toString("base64");
  }
  if (r.compressed && !headers["accept-encoding"]) headers["accept-encoding"] = "(compressed)";
  const ct = headers["content-type"];
  let body = "";
  const multipart = r.files || / (-F|--form) /.test(cmd.replace(/\\\n/g, " "));
  if (multipart) {
    const parts = Object.entries(r.data || {}).map(([k, v]) => `${k}=${v}`);
    for (const [k, v] of Object.entries(r.files || {})) parts.push(`${k}=@${String(v).split("/").pop()}`);
    body = "multipart:" + parts.sort().join("&");
  } else if (r.data !== undefined) {
    if (typeof r.data === "string") body = textCanon(r.data, ct);
    else if (/json/i.test(ct || "")) body = "json:" + JSON.stringify(r.data);
    else body = "form:" + formCanon(r.data);
  }
  if (body.startsWith("multipart:")) delete headers["content-type"];
  return { method: r.method.toLowerCase(), url: normUrl(r.raw_url || r.url), headers, body };
}

function fromLd(cmd) {
  const out = spawnSync(ldBin, ["import", "--from", "curl", "-", "-o", "-", "-q", "--inline-secrets"], { input: cmd, encoding: "utf8" });
  if (out.status !== 0) throw new Error((out.stderr || "").trim().split("\n")[0]);
  const plan = JSON.parse(out.stdout);
  const start = plan.load_density.find((a) => a[0] === "LD_start_test")[1];
  const t = start.tasks.tasks[0];
  const headers = {};
  for (const [k, v] of Object.entries(t.headers || {})) headers[k.toLowerCase()] = v;
  if (t.allow_redirects === undefined) {}
  const ct = headers["content-type"];
  let body = "";
  if (t.json !== undefined) body = "json:" + JSON.stringify(t.json);
  else if (t.data !== undefined) body = typeof t.data === "string" ? textCanon(t.data, ct) : "form:" + formCanon(t.data);
  else if (t.body && t.body.multipart) {
    body = "multipart:" + t.body.multipart.map((p) => p.filename ? `${p.name}=@${p.filename}` : `${p.name}=${p.value}`).sort().join("&");
  }
  return { method: t.method, url: normUrl(t.request_url), headers, body };
}

function compareHeaders(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const diffs = [];
  for (const k of keys) {
    let va = a[k], vb = b[k];
    if (k === "accept-encoding" && va !== undefined && vb !== undefined && (va === "(compressed)" || vb === "(compressed)")) continue;
    if (va !== vb) diffs.push(`${k}: curlconverter=${JSON.stringify(va)} ld=${JSON.stringify(vb)}`);
  }
  return diffs;
}

const kinds = {};
const examples = {};
let agree = 0, total = 0, skipped = 0;
for (let i = 0; i < count; i++) {
  const cmd = generate();
  let cc, ld;
  try { cc = fromCurlconverter(cmd); } catch (e) { skipped++; continue; }
  total++;
  try { ld = fromLd(cmd); } catch (e) {
    kinds.error = (kinds.error || 0) + 1;
    (examples.error ||= []).push([cmd, e.message]);
    continue;
  }
  const found = [];
  if (cc.method !== ld.method) found.push(["method", `curlconverter=${cc.method} ld=${ld.method}`]);
  if (cc.url !== ld.url) found.push(["url", `curlconverter=${cc.url} ld=${ld.url}`]);
  for (const d of compareHeaders(cc.headers, ld.headers)) found.push(["headers", d]);
  if (cc.body !== ld.body) found.push(["body", `curlconverter=${JSON.stringify(cc.body)} ld=${JSON.stringify(ld.body)}`]);
  if (found.length === 0) { agree++; continue; }
  const seen = new Set();
  for (const [kind, detail] of found) {
    if (seen.has(kind)) continue;
    seen.add(kind);
    kinds[kind] = (kinds[kind] || 0) + 1;
    (examples[kind] ||= []).push([cmd, detail]);
  }
}
console.log(`commands compared: ${total} (${skipped} that curlconverter itself rejects left out)`);
console.log(`agreement on method, URL, headers and body: ${agree}/${total} = ${(100 * agree / Math.max(total, 1)).toFixed(1)}%`);
for (const [kind, n] of Object.entries(kinds).sort((a, b) => b[1] - a[1])) {
  console.log(`  disagreements in ${kind}: ${n}`);
  for (const [cmd, detail] of (examples[kind] || []).slice(0, verbose ? 1000 : 2)) {
    console.log(`    ${detail}\n      ${cmd.replace(/\n/g, "\n      ")}`);
  }
}
