// The other half of issue 4, item 7: captures the request cascade's own C
// client (build/cascade run, worker/providers/*.c) sends for the fixed prompt
// of conformance.test.mjs to each wire format, and compares it field by field
// with the request the official client sent for the same prompt
// (build/conformance/official-requests.json, written by conformance-clients).
//
// Run by `make conformance-compare` (mk/conformance.mk):
//   CASCADE_BIN=build/cascade MOCK_BIN=build/mock-llm \
//   OFFICIAL=build/conformance/official-requests.json OUT_DIR=build/conformance \
//   node tests/conformance/compare.mjs
// Node 20 standard library only: the official clients are not loaded here.
//
// Task intake writes the system turn (worker/task.c first_messages), so the
// system TEXT cannot match; everything else is compared: method, path, every
// header (name and value, credentials redacted by the mock), and the body's
// keys, value types and values, recursively. Each row gets a verdict:
//   same              equal on both sides
//   explained: WHY    a difference judged harmless; the reasons are the rules
//                     in HEADER_RULES and BODY_RULES below
//   DIFFERENT         anything else: exits 1 unless ALLOWED lists that exact
//                     (api, field, ours, official) with its reason
// It also checks that our fake key went out in the header each API expects,
// once, and appears unredacted nowhere: not in the mock's log, not in the
// output of cascade run.
//
// Writes OUT_DIR/our-requests.json (same layout as official-requests.json) and
// OUT_DIR/comparison.json (every row), and prints one table per API.
//
// Batches (issue 14, part 6): the same for cascade's OpenAI batch requests
// (worker/net/batch.c: POST /files, multipart, and POST /batches of a
// one-task run on a batch-lane tier) against the openai client's
// (OFFICIAL_BATCH, written by batch.test.mjs). The multipart upload is
// compared part by part (name, filename, content type) and its JSONL line
// field by field, the line's body with the same rules as the sync request.
// Anthropic's and Gemini's batch creates (worker/net/batch_anthropic.c,
// batch_gemini.c: one POST with the requests inside) are compared with the
// first request of the official clients' (@anthropic-ai/sdk
// messages.batches.create, @google/genai batches.create) field by field.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CASCADE_BIN = path.resolve(process.env.CASCADE_BIN ?? 'build/cascade');
const MOCK_BIN = path.resolve(process.env.MOCK_BIN ?? 'build/mock-llm');
const OUT_DIR = path.resolve(process.env.OUT_DIR ?? 'build/conformance');
const OFFICIAL = path.resolve(process.env.OFFICIAL ?? path.join(OUT_DIR, 'official-requests.json'));
const OFFICIAL_BATCH = path.resolve(process.env.OFFICIAL_BATCH
  ?? path.join(path.dirname(OFFICIAL), 'official-batch-requests.json'));
const RUN_TIMEOUT_MS = 60000; // one `cascade run` of one task (sanitizer builds are slow to start)

const APIS = ['openai', 'anthropic', 'gemini'];

// The header that must carry the key, as the mock logs it (redacted).
const AUTH = {
  openai: { name: 'authorization', value: 'Bearer <redacted>' },
  anthropic: { name: 'x-api-key', value: '<redacted>' },
  gemini: { name: 'x-goog-api-key', value: '<redacted>' },
};

// Where each API's base_url points; the official clients were given the same.
const BASE_PATH = { openai: '/v1', anthropic: '/v1', gemini: '/v1beta' };

// ---- what counts as explained ------------------------------------------
// A rule returns a reason when a difference in that header is harmless, else
// null (the row is then DIFFERENT). `o` is our value, `s` the official one;
// either may be undefined (header not sent).

const sdkTelemetry = (o) => (o === undefined
  ? 'SDK telemetry (package, OS, arch, runtime, retry count, timeout); not part of the API, not needed' : null);

const HEADER_RULES = [
  [/^x-stainless-/, sdkTelemetry],
  ['x-goog-api-client', sdkTelemetry],
  ['user-agent', (o) => (o === undefined
    ? 'names the SDK and its runtime; none of the three APIs requires it and libcurl sends none unless told'
    : null)],
  ['x-server-timeout', (o) => (o === undefined
    ? "@google/genai advertises its client timeout so the server may give up early; optional; cascade enforces --timeout itself"
    : null)],
  ['accept-language', (o) => (o === undefined ? "added by Node's fetch (undici), not by the SDK; no meaning to these APIs" : null)],
  ['sec-fetch-mode', (o) => (o === undefined ? "added by Node's fetch (undici), not by the SDK; no meaning to these APIs" : null)],
  ['connection', (o, s) => (o === undefined && s === 'keep-alive'
    ? 'undici says keep-alive; HTTP/1.1 connections persist by default and libcurl reuses them' : null)],
  ['accept-encoding', (o, s) => (o !== undefined && s !== undefined
    ? 'transport negotiation of each HTTP stack (undici: gzip, deflate; libcurl: what it was built with); both decode the reply'
    : null)],
  ['accept', (o, s) => (o === '*/*' && s !== undefined
    ? "libcurl's default; the APIs answer JSON whatever Accept says (@google/genai sends */* too)" : null)],
  ['content-length', (o, s, api) => (o !== undefined && s !== undefined
    ? (api.endsWith('-batch') ? 'the body length; the bodies differ where the explained body rows say'
      : 'the body length; the system text differs (see body rows), so the length does') : null)],
  ['content-type', (o, s, api) => (api === 'openai-batch' && /^multipart\/form-data; boundary=/.test(o ?? '')
    && /^multipart\/form-data; boundary=/.test(s ?? '')
    ? 'multipart/form-data both; each picks its own random boundary (RFC 7578)' : null)],
];

// The router's system turn: where each API carries it.
const SYSTEM_TEXT = { openai: 'messages[0].content', anthropic: 'system', gemini: 'systemInstruction.parts[0].text' };

// The chat request inside a batch line: where the system text sits there.
SYSTEM_TEXT['openai-batch'] = 'line.body.messages[0].content';
// Where the one compared request sits in an Anthropic or a Gemini batch create.
const BATCH_REQ = { 'anthropic-batch': 'requests[0].params', 'gemini-batch': 'batch.inputConfig.requests.requests[0].request' };
SYSTEM_TEXT['anthropic-batch'] = `${BATCH_REQ['anthropic-batch']}.system`;
SYSTEM_TEXT['gemini-batch'] = `${BATCH_REQ['gemini-batch']}.systemInstruction.parts[0].text`;

const BODY_RULES = [
  // (api, path, ours, official) -> reason | null
  (api, p, o, s) => (api === 'openai-batch' && p === 'batches.input_file_id' && o?.type === 'string' && s?.type === 'string'
    ? "the id the mock's POST /files gave each upload; both send the id they were given" : null),
  (api, p, o, s) => (api === 'openai-batch' && p === 'batches.metadata.cascade_run' && o?.type === 'string' && s?.type === 'string'
    ? 'the run id cascade tags its batches with (found again after a crash by listing); the official side was given a fixed one'
    : null),
  (api, p, o, s) => (api === 'openai-batch' && p === 'batches.metadata.cascade_batch' && o?.type === 'string' && s === undefined
    ? "cascade's local batch number, its second tag for finding a batch after a crash; metadata is free-form (up to 16 pairs)"
    : null),
  (api, p, o, s) => (api === 'openai-batch' && p === 'files.part file.filename' && /\.jsonl$/.test(o?.value ?? '') && /\.jsonl$/.test(s?.value ?? '')
    ? 'any name; the API reads the purpose and the JSONL, not the file name' : null),
  (api, p, o, s) => (api === 'openai-batch' && p === 'files.part file.content-type' && o?.value === 'application/jsonl'
    && s?.value === 'application/octet-stream'
    ? "toFile() has no type for a Buffer and sends octet-stream; cascade names the JSONL's type; the API takes either" : null),
  (api, p, o, s) => (api === 'openai-batch' && p === 'files part order' && o && s
    ? 'multipart/form-data parts are named, not positional (RFC 7578, section 5.2)' : null),
  (api, p, o, s) => (p === SYSTEM_TEXT[api] && o?.type === 'string' && s?.type === 'string'
    ? 'system text is written by task intake (worker/task.c first_messages), not by the task; both are strings in the same place'
    : null),
  (api, p, o, s) => (api === 'anthropic-batch' && p === 'requests[0].custom_id' && /^[a-zA-Z0-9_-]{1,61}__1$/.test(o?.value ?? '')
    && /__1$/.test(s?.value ?? '')
    ? "TASK__ATTEMPT on both sides, each its own task; cascade escapes the task to Anthropic's [a-zA-Z0-9_-]{1,64} "
      + '(a byte outside [a-zA-Z0-9_] as - and two hex digits; a task too long as -h and its hash)' : null),
  (api, p, o, s) => (api === 'gemini-batch' && p === 'batch.inputConfig.requests.requests[0].metadata.key'
    && /#1$/.test(o?.value ?? '') && /#1$/.test(s?.value ?? '')
    ? 'TASK#ATTEMPT on both sides, each its own task; metadata is free-form and comes back with its response' : null),
  (api, p, o, s) => (api === 'gemini-batch' && p === 'batch.displayName' && o?.type === 'string' && s?.type === 'string'
    ? "cascade's local batch tag (run, number, time), how a batch is found again after a crash; the official side was given a fixed name"
    : null),
  (api, p, o, s) => (api === 'gemini-batch' && p === `${BATCH_REQ[api]}.systemInstruction.role` && o === undefined && s?.value === 'user'
    ? "optional on systemInstruction, as on the sync request; @google/genai fills in 'user' when it wraps a string"
    : null),
  (api, p, o, s) => (api === 'gemini' && p === 'systemInstruction.role' && o === undefined && s?.value === 'user'
    ? "optional on systemInstruction (Content.role may be left unset outside multi-turn contents); @google/genai fills in 'user' when it wraps a string"
    : null),
];

// ---- the allow-list ----------------------------------------------------
// DIFFERENT rows that are known and accepted for now. Each entry names the
// exact values: if either side changes, the row fails again.
// Empty: the one difference found (anthropic-version 2023-06-01 against the
// SDK's 2026-10-21) was fixed in worker/providers/anthropic.c.
const ALLOWED = [];

// ---- running cascade against the mock ----------------------------------

function readOfficial() {
  let j;
  try {
    j = JSON.parse(fs.readFileSync(OFFICIAL, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${OFFICIAL} (${e.message}); run 'make conformance-clients' first`);
  }
  for (const api of APIS)
    if (!j.clients?.[api]) throw new Error(`${OFFICIAL} has no request for ${api}`);
  return j;
}

const taskId = (api) => `capture-${api}`;
const keyEnv = (api) => `CASCADE_CONFORMANCE_${api.toUpperCase()}_KEY`;

function recordings(fixed) {
  return [...APIS.map(taskId), ...APIS.map((a) => (a === 'openai' ? 'capture-batch' : `capture-batch-${a}`))].map((task) => JSON.stringify({ task, model: fixed.model, run: 1,
    answer: '```python\ndef add(a, b):\n    return a + b\n```\n',
    usage: { prompt_tokens: 40, completion_tokens: 12 } })).join('\n') + '\n';
}

async function startMock(dir, recPath, logPath) {
  const portFile = path.join(dir, 'port');
  const mock = spawn(MOCK_BIN, ['--port', '0', '--port-file', portFile, '--recordings', recPath,
    '--log', logPath, '--log-headers'], { stdio: ['ignore', 'inherit', 'inherit'] });
  mock.exited = new Promise((resolve) => mock.once('exit', (code, sig) => resolve(code ?? sig)));
  let port = 0;
  for (let i = 0; i < 200 && !port && mock.exitCode === null; i++) {
    try { port = Number(fs.readFileSync(portFile, 'utf8').trim()); } catch { await sleep(50); }
  }
  if (!port) {
    mock.kill('SIGKILL');
    throw new Error(`mock-llm (${MOCK_BIN}) did not start`);
  }
  mock.url = `http://127.0.0.1:${port}`;
  return mock;
}

async function stopMock(mock) {
  if (mock.exitCode !== null) return mock.exitCode;
  mock.kill('SIGTERM');
  const timer = setTimeout(() => mock.kill('SIGKILL'), 5000);
  const code = await mock.exited;
  clearTimeout(timer);
  return code;
}

// One models file, one cascade and one task for `api`; returns what cascade printed.
function runCascade(api, fixed, dir, mockUrl, key) {
  const d = path.join(dir, api);
  const cascades = path.join(d, 'cascades');
  fs.mkdirSync(cascades, { recursive: true });
  const models = {
    providers: { [`conf-${api}`]: { api, base_url: `\${MOCK_URL}${BASE_PATH[api]}`, key_env: keyEnv(api) } },
    models: { [`conf-${api}-model`]: { provider: `conf-${api}`, id: fixed.model, input_usd_per_mtok: 1,
      output_usd_per_mtok: 1, context: 100000, max_tokens: fixed.max_tokens } },
  };
  fs.writeFileSync(path.join(cascades, 'models.json'), JSON.stringify(models, null, 2));
  // kind code with the syntax validator only: no sandbox, and the user turn is
  // the prompt alone (no schema or files appended by the router).
  fs.writeFileSync(path.join(cascades, 'conf.json'), JSON.stringify({ name: `conf-${api}`,
    match: { kind: 'code', language: 'python' }, validators: ['syntax'],
    tiers: [{ model: `conf-${api}-model`, attempts: 1 }] }));
  const tasks = path.join(d, 'tasks.jsonl');
  fs.writeFileSync(tasks, JSON.stringify({ id: taskId(api), kind: 'code', language: 'python',
    prompt: fixed.user }) + '\n');
  const env = { ...process.env, MOCK_URL: mockUrl, [keyEnv(api)]: key };
  const r = spawnSync(CASCADE_BIN, ['run', tasks, '--cascades', cascades, '--retries', '0',
    '--timeout', '20', '--connect-timeout', '5', '--concurrency', '1', '-q'],
  { env, cwd: d, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL' });
  return r;
}

// ---- comparing ---------------------------------------------------------

// path -> {type, value} for every node; arrays show their length.
function flatten(v, p = '', out = new Map()) {
  if (Array.isArray(v)) {
    out.set(p, { type: 'array', value: `array(${v.length})` });
    v.forEach((x, i) => flatten(x, `${p}[${i}]`, out));
  } else if (v !== null && typeof v === 'object') {
    out.set(p, { type: 'object', value: 'object' });
    for (const [k, x] of Object.entries(v)) flatten(x, p ? `${p}.${k}` : k, out);
  } else {
    out.set(p, { type: v === null ? 'null' : typeof v, value: v });
  }
  return out;
}

// Paths of objects whose shared members come in another order.
function orderDiffs(a, b, p = '', out = []) {
  if (Array.isArray(a) && Array.isArray(b)) {
    a.forEach((x, i) => orderDiffs(x, b[i], `${p}[${i}]`, out));
  } else if (a && b && typeof a === 'object' && typeof b === 'object') {
    const shared = Object.keys(a).filter((k) => k in b);
    const other = Object.keys(b).filter((k) => k in a);
    if (shared.join() !== other.join()) out.push(p || '(top level)');
    for (const k of shared) orderDiffs(a[k], b[k], p ? `${p}.${k}` : k, out);
  }
  return out;
}

const show = (v) => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v));

function ruleFor(name) {
  for (const [m, f] of HEADER_RULES) if (typeof m === 'string' ? m === name : m.test(name)) return f;
  return null;
}

function compare(api, ours, off) {
  const rows = [];
  const row = (field, o, s, explained) => {
    let verdict;
    if (explained === 'same') verdict = 'same';
    else if (explained) verdict = `explained: ${explained}`;
    else {
      const a = ALLOWED.find((x) => x.api === api && x.field === field && x.ours === show(o) && x.official === show(s));
      verdict = a ? `DIFFERENT (allowed: ${a.reason})` : 'DIFFERENT';
    }
    rows.push({ field, ours: show(o), official: show(s), verdict });
  };

  row('method', ours.method, off.method, ours.method === off.method ? 'same' : null);
  row('path', ours.path, off.path, ours.path === off.path ? 'same' : null);

  // Credentials: compared as (header name, scheme), the value is redacted.
  const cred = (h) => Object.entries(h).filter(([, v]) => String(v).includes('<redacted>'));
  const oc = cred(ours.headers), sc = cred(off.headers);
  const fmt = (c) => (c.length ? c.map(([k, v]) => `${k}: ${v}`).join(', ') : undefined);
  const sameCred = fmt(oc) === fmt(sc);
  row('auth header', fmt(oc), fmt(sc), sameCred ? 'same'
    : (api === 'anthropic' || api === 'anthropic-batch') && fmt(oc) === 'x-api-key: <redacted>' && fmt(sc) === 'authorization: Bearer <redacted>'
      ? 'the API takes a key in either; x-api-key is the header its API reference and curl examples give for keys '
        + '(for 2026-10-21 too) and the one Anthropic-compatible gateways read; @anthropic-ai/sdk 1.x moved to Bearer'
      : null);

  const skip = new Set([...oc, ...sc].map(([k]) => k));
  const names = [...new Set([...Object.keys(ours.headers), ...Object.keys(off.headers)])]
    .filter((n) => !skip.has(n)).sort();
  for (const n of names) {
    let o = ours.headers[n], s = off.headers[n];
    if (n === 'host') { o = o?.replace(/:\d+$/, ':PORT'); s = s?.replace(/:\d+$/, ':PORT'); }
    if (o === s) { row(`header ${n}`, o, s, 'same'); continue; }
    const f = ruleFor(n);
    row(`header ${n}`, o, s, f ? f(o, s, api) : null);
  }

  const fo = flatten(ours.body), fs_ = flatten(off.body);
  const paths = [...new Set([...fs_.keys(), ...fo.keys()])].filter((p) => p !== '');
  for (const p of paths) {
    const o = fo.get(p), s = fs_.get(p);
    const field = `body ${p}`;
    if (o && s && o.type === s.type && o.value === s.value) { row(field, o.value, s.value, 'same'); continue; }
    let why = null;
    for (const r of BODY_RULES) if ((why = r(api, p, o, s))) break;
    const typed = o && s && o.type !== s.type; // then show the types too
    const cut = (x) => (x === undefined ? undefined
      : typed ? `${JSON.stringify(x.value)} (${x.type})`
        : x.type === 'string' && x.value.length > 40 ? `"${x.value.slice(0, 37)}..."` : x.value);
    row(field, cut(o), cut(s), why);
  }
  const od = orderDiffs(ours.body, off.body);
  if (od.length)
    row('body member order', `differs in ${od.join(', ')}`, '', 'JSON object members are unordered (RFC 8259, section 4)');
  return rows;
}

// ---- batches (OpenAI) ----------------------------------------------------

// The parts of a multipart/form-data body: [{name, filename, type, content}].
function multipart(text, contentType) {
  const m = /boundary=(.+)$/.exec(contentType ?? '');
  if (!m || typeof text !== 'string') return null;
  const parts = [];
  for (const chunk of text.split(`--${m[1]}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const end = chunk.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = chunk.slice(0, end);
    parts.push({ name: /name="([^"]*)"/.exec(head)?.[1], filename: /filename="([^"]*)"/.exec(head)?.[1],
      type: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1], content: chunk.slice(end + 4).replace(/\r\n$/, '') });
  }
  return parts;
}

// The rows of one batch: the upload's headers, parts and JSONL line, then the
// create's headers and body. Bodies are flattened under "files ..." and
// "batches ..." prefixes so the rules can tell them apart.
function compareBatch(ours, off) {
  const rows = [];
  const flatFiles = (req) => {
    const parts = multipart(req.body_text, req.headers['content-type']) ?? [];
    const o = { files: {} };
    for (const p of parts) {
      o.files[`part ${p.name}`] = p.name === 'file' ? { filename: p.filename, 'content-type': p.type } : p.content;
    }
    const file = parts.find((p) => p.name === 'file');
    const lines = (file?.content ?? '').split('\n').filter(Boolean);
    o.lines = lines.length;
    o.line = lines.length ? JSON.parse(lines[0]) : undefined;
    o.order = parts.map((p) => p.name).join(',');
    return o;
  };
  const fo = flatFiles(ours.files), fs_ = flatFiles(off.files);
  const sub = (a, b, label) => {
    const r = compare('openai-batch', { method: 'POST', path: a.path, headers: a.headers, body: a.body },
      { method: 'POST', path: b.path, headers: b.headers, body: b.body });
    for (const x of r) rows.push({ ...x, field: `${label} ${x.field}` });
  };
  // The upload: headers via compare(), its body as the parsed parts and line.
  sub({ ...ours.files, body: { files: fo.files, line: fo.line, lines: fo.lines } },
    { ...off.files, body: { files: fs_.files, line: fs_.line, lines: fs_.lines } }, 'POST /files');
  if (fo.order !== fs_.order) {
    let why = null;
    for (const r of BODY_RULES) if ((why = r('openai-batch', 'files part order', { value: fo.order }, { value: fs_.order }))) break;
    rows.push({ field: 'POST /files part order', ours: fo.order, official: fs_.order, verdict: why ? `explained: ${why}` : 'DIFFERENT' });
  }
  sub({ ...ours.batches, body: { batches: ours.batches.body } }, { ...off.batches, body: { batches: off.batches.body } },
    'POST /batches');
  return rows;
}

// One task through cascade on a batch-lane tier of `api`; returns what cascade printed.
function runBatchCascade(api, fixed, dir, mockUrl, key) {
  const d = path.join(dir, `${api}-batch`);
  const cascades = path.join(d, 'cascades');
  fs.mkdirSync(cascades, { recursive: true });
  const models = {
    providers: { [`conf-${api}`]: { api, base_url: `\${MOCK_URL}${BASE_PATH[api]}`, key_env: keyEnv(api) } },
    models: { [`conf-${api}-model`]: { provider: `conf-${api}`, id: fixed.model, input_usd_per_mtok: 1,
      output_usd_per_mtok: 1, context: 100000, max_tokens: fixed.max_tokens } },
  };
  fs.writeFileSync(path.join(cascades, 'models.json'), JSON.stringify(models, null, 2));
  fs.writeFileSync(path.join(cascades, 'conf.json'), JSON.stringify({ name: `conf-${api}-batch`,
    match: { kind: 'code', language: 'python' }, validators: ['syntax'],
    tiers: [{ model: `conf-${api}-model`, attempts: 1, lane: 'batch' }] }));
  const tasks = path.join(d, 'tasks.jsonl');
  fs.writeFileSync(tasks, JSON.stringify({ id: batchTask(api), kind: 'code', language: 'python', prompt: fixed.user }) + '\n');
  const env = { ...process.env, MOCK_URL: mockUrl, [keyEnv(api)]: key };
  return spawnSync(CASCADE_BIN, ['run', tasks, '--cascades', cascades, '--retries', '0',
    '--timeout', '20', '--connect-timeout', '5', '--concurrency', '1', '--batch-poll', '0.05', '-q'],
  { env, cwd: d, encoding: 'utf8', timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL' });
}

const BATCH_TASK = 'capture-batch';
// Anthropic's and Gemini's batch task: its own, so the mock's log tells the runs apart.
const batchTask = (api) => (api === 'openai' ? BATCH_TASK : `${BATCH_TASK}-${api}`);

function printTable(title, rows) {
  const cols = ['field', 'ours', 'official', 'verdict'];
  const w = cols.map((c) => Math.min(48, Math.max(c.length, ...rows.map((r) => String(r[c]).length))));
  const cell = (s, i) => { s = String(s); return (s.length > w[i] ? s.slice(0, w[i] - 1) + '…' : s).padEnd(w[i]); };
  console.log(`\n${title}`);
  // The verdict is never cut: the reason is the point.
  console.log(cols.slice(0, 3).map(cell).join(' | ') + ' | verdict');
  console.log(w.slice(0, 3).map((n) => '-'.repeat(n)).join('-+-') + '-+-' + '-'.repeat(w[3]));
  for (const r of rows) console.log([r.field, r.ours, r.official].map(cell).join(' | ') + ' | ' + r.verdict);
}

// ---- main --------------------------------------------------------------

async function main() {
  const official = readOfficial();
  const fixed = official.prompt;
  const problems = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-compare-'));
  const recPath = path.join(tmp, 'recordings.jsonl');
  const logPath = path.join(tmp, 'requests.jsonl');
  fs.writeFileSync(recPath, recordings(fixed));
  const keys = Object.fromEntries(APIS.map((a) => [a, `fake-cascade-conf-${a}-${crypto.randomBytes(12).toString('hex')}`]));
  const outputs = {};
  let mock = null;
  try {
    mock = await startMock(tmp, recPath, logPath);
    for (const api of APIS) {
      const r = runCascade(api, fixed, tmp, mock.url, keys[api]);
      outputs[api] = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
      if (r.error || r.status !== 0) {
        problems.push(`${api}: cascade run failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${r.stderr}`);
        continue;
      }
      let res = null;
      try { res = JSON.parse(r.stdout.trim().split('\n').pop()); } catch { /* reported below */ }
      if (res?.status !== 'accepted')
        problems.push(`${api}: our client did not accept the mock's answer: ${r.stdout.trim()}`);
    }
    for (const api of APIS) {
      const r = runBatchCascade(api, fixed, tmp, mock.url, keys[api]);
      outputs[`${api}-batch`] = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
      if (r.error || r.status !== 0)
        problems.push(`${api}-batch: cascade run failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${r.stderr}`);
      else if (JSON.parse(r.stdout.trim().split('\n').pop() || '{}').status !== 'accepted')
        problems.push(`${api}-batch: our batch client did not accept the mock's answer: ${r.stdout.trim()}`);
    }
  } finally {
    if (mock) {
      const code = await stopMock(mock);
      if (code !== 0) problems.push(`mock-llm exited ${code} on SIGTERM`);
    }
  }

  const rawLog = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8') : '';
  const lines = rawLog.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const ourRequests = { prompt: fixed, note: official.note, clients: {} };
  const report = {};
  let failed = problems.length > 0;

  // The keys: never in the clear, in the log or in anything cascade printed.
  const texts = [['the mock log', rawLog],
    ...[...APIS, ...APIS.map((a) => `${a}-batch`)].map((a) => [`the output of the ${a} run`, outputs[a] ?? ''])];
  for (const [where, text] of texts)
    for (const [api, k] of Object.entries(keys))
      if (text.includes(k)) problems.push(`${api}: our fake key appears unredacted in ${where}`);

  for (const api of APIS) {
    const mine = lines.filter((l) => l.task === taskId(api));
    if (mine.length !== 1 || mine[0].status !== 200) {
      problems.push(`${api}: want one logged request with status 200 for ${taskId(api)}, got ${mine.length}`
        + (mine[0] ? ` (status ${mine[0].status})` : ''));
      continue;
    }
    const line = mine[0];
    // The mock answers 405 to anything but POST, so a 200 means POST.
    const ours = { package: 'cascade (worker/providers)', method: 'POST', path: line.path,
      headers: { ...line.headers }, body: line.body };
    if (ours.headers.host) ours.headers.host = ours.headers.host.replace(/:\d+$/, ':PORT');
    ourRequests.clients[api] = ours;

    const want = AUTH[api];
    const carrying = Object.entries(ours.headers).filter(([, v]) => String(v).includes('<redacted>'));
    if (carrying.length !== 1 || carrying[0][0] !== want.name || carrying[0][1] !== want.value)
      problems.push(`${api}: want the key in "${want.name}: ${want.value}" only, got `
        + `${JSON.stringify(Object.fromEntries(carrying))}`);

    const rows = compare(api, ours, official.clients[api]);
    report[api] = rows;
    printTable(`${api}: cascade vs ${official.clients[api].package}`, rows);
    for (const r of rows) if (r.verdict === 'DIFFERENT') failed = true;
  }

  // The batch: cascade's upload holds the batch task's line; its create is the POST with a body.
  const upload = lines.find((l) => l.path === '/v1/files' && l.body_text?.includes(`"${BATCH_TASK}#`));
  const create = lines.find((l) => l.path === '/v1/batches' && l.body?.input_file_id);
  let officialBatch = null;
  try {
    officialBatch = JSON.parse(fs.readFileSync(OFFICIAL_BATCH, 'utf8')).clients?.openai;
  } catch (e) {
    problems.push(`cannot read ${OFFICIAL_BATCH} (${e.message}); run 'make conformance-clients' first`);
  }
  if (!upload || !create) {
    problems.push(`openai-batch: want cascade's POST /files and POST /batches in the mock's log, got ${!!upload} and ${!!create}`);
  } else if (officialBatch) {
    const req = (l) => ({ method: 'POST', path: l.path,
      headers: { ...l.headers, ...(l.headers?.host ? { host: l.headers.host.replace(/:\d+$/, ':PORT') } : {}) },
      ...(l.body ? { body: l.body } : {}), ...(l.body_text !== undefined ? { body_text: l.body_text } : {}) });
    const ours = { package: 'cascade (worker/net/batch.c)', files: req(upload), batches: req(create) };
    ourRequests.clients['openai-batch'] = ours;
    const rows = compareBatch(ours, officialBatch);
    report['openai-batch'] = rows;
    printTable(`openai batch: cascade vs ${officialBatch.package}`, rows);
    for (const r of rows) if (r.verdict === 'DIFFERENT') failed = true;
  }

  // Anthropic and Gemini: one create each, the requests inside; compared with the official
  // create's first request (the official one carries four, for its own cases).
  const creates = {
    // The mock logs no method: the create is the one with requests in its body.
    anthropic: lines.find((l) => l.path === '/v1/messages/batches'
      && l.body?.requests?.[0]?.custom_id?.startsWith('capture')),
    gemini: lines.find((l) => /:batchGenerateContent$/.test(l.path ?? '')
      && l.body?.batch?.inputConfig?.requests?.requests?.[0]?.metadata?.key === `${batchTask('gemini')}#1`),
  };
  let officialAll = null;
  try {
    officialAll = JSON.parse(fs.readFileSync(OFFICIAL_BATCH, 'utf8')).clients;
  } catch { /* reported above */ }
  for (const api of ['anthropic', 'gemini']) {
    const name = `${api}-batch`, l = creates[api], off = officialAll?.[api]?.create;
    if (!l) {
      problems.push(`${name}: want cascade's batch create in the mock's log, found none`);
      continue;
    }
    if (!off) {
      problems.push(`${name}: ${OFFICIAL_BATCH} has no ${api} create`);
      continue;
    }
    const ours = { package: `cascade (worker/net/batch_${api}.c)`, method: 'POST', path: l.path,
      headers: { ...l.headers, ...(l.headers?.host ? { host: l.headers.host.replace(/:\d+$/, ':PORT') } : {}) },
      body: l.body };
    ourRequests.clients[name] = ours;
    const offBody = structuredClone(off.body);
    if (api === 'anthropic') offBody.requests = offBody.requests.slice(0, 1);
    else offBody.batch.inputConfig.requests.requests = offBody.batch.inputConfig.requests.requests.slice(0, 1);
    const want = AUTH[api];
    const carrying = Object.entries(ours.headers).filter(([, v]) => String(v).includes('<redacted>'));
    if (carrying.length !== 1 || carrying[0][0] !== want.name || carrying[0][1] !== want.value)
      problems.push(`${name}: want the key in "${want.name}: ${want.value}" only, got `
        + `${JSON.stringify(Object.fromEntries(carrying))}`);
    const rows = compare(name, ours, { ...off, body: offBody });
    report[name] = rows;
    printTable(`${api} batch: cascade vs ${officialAll[api].package} (the first request of its create)`, rows);
    for (const r of rows) if (r.verdict === 'DIFFERENT') failed = true;
  }

  for (const a of ALLOWED) {
    const used = report[a.api]?.some((r) => r.field === a.field && r.verdict.startsWith('DIFFERENT (allowed'));
    if (!used) console.log(`\nnote: allow-list entry ${a.api} "${a.field}" no longer matches anything: remove it`);
  }

  fs.mkdirSync(OUT_DIR, { recursive: true });
  fs.writeFileSync(path.join(OUT_DIR, 'our-requests.json'), JSON.stringify(ourRequests, null, 2) + '\n');
  fs.writeFileSync(path.join(OUT_DIR, 'comparison.json'), JSON.stringify(report, null, 2) + '\n');
  fs.rmSync(tmp, { recursive: true, force: true });

  const counts = Object.values(report).flat().reduce((c, r) => {
    const k = r.verdict === 'same' ? 'same' : r.verdict.startsWith('explained') ? 'explained'
      : r.verdict === 'DIFFERENT' ? 'different' : 'allowed';
    c[k] = (c[k] ?? 0) + 1;
    return c;
  }, {});
  console.log(`\nconformance-compare: ${counts.same ?? 0} same, ${counts.explained ?? 0} explained, `
    + `${counts.allowed ?? 0} different but allowed, ${counts.different ?? 0} different`);
  for (const p of problems) console.error(`conformance-compare: ${p}`);
  if (failed || problems.length) {
    console.error('conformance-compare: FAILED');
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(`conformance-compare: ${e.stack ?? e}`);
  process.exitCode = 1;
});
