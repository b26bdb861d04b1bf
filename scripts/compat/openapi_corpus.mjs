// Helper of openapi_corpus.sh. Usage: node openapi_corpus.mjs LD_BINARY SPEC_DIR LIMIT
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const [ldBin, dir, limitArg] = process.argv.slice(2);
const limit = Number(limitArg || 0);
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function specs(d) {
  const out = [];
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) out.push(...specs(p));
    else if (name.endsWith(".json") || name.endsWith(".yaml") || name.endsWith(".yml")) out.push(p);
  }
  return out;
}

// Operations as the description declares them, counted independently of ld (path items may
// be local `$ref`s).
function operations(spec) {
  const deref = (v) => {
    for (let hops = 0; hops < 16 && v && typeof v === "object" && typeof v.$ref === "string" && v.$ref.startsWith("#/"); hops++) {
      v = v.$ref.slice(2).split("/").reduce((o, k) => (o == null ? o : o[k.replace(/~1/g, "/").replace(/~0/g, "~")]), spec);
    }
    return v;
  };
  let n = 0;
  for (const raw of Object.values(spec.paths || {})) {
    const item = deref(raw);
    if (!item || typeof item !== "object") continue;
    for (const m of METHODS) if (item[m] && typeof item[m] === "object") n++;
  }
  return n;
}

let files = specs(dir);
if (limit > 0) files = files.slice(0, limit);
const counts = { valid: 0, invalid: 0, crashed: 0 };
const invalid = [], crashed = [], mismatched = [];
let agree = 0, totalOps = 0, totalTasks = 0, ldMillis = 0;
const out = join(tmpdir(), `ld-corpus-${process.pid}.json`);
for (const file of files) {
  let expected = null;
  try { expected = operations(JSON.parse(readFileSync(file, "utf8"))); } catch { expected = null; }
  const started = process.hrtime.bigint();
  const r = spawnSync(ldBin, ["import", "--from", "openapi", file, "-o", out, "-q", "--include-deprecated", "--inline-secrets"], { encoding: "utf8", maxBuffer: 1 << 26 });
  ldMillis += Number(process.hrtime.bigint() - started) / 1e6;
  const name = file.slice(dir.length + 1);
  if (r.status === 0) {
    counts.valid++;
    const plan = JSON.parse(readFileSync(out, "utf8"));
    const start = plan.load_density.find((a) => a[0] === "LD_start_test")[1];
    const tasks = start.tasks.tasks.length;
    totalTasks += tasks;
    if (expected !== null) totalOps += expected;
    if (expected === tasks) agree++;
    else mismatched.push(`${name}: ${expected} operations, ${tasks} tasks`);
  } else if (r.status === 2 && /^ld: error: \S/.test(r.stderr)) {
    counts.invalid++;
    invalid.push(`${name}: ${r.stderr.split("\n")[0].slice(0, 160)}`);
  } else if (r.error) {
    // The binary could not be started at all: not a verdict on the spec.
    counts.unrun = (counts.unrun || 0) + 1;
    crashed.push(`${name}: not run: ${r.error.message}`);
  } else {
    counts.crashed++;
    crashed.push(`${name}: exit ${r.status} signal ${r.signal}: ${(r.stderr || "").slice(0, 300)}`);
  }
}
// Damaged copies (every tenth spec cut in half, or with its `paths` made a list) must fail
// with exit 2 and a message that points into the file, never crash.
const damaged = { clear: 0, unclear: [], crashed: [] };
const damagedFile = join(tmpdir(), `ld-corpus-damaged-${process.pid}.json`);
files.forEach((file, i) => {
  if (i % 10 !== 0) return;
  const text = readFileSync(file, "utf8");
  const variants = [text.slice(0, Math.floor(text.length / 2)), text.replace(/"paths"\s*:\s*\{/, '"paths": [{')];
  for (const v of variants) {
    writeFileSync(damagedFile, v);
    const r = spawnSync(ldBin, ["import", "--from", "openapi", damagedFile, "-o", out, "-q"], { encoding: "utf8", maxBuffer: 1 << 26 });
    const name = file.slice(dir.length + 1);
    if (r.status === 2 && /^ld: error: \S/.test(r.stderr) && /(:\d+:\d+|\/paths)/.test(r.stderr)) damaged.clear++;
    else if (r.status === 2) damaged.unclear.push(`${name}: ${r.stderr.split("\n")[0].slice(0, 160)}`);
    else damaged.crashed.push(`${name}: exit ${r.status} signal ${r.signal}: ${(r.stderr || "").slice(0, 200)}`);
  }
});

console.log(`specs: ${files.length}`);
console.log(`  imported: ${counts.valid}`);
console.log(`  invalid, with an error message (exit 2): ${counts.invalid}`);
console.log(`  crashes or panics: ${counts.crashed}`);
if (counts.unrun) console.log(`  not run (the binary could not be started): ${counts.unrun}`);
console.log(`one task per operation: ${agree}/${counts.valid} imported specs (${totalTasks} tasks for ${totalOps} operations)`);
console.log(`ld time: ${(ldMillis / 1000).toFixed(1)} s in total, ${(ldMillis / Math.max(files.length, 1)).toFixed(1)} ms per spec (binary: ${ldBin})`);
console.log(`damaged copies: ${damaged.clear + damaged.unclear.length + damaged.crashed.length}; exit 2 with a file:line:column or JSON pointer: ${damaged.clear}; other errors: ${damaged.unclear.length}; crashes: ${damaged.crashed.length}`);
for (const [title, list] of [["invalid", invalid], ["crashed", crashed], ["task count differs", mismatched], ["damaged, unclear error", damaged.unclear], ["damaged, crashed", damaged.crashed]]) {
  if (list.length) {
    console.log(`${title}:`);
    for (const line of list.slice(0, 20)) console.log(`  ${line}`);
    if (list.length > 20) console.log(`  ... and ${list.length - 20} more`);
  }
}
