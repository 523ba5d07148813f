// Points the official npm clients (openai, @anthropic-ai/sdk, @google/genai)
// at build/mock-llm and checks, through each client's own API, that they
// accept the mock's answers (text, usage, finish reason) and turn its errors
// into their own error classes with the right status. It also records the
// exact request each client sends for one fixed prompt, so the lead can
// compare it field by field with the request cascade's C client sends:
// build/conformance/official-requests.json.
//
// Run by `make conformance-clients` (mk/conformance.mk), which installs the
// pinned clients into build/conformance and runs this file from there:
//   MOCK_BIN=build/mock-llm OUT_DIR=build/conformance node --test conformance.test.mjs
// Every client call has a timeout and no retries, and the mock is stopped in
// the after() hook whatever happened.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { ApiError, FinishReason, GoogleGenAI } from '@google/genai';

const MOCK_BIN = path.resolve(process.env.MOCK_BIN ?? 'build/mock-llm');
const OUT_DIR = path.resolve(process.env.OUT_DIR ?? 'build/conformance');
const CALL_TIMEOUT_MS = 10000;
const CASE = { timeout: 20000 };

// The one prompt whose requests are captured; keep it in step with the C side.
const FIXED = {
  model: 'm-ok',
  system: 'You are a careful programmer. Answer with code only.',
  user: 'Write a Python function add(a, b) that returns a + b.',
  max_tokens: 256,
};

const CLIENTS = ['openai', 'anthropic', 'gemini'];
const PACKAGES = { openai: 'openai', anthropic: '@anthropic-ai/sdk', gemini: '@google/genai' };

// One answer per (task, model) the cases ask for; the error models have no
// recordings, because their faults fire before a recording is looked up.
function recordings() {
  const lines = [];
  for (const c of CLIENTS) {
    lines.push({ task: `ok-${c}`, model: 'm-ok', run: 1, answer: `def add(a, b):\n    return a + b  # ${c}\n`,
      usage: { prompt_tokens: 31, completion_tokens: 17 } });
    lines.push({ task: `len-${c}`, model: 'm-ok', run: 1, answer: 'def add(a, b):\n    ret',
      usage: { prompt_tokens: 31, completion_tokens: 8 }, finish_reason: 'length' });
    lines.push({ task: `trunc-${c}`, model: 'm-trunc', run: 1, answer: 'cut me', usage: { prompt_tokens: 1, completion_tokens: 2 } });
    lines.push({ task: `capture-${c}`, model: FIXED.model, run: 1, answer: 'def add(a, b):\n    return a + b\n',
      usage: { prompt_tokens: 40, completion_tokens: 12 } });
  }
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

const FAULTS = ['429:1:2@m-429', '500:1@m-500', '529:1@m-529', 'spend-limit:1@m-spend', 'truncate:1@m-trunc'];

let mock = null;
let port = 0;
let tmp = '';
let logPath = '';

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-'));
  const recPath = path.join(tmp, 'recordings.jsonl');
  const portFile = path.join(tmp, 'port');
  logPath = path.join(tmp, 'requests.jsonl');
  fs.writeFileSync(recPath, recordings());
  const args = ['--port', '0', '--port-file', portFile, '--recordings', recPath, '--log', logPath,
    '--log-headers'];
  for (const f of FAULTS) args.push('--fault', f);
  mock = spawn(MOCK_BIN, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => mock.once('exit', resolve));
  mock.exitPromise = exited;
  // The port file appears, complete, once the mock listens (bounded: 5 s).
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

// ---- clients ------------------------------------------------------------

const base = () => `http://127.0.0.1:${port}`;

function openai(task) {
  return new OpenAI({ apiKey: 'fake-conformance-openai', baseURL: `${base()}/v1`, maxRetries: 0,
    timeout: CALL_TIMEOUT_MS, defaultHeaders: { 'X-Cascade-Task': task } });
}

function anthropic(task) {
  return new Anthropic({ apiKey: 'fake-conformance-anthropic', baseURL: base(), maxRetries: 0,
    timeout: CALL_TIMEOUT_MS, defaultHeaders: { 'X-Cascade-Task': task } });
}

function gemini(task) {
  return new GoogleGenAI({ apiKey: 'conformance-gemini-key', httpOptions: { baseUrl: base(),
    apiVersion: 'v1beta', timeout: CALL_TIMEOUT_MS, headers: { 'X-Cascade-Task': task },
    retryOptions: { attempts: 1 } } });
}

// One call per client with the fixed prompt's shape; returns a common view.
const call = {
  async openai(task, model = FIXED.model) {
    const r = await openai(task).chat.completions.create({ model, max_tokens: FIXED.max_tokens,
      messages: [{ role: 'system', content: FIXED.system }, { role: 'user', content: FIXED.user }] });
    return { text: r.choices[0].message.content, input: r.usage.prompt_tokens,
      output: r.usage.completion_tokens, finish: r.choices[0].finish_reason };
  },
  async anthropic(task, model = FIXED.model) {
    const r = await anthropic(task).messages.create({ model, max_tokens: FIXED.max_tokens,
      system: FIXED.system, messages: [{ role: 'user', content: FIXED.user }] });
    return { text: r.content[0].text, input: r.usage.input_tokens, output: r.usage.output_tokens,
      finish: r.stop_reason };
  },
  async gemini(task, model = FIXED.model) {
    const r = await gemini(task).models.generateContent({ model, contents: FIXED.user,
      config: { systemInstruction: FIXED.system, maxOutputTokens: FIXED.max_tokens } });
    return { text: r.text, input: r.usageMetadata.promptTokenCount,
      output: r.usageMetadata.candidatesTokenCount, finish: r.candidates[0].finishReason };
  },
};

const FINISH = {
  openai: { stop: 'stop', length: 'length' },
  anthropic: { stop: 'end_turn', length: 'max_tokens' },
  gemini: { stop: FinishReason.STOP, length: FinishReason.MAX_TOKENS },
};

// The error class each client must raise for a status.
const ERRORS = {
  openai: { 404: OpenAI.NotFoundError, 429: OpenAI.RateLimitError, 500: OpenAI.InternalServerError,
    529: OpenAI.InternalServerError },
  anthropic: { 404: Anthropic.NotFoundError, 429: Anthropic.RateLimitError,
    500: Anthropic.InternalServerError, 529: Anthropic.OverloadedError },
  gemini: { 404: ApiError, 429: ApiError, 500: ApiError, 529: ApiError },
};

function header(err, name) {
  const h = err.headers;
  if (!h) return undefined;
  return typeof h.get === 'function' ? h.get(name) ?? undefined : h[name];
}

async function expectError(client, model, status, task) {
  let caught = null;
  try {
    await call[client](task, model);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `${client}: a ${status} must reject`);
  const want = ERRORS[client][status];
  assert.ok(caught instanceof want,
    `${client}: ${status} gave ${caught?.constructor?.name} (${caught?.message}), want ${want.name}`);
  assert.equal(caught.status, status);
  return caught;
}

// ---- cases --------------------------------------------------------------

for (const client of CLIENTS) {
  describe(client, () => {
    test('success: recorded text, usage and finish reason', CASE, async () => {
      const r = await call[client](`ok-${client}`);
      assert.equal(r.text, `def add(a, b):\n    return a + b  # ${client}\n`);
      assert.equal(r.input, 31);
      assert.equal(r.output, 17);
      assert.equal(r.finish, FINISH[client].stop);
    });

    test('length: finish reason says the token limit cut the answer', CASE, async () => {
      const r = await call[client](`len-${client}`);
      assert.equal(r.text, 'def add(a, b):\n    ret');
      assert.equal(r.finish, FINISH[client].length);
    });

    test('404: unknown (task, model)', CASE, async () => {
      await expectError(client, 'm-unrecorded', 404, `ok-${client}`);
    });

    test('429 with Retry-After', CASE, async () => {
      const e = await expectError(client, 'm-429', 429, `err-${client}`);
      // @google/genai's ApiError carries no headers; the status is all it exposes.
      if (client !== 'gemini') {
        assert.equal(header(e, 'retry-after'), '2');
        assert.equal(header(e, 'retry-after-ms'), '2000');
      }
    });

    test('500', CASE, async () => {
      await expectError(client, 'm-500', 500, `err-${client}`);
    });

    test('529 overloaded', CASE, async () => {
      await expectError(client, 'm-529', 529, `err-${client}`);
    });

    test('spend-limit: 429 that names the quota', CASE, async () => {
      const e = await expectError(client, 'm-spend', 429, `err-${client}`);
      assert.match(e.message, /quota|spend limit/);
      if (client === 'openai') assert.equal(e.code, 'insufficient_quota');
    });

    test('truncated JSON body: rejects without hanging', CASE, async () => {
      await assert.rejects(call[client](`trunc-${client}`, 'm-trunc'));
    });

    test('capture: the fixed prompt', CASE, async () => {
      const r = await call[client](`capture-${client}`);
      assert.equal(r.text, 'def add(a, b):\n    return a + b\n');
    });
  });
}

// ---- the captured requests ---------------------------------------------

function version(pkg) {
  const p = path.join(OUT_DIR, 'node_modules', pkg, 'package.json');
  try { return JSON.parse(fs.readFileSync(p, 'utf8')).version; } catch { return null; }
}

function writeOfficialRequests() {
  const lines = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const out = { prompt: FIXED, note: 'Requests as logged by mock-llm --log-headers: header names '
    + 'lower-cased, credentials redacted, host port replaced by PORT.', clients: {} };
  for (const c of CLIENTS) {
    const line = lines.find((l) => l.task === `capture-${c}`);
    if (!line) continue;
    const headers = { ...line.headers };
    if (headers.host) headers.host = headers.host.replace(/:\d+$/, ':PORT');
    out.clients[c] = { package: `${PACKAGES[c]}@${version(PACKAGES[c])}`, method: 'POST',
      path: line.path, headers, body: line.body };
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  fs.writeFileSync(path.join(OUT_DIR, 'official-requests.json'), JSON.stringify(out, null, 2) + '\n');
}
