// The official `openai` npm package's Chat Completions API against the gateway.
//
// Run by tests/compat/run.sh after test.mjs: `node tests/compat/node/chat.mjs`
// with MANIAC_BASE_URL, MANIAC_API_KEY, MANIAC_OTHER_KEY set and the package
// installed in $COMPAT_NODE_DIR (default target/compat/node). The same tiny
// sequential runner as test.mjs; the last line printed is `N passed, N failed`.
//
// Models: `echo/echo` answers with the last user message (usage counts words;
// with `tool_choice: "required"` it calls the first tool with the text as every
// string property, and after a tool message answers with its content);
// `fake/...` is the fake upstream: `You said: <last user text>`, scripted by
// markers (FAULT:..., CALL, THINK, WORDS:<n>, ...).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
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
const { APIError, APIConnectionError, APIUserAbortError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError, InternalServerError } = mod;

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

const ECHO = 'echo/echo';
const FAKE = 'fake/compat';
const makeClient = (opts = {}) => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000, ...opts });
const client = makeClient();

const words = (s) => s.split(/\s+/).filter(Boolean).length;
const user = (content) => [{ role: 'user', content }];
const tag = () => randomUUID().replaceAll('-', '').slice(0, 12);
// `chat.completions.stream`, or `beta.chat.completions.stream` on SDKs from
// before the helpers left beta.
const streamHelper = (params) =>
  (client.chat.completions.stream ? client.chat.completions : client.beta.chat.completions).stream(params);

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer' } },
      required: ['city'],
    },
  },
};

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

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

// OpenAI's streaming rules: one id/created, the role in each choice's first
// delta, a finish_reason on each choice's last chunk, usage only in a final
// `choices: []` chunk when include_usage is set (`usage: null` elsewhere).
function assertChunkRules(chunks, model, includeUsage) {
  assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
  const [first] = chunks;
  assert.match(first.id, /^chatcmpl-/);
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.deepEqual([c.id, c.created, c.model], [first.id, first.created, model]);
  }
  const body = includeUsage ? chunks.slice(0, -1) : chunks;
  const perChoice = new Map();
  for (const c of body) {
    assert.ok(c.choices.length > 0, 'a chunk without choices before the end');
    for (const ch of c.choices) {
      if (!perChoice.has(ch.index)) perChoice.set(ch.index, []);
      perChoice.get(ch.index).push(ch);
    }
  }
  for (const [index, seq] of perChoice) {
    assert.equal(seq[0].delta.role, 'assistant', `choice ${index}`);
    assert.ok(seq.slice(1).every((ch) => ch.delta.role == null), `choice ${index}: role repeated`);
    assert.ok(seq.at(-1).finish_reason, `choice ${index}: no finish_reason`);
    assert.ok(seq.slice(0, -1).every((ch) => ch.finish_reason == null), `choice ${index}: early finish_reason`);
  }
  if (includeUsage) {
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage, 'no usage in the last chunk');
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    for (const c of body) assert.ok('usage' in c && c.usage === null, JSON.stringify(c));
  } else {
    assert.ok(chunks.every((c) => c.usage == null));
  }
  return chunks
    .flatMap((c) => c.choices)
    .filter((ch) => ch.index === 0)
    .map((ch) => ch.delta.content ?? '')
    .join('');
}

// ---------------------------------------------------------------- tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('chat.completions.create (echo and fake)', async () => {
  const r = await client.chat.completions.create({
    model: ECHO,
    messages: [{ role: 'system', content: 'be brief' }, ...user('Hello from node')],
  });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, ECHO);
  assert.equal(r.provider, 'echo');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'Hello from node');
  assert.equal(r.usage.prompt_tokens, words('be brief Hello from node'));
  assert.equal(r.usage.completion_tokens, 3);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  const f = await client.chat.completions.create({ model: FAKE, messages: user('ping pong'), n: 2 });
  assert.equal(f.provider, 'fake');
  assert.equal(f.system_fingerprint, 'fp_fake');
  assert.deepEqual(
    f.choices.map((c) => c.message.content),
    ['You said: ping pong', 'You said: ping pong (choice 1)'],
  );
});

test('chat.completions.create stream: chunk rules with and without include_usage', async () => {
  for (const [model, text, expected] of [
    [ECHO, 'stream these words please', 'stream these words please'],
    [FAKE, 'alpha beta gamma', 'You said: alpha beta gamma'],
  ]) {
    const withUsage = await collect(
      await client.chat.completions.create({
        model,
        messages: user(text),
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    assert.equal(assertChunkRules(withUsage, model, true), expected);
    assert.equal(withUsage.at(-1).usage.prompt_tokens, words(text));
    assert.equal(withUsage.at(-1).usage.completion_tokens, words(expected));
    const plain = await collect(await client.chat.completions.create({ model, messages: user(text), stream: true }));
    assert.equal(assertChunkRules(plain, model, false), expected);
  }
});

test('chat.completions.stream(...) helper + finalChatCompletion()', async () => {
  const deltas = [];
  const stream = streamHelper({ model: FAKE, messages: user('node helper stream') });
  stream.on('content', (delta, snapshot) => {
    deltas.push(delta);
    assert.equal(snapshot, deltas.join(''));
  });
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].message.content, 'You said: node helper stream');
  assert.equal(deltas.join(''), final.choices[0].message.content);
});

test('tools round trip (echo)', async () => {
  const messages = user('Paris');
  const r = await client.chat.completions.create({ model: ECHO, messages, tools: [WEATHER], tool_choice: 'required' });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  const [call] = choice.message.tool_calls;
  assert.ok(call.id);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  messages.push(
    { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: call.function }] },
    { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' },
  );
  const final = await client.chat.completions.create({ model: ECHO, messages, tools: [WEATHER] });
  assert.equal(final.choices[0].finish_reason, 'stop');
  assert.equal(final.choices[0].message.content, 'sunny, 21 C');

  // streamed: fragments with id, type and name first, then argument pieces
  const chunks = await collect(
    await client.chat.completions.create({
      model: ECHO,
      messages: user('Lyon'),
      tools: [WEATHER],
      tool_choice: 'required',
      stream: true,
    }),
  );
  assertChunkRules(chunks, ECHO, false);
  const frags = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
  assert.ok(frags[0].id && frags[0].type === 'function' && frags[0].function.name === 'get_weather');
  assert.ok(frags.slice(1).every((f) => f.index === 0 && f.id == null));
  const args = frags.map((f) => f.function?.arguments ?? '').join('');
  assert.deepEqual(JSON.parse(args), { city: 'Lyon' });
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
});

test('stored completions: retrieve, update, list auto-pagination, messages, delete', async () => {
  const t = tag();
  const ids = [];
  for (const i of [0, 1, 2]) {
    const r = await client.chat.completions.create({
      model: ECHO,
      messages: user(`stored ${i} ${t}`),
      store: true,
      metadata: { tag: t, i: String(i) },
    });
    ids.push(r.id);
  }
  const got = await client.chat.completions.retrieve(ids[0]);
  assert.equal(got.id, ids[0]);
  assert.equal(got.choices[0].message.content, `stored 0 ${t}`);
  assert.deepEqual(got.metadata, { tag: t, i: '0' });
  const updated = await client.chat.completions.update(ids[0], { metadata: { tag: t, i: '0', state: 'updated' } });
  assert.equal(updated.metadata.state, 'updated');

  const first = await client.chat.completions.list({ limit: 2, metadata: { tag: t } });
  assert.equal(first.data.length, 2);
  assert.equal(first.has_more, true);
  const asc = [];
  for await (const c of client.chat.completions.list({ limit: 1, order: 'asc', metadata: { tag: t } })) asc.push(c.id);
  assert.deepEqual(asc, ids);
  const desc = [];
  for await (const c of client.chat.completions.list({ limit: 2, order: 'desc', metadata: { tag: t } })) desc.push(c.id);
  assert.deepEqual(desc, [...ids].reverse());

  const messages = [];
  for await (const m of client.chat.completions.messages.list(ids[1], { limit: 1 })) messages.push(m);
  assert.deepEqual(
    messages.map((m) => [m.role, m.content]),
    [['user', `stored 1 ${t}`]],
  );
  assert.ok(messages[0].id);

  const other = makeClient({ apiKey: otherKey });
  await rejects(other.chat.completions.retrieve(ids[1]), NotFoundError);
  await rejects(other.chat.completions.delete(ids[1]), NotFoundError);

  const deleted = await client.chat.completions.delete(ids[0]);
  assert.deepEqual([deleted.id, deleted.deleted, deleted.object], [ids[0], true, 'chat.completion.deleted']);
  await rejects(client.chat.completions.retrieve(ids[0]), NotFoundError, (e) => assert.equal(e.status, 404));
  const unstored = await client.chat.completions.create({ model: ECHO, messages: user('not stored') });
  await rejects(client.chat.completions.retrieve(unstored.id), NotFoundError);
});

test('errors: BadRequest (param), Authentication, NotFound, RateLimit, InternalServer', async () => {
  await rejects(
    client.chat.completions.create({ model: ECHO, messages: user('x'), temperature: 3 }),
    BadRequestError,
    (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, 'temperature');
      assert.equal(e.type, 'invalid_request_error');
    },
  );
  await rejects(
    makeClient({ apiKey: 'sk-mn-' + '0'.repeat(48) }).chat.completions.create({ model: ECHO, messages: user('x') }),
    AuthenticationError,
    (e) => assert.equal(e.status, 401),
  );
  await rejects(client.chat.completions.retrieve('chatcmpl-' + 'f'.repeat(32)), NotFoundError);
  await rejects(client.chat.completions.create({ model: FAKE, messages: user('FAULT:429 x') }), RateLimitError, (e) =>
    assert.equal(e.status, 429),
  );
  await rejects(
    client.chat.completions.create({ model: FAKE, messages: user('FAULT:500 x'), stream: true }),
    InternalServerError,
    (e) => assert.ok(e.status >= 500),
  );
});

test('failure after the first chunk throws APIError during iteration', async () => {
  const stream = await client.chat.completions.create({
    model: FAKE,
    messages: user('FAULT:reset a b c d e'),
    stream: true,
  });
  const seen = [];
  const err = await rejects(async () => {
    for await (const c of stream) seen.push(c);
  }, APIError);
  // an `error` event, not a cut connection
  assert.ok(!(err instanceof APIConnectionError) && !(err instanceof APIUserAbortError), err.constructor.name);
  assert.ok(seen.length >= 1, 'the error came before the first chunk');
  assert.ok(seen.every((c) => c.choices.every((ch) => ch.finish_reason == null)));
});

// ---------------------------------------------------------------- runner

const started = Date.now();
console.log(`node ${process.version}, openai ${version} (npm), gateway ${baseURL} (chat)`);
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
console.log(`node chat suite: ${tests.length} tests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
