// The official `openai` npm package against the Maniac gateway.
//
// Run by tests/compat/run.sh: `node tests/compat/node/test.mjs` with
// MANIAC_BASE_URL, MANIAC_API_KEY, MANIAC_OTHER_KEY set and the package
// installed in $COMPAT_NODE_DIR (default target/compat/node). A tiny
// sequential runner; the last line printed is `N passed, N failed`.
//
// Models: `echo/...` answers with the last user message (usage counts words);
// `fake/...` is the fake upstream: `You said: <last user text>`, scripted by
// markers (FAULT:..., SLOW:<ms>, WORDS:<n>, JSON:).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = resolve(process.env.COMPAT_NODE_DIR ?? join(here, '../../../target/compat/node'));

async function loadOpenAI() {
  const entry = join(nodeDir, 'node_modules/openai/index.mjs');
  try {
    const mod = await import(pathToFileURL(entry).href);
    const version = JSON.parse(readFileSync(join(nodeDir, 'node_modules/openai/package.json'), 'utf8')).version;
    return { mod, version };
  } catch (e) {
    const mod = await import('openai'); // installed next to this file or globally
    return { mod, version: mod.VERSION ?? 'unknown' };
  }
}

const { mod, version } = await loadOpenAI();
const OpenAI = mod.default;
const { APIError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError, InternalServerError } = mod;

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set (run tests/compat/run.sh)`);
    console.log('0 passed, 1 failed');
    process.exit(2);
  }
  return v;
}
const baseURL = env('MANIAC_BASE_URL');
const apiKey = env('MANIAC_API_KEY');
const otherKey = env('MANIAC_OTHER_KEY');

const ECHO = 'echo/compat';
const FAKE = 'fake/compat';
const makeClient = (opts = {}) => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000, ...opts });
const client = makeClient();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const words = (s) => s.split(/\s+/).filter(Boolean).length;

async function waitStatus(id, statuses, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await client.responses.retrieve(id);
    if (statuses.includes(r.status)) return r;
    assert.ok(Date.now() < deadline, `${id} still ${r.status}, wanted ${statuses}`);
    await sleep(50);
  }
}

async function rejects(promiseOrFn, cls, check) {
  let err;
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name}, nothing was thrown`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  if (check) check(err);
  return err;
}

const HEAD = ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added'];
const TAIL = ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed'];

function assertTextStream(events) {
  const types = events.map((e) => e.type);
  const n = types.filter((t) => t === 'response.output_text.delta').length;
  assert.ok(n >= 1, types.join(','));
  assert.deepEqual(types, [...HEAD, ...Array(n).fill('response.output_text.delta'), ...TAIL]);
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
  );
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  const completed = events.at(-1).response;
  assert.equal(completed.id, events[0].response.id);
  assert.equal(completed.status, 'completed');
  assert.equal(completed.output_text ?? completed.output[0].content[0].text, text);
  assert.equal(events.at(-4).text, text);
  return text;
}

// ---------------------------------------------------------------- tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('responses.create with string input (echo)', async () => {
  const r = await client.responses.create({ model: ECHO, input: 'Hello from node' });
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text, 'Hello from node');
  assert.equal(r.usage.input_tokens, 3);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
});

test('responses.create with typed input items (fake)', async () => {
  const r = await client.responses.create({
    model: FAKE,
    instructions: 'Be brief.',
    input: [
      { role: 'user', content: 'first question' },
      { type: 'message', role: 'assistant', content: 'an answer' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'second question' }] },
    ],
  });
  assert.equal(r.output_text, 'You said: second question');
  assert.equal(r.instructions, 'Be brief.');
  assert.equal(r.usage.input_tokens, words('Be brief. first question an answer second question'));
});

test('responses.create stream: exact event order and sequence numbers', async () => {
  const stream = await client.responses.create({ model: FAKE, input: 'alpha beta gamma', stream: true });
  const events = [];
  for await (const e of stream) events.push(e);
  assert.equal(assertTextStream(events), 'You said: alpha beta gamma');
});

test('responses.stream(...) + finalResponse()', async () => {
  const deltas = [];
  const stream = client.responses.stream({ model: FAKE, input: 'node helper stream' });
  stream.on('response.output_text.delta', (e) => {
    deltas.push(e.delta);
    assert.equal(e.snapshot, deltas.join(''));
  });
  const final = await stream.finalResponse();
  assert.equal(final.status, 'completed');
  assert.equal(final.output_text, 'You said: node helper stream');
  assert.equal(deltas.join(''), final.output_text);
});

test('responses.stream(...) async iteration + finalResponse()', async () => {
  const stream = client.responses.stream({ model: ECHO, input: 'iterate me' });
  const types = [];
  for await (const e of stream) types.push(e.type);
  const final = await stream.finalResponse();
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.equal(final.output_text, 'iterate me');
});

test('responses.parse with a json_schema text format', async () => {
  const r = await client.responses.parse({
    model: FAKE,
    input: 'JSON: a person',
    text: {
      format: {
        type: 'json_schema',
        name: 'Person',
        strict: true,
        schema: {
          type: 'object',
          properties: { name: { type: 'string' }, age: { type: 'integer' } },
          required: ['name', 'age'],
          additionalProperties: false,
        },
      },
    },
  });
  assert.deepEqual(r.output_parsed, { name: 'Ada', age: 36 });
  assert.equal(r.text.format.type, 'json_schema');
});

test('store + previous_response_id chain', async () => {
  const r1 = await client.responses.create({ model: FAKE, input: 'first turn', instructions: 'be very brief' });
  assert.equal(r1.output_text, 'You said: first turn');
  const r2 = await client.responses.create({ model: FAKE, input: 'second turn', previous_response_id: r1.id });
  assert.equal(r2.previous_response_id, r1.id);
  assert.equal(r2.output_text, 'You said: second turn');
  // the upstream saw r1's input and output (not its instructions) then the new input
  assert.equal(r2.usage.input_tokens, words('first turn You said: first turn second turn'));
  await rejects(
    client.responses.create({ model: ECHO, input: 'x', previous_response_id: 'resp_' + '0'.repeat(48) }),
    BadRequestError,
    (e) => {
      assert.equal(e.param, 'previous_response_id');
      assert.equal(e.code, 'previous_response_not_found');
    },
  );
});

test('responses.retrieve', async () => {
  const r = await client.responses.create({ model: ECHO, input: 'keep me', metadata: { suite: 'node' } });
  const got = await client.responses.retrieve(r.id);
  assert.equal(got.id, r.id);
  assert.equal(got.status, 'completed');
  assert.equal(got.output_text, 'keep me');
  assert.deepEqual(got.metadata, { suite: 'node' });
  assert.deepEqual(
    got.output.map((o) => o.id),
    r.output.map((o) => o.id),
  );
});

test('responses.retrieve(id, {stream, starting_after}) on a background run', async () => {
  const r = await client.responses.create({ model: FAKE, input: 'SLOW:20 WORDS:8', background: true });
  assert.equal(r.status, 'queued');
  assert.equal(r.background, true);
  const stream = await client.responses.retrieve(r.id, { stream: true, starting_after: 3 });
  const seqs = [];
  let last;
  for await (const e of stream) {
    seqs.push(e.sequence_number);
    last = e;
  }
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => 4 + i),
  );
  assert.equal(last.type, 'response.completed');
  assert.equal(last.response.output.at(-1).content[0].text, 'w0 w1 w2 w3 w4 w5 w6 w7');
});

test('responses.stream({response_id}) + finalResponse() on a background run', async () => {
  const r = await client.responses.create({ model: FAKE, input: 'SLOW:20 follow me', background: true });
  const stream = client.responses.stream({ response_id: r.id });
  const final = await stream.finalResponse();
  assert.equal(final.id, r.id);
  assert.equal(final.status, 'completed');
  assert.equal(final.output_text, 'You said: SLOW:20 follow me');
});

test('background create + cancel', async () => {
  const r = await client.responses.create({ model: FAKE, input: 'SLOW:100 WORDS:200', background: true });
  assert.equal(r.status, 'queued');
  await waitStatus(r.id, ['in_progress']);
  const c = await client.responses.cancel(r.id);
  assert.equal(c.id, r.id);
  assert.equal(c.status, 'cancelled');
  await sleep(200);
  assert.equal((await client.responses.retrieve(r.id)).status, 'cancelled');
  assert.equal((await client.responses.cancel(r.id)).status, 'cancelled');
  const sync = await client.responses.create({ model: ECHO, input: 'not background' });
  await rejects(client.responses.cancel(sync.id), BadRequestError);
});

test('responses.delete then retrieve is NotFoundError', async () => {
  const r = await client.responses.create({ model: ECHO, input: 'delete me' });
  await client.responses.delete(r.id); // typed as void; the body is not part of the contract
  await rejects(client.responses.retrieve(r.id), NotFoundError, (e) => assert.equal(e.status, 404));
});

test('inputItems.list auto-pagination', async () => {
  const texts = [0, 1, 2, 3, 4].map((i) => `item${i} text`);
  const r = await client.responses.create({
    model: ECHO,
    input: texts.map((t, i) => ({ role: i % 2 ? 'assistant' : 'user', content: t })),
  });
  const first = await client.responses.inputItems.list(r.id, { limit: 2 });
  assert.equal(first.data.length, 2);
  assert.equal(first.has_more, true);
  const all = [];
  for await (const item of client.responses.inputItems.list(r.id, { limit: 2, order: 'asc' })) all.push(item);
  assert.deepEqual(
    all.map((i) => i.content[0].text),
    texts,
  );
  assert.equal(new Set(all.map((i) => i.id)).size, 5);
});

test('errors: Authentication, BadRequest (param), NotFound (unknown + other org)', async () => {
  await rejects(
    makeClient({ apiKey: 'sk-mn-' + '0'.repeat(48) }).responses.create({ model: ECHO, input: 'x' }),
    AuthenticationError,
    (e) => assert.equal(e.status, 401),
  );
  await rejects(client.responses.create({ model: ECHO, input: 'x', temperature: 5 }), BadRequestError, (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    assert.equal(e.type, 'invalid_request_error');
  });
  await rejects(client.responses.retrieve('resp_' + 'f'.repeat(48)), NotFoundError);
  const mine = await client.responses.create({ model: ECHO, input: 'org one only' });
  const other = makeClient({ apiKey: otherKey });
  await rejects(other.responses.retrieve(mine.id), NotFoundError);
  await rejects(other.responses.delete(mine.id), NotFoundError);
  assert.equal((await client.responses.retrieve(mine.id)).output_text, 'org one only');
});

test('errors: RateLimit (Retry-After kept), InternalServer 502', async () => {
  await rejects(client.responses.create({ model: FAKE, input: 'FAULT:429 x' }), RateLimitError, (e) => {
    assert.equal(e.status, 429);
    assert.equal(e.headers.get('retry-after'), '7');
    assert.equal(e.code, 'rate_limit_exceeded');
  });
  await rejects(client.responses.create({ model: FAKE, input: 'FAULT:500 x' }), InternalServerError, (e) =>
    assert.equal(e.status, 502),
  );
});

test('mid-stream failure throws APIError during iteration', async () => {
  const stream = await client.responses.create({ model: FAKE, input: 'FAULT:reset a b c d e', stream: true });
  const seen = [];
  await rejects(async () => {
    for await (const e of stream) seen.push(e.type);
  }, APIError);
  assert.equal(seen[0], 'response.created');
  assert.ok(!seen.includes('response.completed'));
  await rejects(client.responses.stream({ model: FAKE, input: 'FAULT:reset a b c d e' }).finalResponse(), APIError);
});

// ---------------------------------------------------------------- runner

const started = Date.now();
console.log(`node ${process.version}, openai ${version} (npm), gateway ${baseURL}`);
let passed = 0;
let failed = 0;
for (const [i, t] of tests.entries()) {
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([
      t.fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after 30 s')), 30_000);
      }),
    ]);
    passed++;
    console.log(`ok ${i + 1} - ${t.name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok ${i + 1} - ${t.name} (${Date.now() - t0} ms)`);
    console.log(String(e?.stack ?? e).replace(/^/gm, '    '));
  } finally {
    clearTimeout(timer);
  }
}
console.log(`node suite: ${tests.length} tests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
