// The batch half of `make conformance` (issue 14, part 6): points the batch
// APIs of the official npm clients at build/mock-llm and checks, through each
// client's own API and types, that they accept the mock's batch objects and
// results:
//   openai            files.create, batches.create/retrieve/list/cancel, files.content
//   @anthropic-ai/sdk messages.batches.create/retrieve/list/results/cancel
//   @google/genai     batches.create/get/list/cancel
// Each case asserts parsed fields (ids, statuses, counts, the recorded text,
// per-request errors and expiries), not just that nothing threw.
//
// It also writes build/conformance/official-batch-requests.json: the OpenAI
// client's POST /files (multipart) and POST /batches for one fixed batch,
// whose single request is the fixed prompt of conformance.test.mjs, so that
// compare.mjs can compare cascade's own batch requests (worker/net/batch.c)
// with them field by field; and, for the record, the Anthropic and Gemini
// creates.
//
// Run by `make conformance-clients` beside conformance.test.mjs:
//   MOCK_BIN=build/mock-llm OUT_DIR=build/conformance node --test batch.test.mjs
// Every call has a timeout and no retries; every poll loop is bounded; the
// mock is stopped in the after() hook whatever happened.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import OpenAI, { toFile } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI, JobState } from '@google/genai';

const MOCK_BIN = path.resolve(process.env.MOCK_BIN ?? 'build/mock-llm');
const OUT_DIR = path.resolve(process.env.OUT_DIR ?? 'build/conformance');
const CALL_TIMEOUT_MS = 10000;
const CASE = { timeout: 30000 };
const POLLS = 100; // bounded polling: 100 x 20 ms, far above --batch-delay

// Keep in step with conformance.test.mjs: the chat request inside the batch.
const FIXED = {
  model: 'm-ok',
  system: 'You are a careful programmer. Answer with code only.',
  user: 'Write a Python function add(a, b) that returns a + b.',
  max_tokens: 256,
};

const ANSWER = (c, n) => `def add(a, b):\n    return a + b  # ${c} ${n}\n`;

// Tasks b1, b2 answer; "exp" models expire, "m-500" fails, per request.
function recordings() {
  const lines = [];
  for (const c of ['openai', 'anthropic', 'gemini'])
    for (const n of [1, 2])
      lines.push({ task: `b${n}-${c}`, model: 'm-ok', run: 1, answer: ANSWER(c, n),
        usage: { prompt_tokens: 30 + n, completion_tokens: 10 + n } });
  lines.push({ task: 'capture-batch', model: FIXED.model, run: 1, answer: 'def add(a, b):\n    return a + b\n',
    usage: { prompt_tokens: 40, completion_tokens: 12 } });
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

const FAULTS = ['batch-expired:1@m-exp', '500:1@m-500', 'batch-failed:1@m-fail'];

let mock = null;
let port = 0;
let tmp = '';
let logPath = '';

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-batch-'));
  const recPath = path.join(tmp, 'recordings.jsonl');
  const portFile = path.join(tmp, 'port');
  logPath = path.join(tmp, 'requests.jsonl');
  fs.writeFileSync(recPath, recordings());
  // A batch completes 100 ms after its creation: the first retrieve sees it in progress.
  const args = ['--port', '0', '--port-file', portFile, '--recordings', recPath, '--log', logPath,
    '--log-headers', '--batch-delay', '100'];
  for (const f of FAULTS) args.push('--fault', f);
  mock = spawn(MOCK_BIN, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  mock.exitPromise = new Promise((resolve) => mock.once('exit', resolve));
  for (let i = 0; i < 100 && !port; i++) {
    if (mock.exitCode !== null) break;
    try { port = Number(fs.readFileSync(portFile, 'utf8').trim()); } catch { await sleep(50); }
  }
  assert.ok(port > 0, `mock-llm (${MOCK_BIN}) did not start`);
});

after(async () => {
  try {
    if (port) writeOfficialRequests();
  } finally {
    if (mock && mock.exitCode === null) {
      mock.kill('SIGTERM');
      const timer = setTimeout(() => mock.kill('SIGKILL'), 5000);
      const code = await mock.exitPromise;
      clearTimeout(timer);
      assert.equal(code, 0, 'mock-llm exits 0 on SIGTERM');
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
});

const base = () => `http://127.0.0.1:${port}`;
const openai = () => new OpenAI({ apiKey: 'fake-conformance-openai', baseURL: `${base()}/v1`,
  maxRetries: 0, timeout: CALL_TIMEOUT_MS });
const anthropic = () => new Anthropic({ apiKey: 'fake-conformance-anthropic', baseURL: base(),
  maxRetries: 0, timeout: CALL_TIMEOUT_MS });
const gemini = () => new GoogleGenAI({ apiKey: 'conformance-gemini-key', httpOptions: {
  baseUrl: base(), apiVersion: 'v1beta', timeout: CALL_TIMEOUT_MS, retryOptions: { attempts: 1 } } });

async function poll(get, done) {
  let last = null;
  for (let i = 0; i < POLLS; i++) {
    last = await get();
    if (done(last)) return last;
    await sleep(20);
  }
  assert.fail(`the batch never finished: ${JSON.stringify(last)}`);
}

function logLines() {
  return fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// ---- openai ---------------------------------------------------------------

const chatBody = (model = FIXED.model) => ({ model, max_tokens: FIXED.max_tokens,
  messages: [{ role: 'system', content: FIXED.system }, { role: 'user', content: FIXED.user }] });
const jsonl = (lines) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
const line = (id, model) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: chatBody(model) });

async function openaiBatch(client, lines, metadata) {
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'batch.jsonl'),
    purpose: 'batch' });
  assert.equal(file.object, 'file');
  assert.equal(file.purpose, 'batch');
  assert.match(file.id, /^file-/);
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions',
    completion_window: '24h', metadata });
}

describe('openai batches', () => {
  test('create, retrieve until completed, output and error files', CASE, async () => {
    const c = openai();
    const b = await openaiBatch(c, [line('b1-openai#1', 'm-ok'), line('b2-openai#1', 'm-ok'),
      line('x#1', 'm-exp'), line('y#1', 'm-500')], { cascade_run: 'conf' });
    assert.equal(b.object, 'batch');
    assert.equal(b.endpoint, '/v1/chat/completions');
    assert.equal(b.completion_window, '24h');
    assert.ok(['validating', 'in_progress'].includes(b.status));
    assert.deepEqual(b.metadata, { cascade_run: 'conf' });
    assert.equal(b.request_counts.total, 4);
    const done = await poll(() => c.batches.retrieve(b.id), (x) => x.status === 'completed');
    assert.deepEqual({ ...done.request_counts }, { total: 4, completed: 2, failed: 2 });
    const out = (await (await c.files.content(done.output_file_id)).text()).trim().split('\n').map((l) => JSON.parse(l));
    const byId = Object.fromEntries(out.map((o) => [o.custom_id, o]));
    assert.equal(byId['b1-openai#1'].response.status_code, 200);
    assert.equal(byId['b1-openai#1'].response.body.choices[0].message.content, ANSWER('openai', 1));
    assert.equal(byId['b2-openai#1'].response.body.usage.completion_tokens, 12);
    const err = (await (await c.files.content(done.error_file_id)).text()).trim().split('\n').map((l) => JSON.parse(l));
    const e = Object.fromEntries(err.map((o) => [o.custom_id, o]));
    assert.equal(e['x#1'].error.code, 'batch_expired');
    assert.equal(e['y#1'].response.status_code, 500);
  });

  test('list (newest first) and cancel', CASE, async () => {
    const c = openai();
    const b = await openaiBatch(c, [line('c1#1', 'm-ok')]);
    const cancelled = await c.batches.cancel(b.id);
    assert.equal(cancelled.id, b.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelled.status));
    const page = await c.batches.list({ limit: 100 });
    assert.equal(page.data[0].id, b.id);
    assert.ok(page.data.length >= 2);
  });

  test('a batch-level failure', CASE, async () => {
    const c = openai();
    const b = await openaiBatch(c, [line('f1#1', 'm-fail')]);
    const done = await poll(() => c.batches.retrieve(b.id), (x) => x.status !== 'validating' && x.status !== 'in_progress');
    assert.equal(done.status, 'failed');
  });

  test('capture: the fixed prompt as a one-request batch', CASE, async () => {
    const c = openai();
    const b = await openaiBatch(c, [line('capture-batch#1', FIXED.model)], { cascade_run: 'conformance' });
    const done = await poll(() => c.batches.retrieve(b.id), (x) => x.status === 'completed');
    assert.equal(done.request_counts.completed, 1);
  });
});

// ---- anthropic ------------------------------------------------------------

const params = (model) => ({ model, max_tokens: FIXED.max_tokens, system: FIXED.system,
  messages: [{ role: 'user', content: FIXED.user }] });

describe('anthropic message batches', () => {
  test('create, retrieve until ended, results by type', CASE, async () => {
    const c = anthropic();
    const b = await c.messages.batches.create({ requests: [
      { custom_id: 'b1-anthropic__1', params: params('m-ok') },
      { custom_id: 'b2-anthropic__1', params: params('m-ok') },
      { custom_id: 'x__1', params: params('m-exp') },
      { custom_id: 'y__1', params: params('m-500') }] });
    assert.equal(b.type, 'message_batch');
    assert.match(b.id, /^msgbatch_/);
    assert.equal(b.processing_status, 'in_progress');
    assert.equal(b.request_counts.processing, 4);
    assert.equal(b.results_url, null);
    assert.ok(!Number.isNaN(Date.parse(b.created_at)));
    assert.ok(Date.parse(b.expires_at) > Date.parse(b.created_at));
    const done = await poll(() => c.messages.batches.retrieve(b.id), (x) => x.processing_status === 'ended');
    assert.deepEqual({ ...done.request_counts }, { processing: 0, succeeded: 2, errored: 1, canceled: 0, expired: 1 });
    assert.ok(done.results_url.endsWith(`/v1/messages/batches/${b.id}/results`));
    assert.ok(!Number.isNaN(Date.parse(done.ended_at)));
    const results = {};
    for await (const r of await c.messages.batches.results(b.id)) results[r.custom_id] = r.result;
    assert.equal(Object.keys(results).length, 4);
    assert.equal(results['b1-anthropic__1'].type, 'succeeded');
    assert.equal(results['b1-anthropic__1'].message.content[0].text, ANSWER('anthropic', 1));
    assert.equal(results['b1-anthropic__1'].message.stop_reason, 'end_turn');
    assert.equal(results['b2-anthropic__1'].message.usage.output_tokens, 12);
    assert.equal(results['x__1'].type, 'expired');
    assert.equal(results['y__1'].type, 'errored');
    assert.equal(results['y__1'].error.type, 'error');
    assert.equal(results['y__1'].error.error.type, 'api_error');
  });

  test('cancel: canceling, then ended with every request canceled', CASE, async () => {
    const c = anthropic();
    const b = await c.messages.batches.create({ requests: [{ custom_id: 'c1', params: params('m-ok') }] });
    const x = await c.messages.batches.cancel(b.id);
    assert.equal(x.processing_status, 'canceling');
    assert.ok(!Number.isNaN(Date.parse(x.cancel_initiated_at)));
    const done = await poll(() => c.messages.batches.retrieve(b.id), (y) => y.processing_status === 'ended');
    assert.equal(done.request_counts.canceled, 1);
    const results = [];
    for await (const r of await c.messages.batches.results(b.id)) results.push(r);
    assert.deepEqual(results, [{ custom_id: 'c1', result: { type: 'canceled' } }]);
  });

  test('list: newest first, pages by after_id', CASE, async () => {
    const c = anthropic();
    const ids = [];
    for (const n of [1, 2, 3])
      ids.push((await c.messages.batches.create({ requests: [{ custom_id: `l${n}`, params: params('m-ok') }] })).id);
    const page = await c.messages.batches.list({ limit: 2 });
    assert.deepEqual(page.data.map((x) => x.id), [ids[2], ids[1]]);
    assert.equal(page.has_more, true);
    assert.equal(page.last_id, ids[1]);
    assert.ok(page.hasNextPage());
    const next = await page.getNextPage();
    assert.equal(next.data[0].id, ids[0]);
    const all = [];
    for await (const x of c.messages.batches.list({ limit: 2 })) all.push(x.id);
    assert.ok(all.length >= 5 && all.length < 100);
  });

  test('a custom_id the API would refuse is a 400', CASE, async () => {
    await assert.rejects(anthropic().messages.batches.create({ requests: [{ custom_id: 'task#1', params: params('m-ok') }] }),
      (e) => e instanceof Anthropic.BadRequestError && e.status === 400);
  });

  test('a batch-level failure: every request errored', CASE, async () => {
    const c = anthropic();
    const b = await c.messages.batches.create({ requests: [{ custom_id: 'f1', params: params('m-fail') }] });
    const done = await poll(() => c.messages.batches.retrieve(b.id), (x) => x.processing_status === 'ended');
    assert.equal(done.request_counts.errored, 1);
    for await (const r of await c.messages.batches.results(b.id)) assert.equal(r.result.type, 'errored');
  });
});

// ---- gemini ---------------------------------------------------------------

const inlined = (key, model) => ({ contents: [{ role: 'user', parts: [{ text: FIXED.user }] }],
  config: { systemInstruction: FIXED.system, maxOutputTokens: FIXED.max_tokens },
  metadata: { key }, ...(model ? { model } : {}) });

describe('gemini batches', () => {
  test('create, get until succeeded, inlined responses in order', CASE, async () => {
    const g = gemini();
    const b = await g.batches.create({ model: 'm-ok', src: [inlined('b1-gemini#1'), inlined('b2-gemini#1'),
      inlined('y#1', 'm-500')], config: { displayName: 'conformance' } });
    assert.match(b.name, /^batches\//);
    assert.equal(b.displayName, 'conformance');
    assert.equal(b.model, 'models/m-ok');
    assert.equal(b.state, JobState.JOB_STATE_RUNNING);
    const done = await poll(() => g.batches.get({ name: b.name }), (x) => x.state !== JobState.JOB_STATE_RUNNING
      && x.state !== JobState.JOB_STATE_PENDING);
    assert.equal(done.state, JobState.JOB_STATE_SUCCEEDED);
    assert.ok(!Number.isNaN(Date.parse(done.endTime)));
    const rs = done.dest.inlinedResponses;
    assert.equal(rs.length, 3);
    // A plain object, not a GenerateContentResponse instance: no .text getter.
    assert.equal(rs[0].response.candidates[0].content.parts[0].text, ANSWER('gemini', 1));
    assert.equal(rs[0].response.candidates[0].finishReason, 'STOP');
    assert.equal(rs[0].metadata.key, 'b1-gemini#1');
    assert.equal(rs[1].response.usageMetadata.candidatesTokenCount, 12);
    assert.equal(rs[2].response, undefined);
    assert.equal(rs[2].error.code, 500);
  });

  test('a request that expires expires the whole batch', CASE, async () => {
    const g = gemini();
    const b = await g.batches.create({ model: 'm-exp', src: [inlined('x#1')] });
    const done = await poll(() => g.batches.get({ name: b.name }), (x) => x.state !== JobState.JOB_STATE_RUNNING);
    assert.equal(done.state, JobState.JOB_STATE_EXPIRED);
    assert.equal(done.dest, undefined);
  });

  test('a batch-level failure', CASE, async () => {
    const g = gemini();
    const b = await g.batches.create({ model: 'm-fail', src: [inlined('f#1')] });
    const done = await poll(() => g.batches.get({ name: b.name }), (x) => x.state !== JobState.JOB_STATE_RUNNING);
    assert.equal(done.state, JobState.JOB_STATE_FAILED);
  });

  test('cancel, then list: newest first, paged', CASE, async () => {
    const g = gemini();
    const b = await g.batches.create({ model: 'm-ok', src: [inlined('c#1')] });
    await g.batches.cancel({ name: b.name });
    const done = await g.batches.get({ name: b.name });
    assert.equal(done.state, JobState.JOB_STATE_CANCELLED);
    const pager = await g.batches.list({ config: { pageSize: 2 } });
    assert.equal(pager.page[0].name, b.name);
    assert.equal(pager.page.length, 2);
    assert.ok(pager.hasNextPage());
    const names = [];
    for await (const x of await g.batches.list({ config: { pageSize: 2 } })) names.push(x.name);
    assert.equal(new Set(names).size, names.length);
    assert.ok(names.length >= 4 && names.length < 100);
  });
});

// ---- the captured requests -------------------------------------------------

function version(pkg) {
  const p = path.join(OUT_DIR, 'node_modules', pkg, 'package.json');
  try { return JSON.parse(fs.readFileSync(p, 'utf8')).version; } catch { return null; }
}

function request(l) {
  const headers = { ...l.headers };
  if (headers.host) headers.host = headers.host.replace(/:\d+$/, ':PORT');
  const r = { method: l.method ?? 'POST', path: l.path, headers };
  if (l.body !== undefined && l.body !== null) r.body = l.body;
  if (l.body_text !== undefined) r.body_text = l.body_text;
  return r;
}

function writeOfficialRequests() {
  const lines = logLines().filter((l) => l.path !== undefined);
  const out = { prompt: FIXED, note: 'Requests as logged by mock-llm --log-headers: header names '
    + 'lower-cased, credentials redacted, host port replaced by PORT; a multipart body as body_text.',
  clients: {} };
  // The OpenAI capture batch: its upload holds capture-batch#1, its create the metadata "conformance".
  const upload = lines.find((l) => l.path === '/v1/files' && l.body_text?.includes('capture-batch#1'));
  const create = lines.find((l) => l.path === '/v1/batches' && l.body?.metadata?.cascade_run === 'conformance');
  if (upload && create)
    out.clients.openai = { package: `openai@${version('openai')}`, files: request(upload), batches: request(create) };
  const a = lines.find((l) => l.path === '/v1/messages/batches' && l.body?.requests);
  if (a) out.clients.anthropic = { package: `@anthropic-ai/sdk@${version('@anthropic-ai/sdk')}`, create: request(a) };
  const g = lines.find((l) => /:batchGenerateContent$/.test(l.path ?? ''));
  if (g) out.clients.gemini = { package: `@google/genai@${version('@google/genai')}`, create: request(g) };
  fs.mkdirSync(OUT_DIR, { recursive: true });
  fs.writeFileSync(path.join(OUT_DIR, 'official-batch-requests.json'), JSON.stringify(out, null, 2) + '\n');
}
