// openapi.test.mjs — api/openapi.yaml is a valid OpenAPI 3.1 document, and
// the real daemon answers as it says.
//
// The document is parsed with `yaml`, validated against the official
// OpenAPI 3.1 schema (@seriousme/openapi-schema-validator), and every schema
// in it is compiled as strict JSON Schema 2020-12 (ajv), so a misspelt
// keyword fails here. Then a daemon is driven through every operation: each
// answer's status must be one the operation lists, its body must validate
// against that response's schema (SSE streams event by event), its headers
// against the documented ones, and maasd's own headers (x-*, Retry-After,
// Idempotent-Replayed, WWW-Authenticate) must be documented where they
// appear. tests/unit/test_openapi.c checks that the spec's routes are the
// daemon's routes; this file checks what the routes answer.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startDaemon, runMaasd, adminKey, demoKey, newCustomer, noEos, tempDir } from './lib/daemon.mjs';

const SPEC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'api', 'openapi.yaml');
const spec = YAML.parse(readFileSync(SPEC_PATH, 'utf8'), { strict: true, uniqueKeys: true });
const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace'];

// Every schema of the spec, strict: components.schemas become $defs of one
// document, so both '#/components/schemas/X' (rewritten) and inline schemas
// resolve.
const ajv = new Ajv2020({ strict: true, allErrors: true });
ajv.addKeyword('example');
ajv.addFormat('int64', true);
const toAjv = (schema) => JSON.parse(JSON.stringify(schema)
  .replaceAll('"#/components/schemas/', '"spec#/$defs/'));
ajv.addSchema({ $id: 'spec', $defs: JSON.parse(JSON.stringify(spec.components.schemas)
  .replaceAll('"#/components/schemas/', '"#/$defs/')) });
const compiled = new Map();
function validator(schema) {
  const key = JSON.stringify(schema);
  if (!compiled.has(key)) compiled.set(key, ajv.compile(toAjv(schema)));
  return compiled.get(key);
}
// Test output never shows an API key, not even a test daemon's.
const redact = (text) => text.replace(/mk_live_[0-9A-Za-z]+/g, 'mk_live_…');
function assertValid(schema, value, what) {
  const v = validator(schema);
  assert.ok(v(value), redact(`${what}: ${ajv.errorsText(v.errors)}\n${JSON.stringify(value).slice(0, 2000)}`));
}

// '#/components/responses/X' → the object (a Reference's own description is kept aside).
function deref(obj) {
  if (!obj?.$ref) return obj;
  const [, section, name] = obj.$ref.match(/^#\/components\/(\w+)\/(.+)$/);
  return spec.components[section][name];
}

const operations = [];
for (const [path, item] of Object.entries(spec.paths)) {
  for (const m of METHODS) if (item[m]) operations.push({ method: m.toUpperCase(), path, op: item[m], item });
}

describe('the OpenAPI document', () => {
  test('is valid OpenAPI 3.1 and every $ref resolves', async () => {
    const v = new Validator();
    const res = await v.validate(JSON.parse(JSON.stringify(spec)));
    assert.ok(res.valid, JSON.stringify(res.errors, null, 1));
    assert.equal(v.version, '3.1');
    assert.doesNotThrow(() => v.resolveRefs());
  });

  test('every schema compiles as strict JSON Schema 2020-12', () => {
    for (const name of Object.keys(spec.components.schemas)) {
      assert.doesNotThrow(() => ajv.getSchema(`spec#/$defs/${name}`), name);
    }
    for (const { method, path, op } of operations) {
      for (const [status, r] of Object.entries(op.responses)) {
        for (const [media, c] of Object.entries(deref(r).content ?? {})) {
          assert.doesNotThrow(() => validator(c.schema), `${method} ${path} ${status} ${media}`);
        }
      }
      for (const [media, c] of Object.entries(op.requestBody?.content ?? {})) {
        assert.doesNotThrow(() => validator(c.schema), `${method} ${path} request ${media}`);
      }
    }
  });

  test('path parameters match the templates; operationIds are unique', () => {
    const ids = new Set();
    for (const { method, path, op, item } of operations) {
      const inTemplate = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])]
        .map(deref).filter((p) => p.in === 'path').map((p) => p.name).sort();
      assert.deepEqual(declared, inTemplate, `${method} ${path}`);
      assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} twice`);
      ids.add(op.operationId);
    }
  });

  test('request examples validate against their schemas', () => {
    for (const { method, path, op } of operations) {
      for (const [media, c] of Object.entries(op.requestBody?.content ?? {})) {
        if (c.example !== undefined) assertValid(c.schema, c.example, `${method} ${path} example (${media})`);
      }
    }
  });
});

// Headers maasd sets itself: where one appears, the response must document it.
const OWN_HEADER = /^(x-request-id|x-ratelimit-.*|retry-after|idempotent-replayed|www-authenticate)$/;

describe('the daemon answers as documented', () => {
  let d, admin, demo;
  const dir = tempDir();
  const exercised = new Set();

  before(async () => {
    const w = await runMaasd(['demo-model', join(dir, 'demo.gguf')]);
    assert.equal(w.code, 0, w.stderr);
    d = await startDaemon({ dir, args: ['--kv-cache-bytes', '256M', '--max-body-bytes', '64K'] });
    admin = adminKey(d);
    demo = demoKey(d);
  });
  after(async () => { await d?.cleanup(); });

  async function call(method, path, { key, body, raw, contentType, headers = {}, daemon = d } = {}) {
    const h = { ...headers };
    if (key) h.Authorization = `Bearer ${key}`;
    let payload = raw;
    if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) h['Content-Type'] = contentType ?? 'application/json';
    const r = await fetch(`${daemon.url}${path}`, { method, headers: h, body: payload });
    return { status: r.status, headers: r.headers, text: await r.text() };
  }

  // Check one answer against the operation `method template` and return its JSON.
  function conform(method, template, res, expected, { sse } = {}) {
    const where = `${method} ${template} → ${res.status}`;
    assert.equal(res.status, expected, redact(`${where}: ${res.text.slice(0, 500)}`));
    const op = spec.paths[template]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${template} is not in the spec`);
    const response = deref(op.responses[String(res.status)]);
    assert.ok(response, `${where}: the spec does not list this status`);
    const documented = new Map(Object.entries(response.headers ?? {})
      .map(([n, h]) => [n.toLowerCase(), deref(h)]));
    for (const [name, h] of documented) {
      const v = res.headers.get(name);
      if (v === null) {
        assert.ok(!h.required, `${where}: header ${name} is required`);
        continue;
      }
      assertValid(h.schema, h.schema.type === 'integer' ? Number(v) : v, `${where}: header ${name}`);
    }
    for (const name of res.headers.keys()) {
      assert.ok(!OWN_HEADER.test(name) || documented.has(name), `${where}: header ${name} is not documented`);
    }
    const ct = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    const media = Object.entries(response.content ?? {}).find(([m]) => m.split(';')[0].trim() === ct);
    assert.ok(media, `${where}: content type ${ct} is not documented`);
    const schema = media[1].schema;
    let json;
    if (ct === 'application/json') {
      json = JSON.parse(res.text);
      assertValid(schema, json, where);
    } else if (ct === 'text/event-stream') {
      assert.ok(sse, `${where}: a stream was not expected`);
      json = sseEvents(res.text, where, sse);
    } else {
      assertValid(schema, res.text, where);
    }
    if (res.status < 300) exercised.add(`${method} ${template}`);
    return json;
  }

  // The events of a stream, each validated; ends with [DONE].
  function sseEvents(text, where, chunkSchema) {
    const events = text.split('\n\n').filter((e) => e.length > 0);
    assert.equal(events.at(-1), 'data: [DONE]', `${where}: the stream must end with [DONE]`);
    const chunks = [];
    for (const e of events.slice(0, -1)) {
      if (e.startsWith(':')) continue; // keep-alive comment
      assert.ok(e.startsWith('data: '), `${where}: event ${e}`);
      const obj = JSON.parse(e.slice(6));
      assertValid({ $ref: `#/components/schemas/${obj.error ? 'StreamError' : chunkSchema}` }, obj, `${where} chunk`);
      chunks.push(obj);
    }
    return chunks;
  }

  const chat = { model: 'maasd-demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 };

  test('probes', async () => {
    for (const p of ['/healthz', '/readyz', '/version']) conform('GET', p, await call('GET', p), 200);
  });

  test('models', async () => {
    const list = conform('GET', '/v1/models', await call('GET', '/v1/models', { key: demo }), 200);
    assert.ok(list.data.some((m) => m.id === 'maasd-demo'));
    conform('GET', '/v1/models/{id}', await call('GET', '/v1/models/maasd-demo', { key: demo }), 200);
    conform('GET', '/v1/models/{id}', await call('GET', '/v1/models/nope', { key: demo }), 404);
    conform('GET', '/v1/models', await call('GET', '/v1/models'), 401);
    conform('GET', '/v1/models', await call('GET', '/v1/models', { key: 'mk_live_notakey' }), 401);
    conform('GET', '/v1/models', await call('GET', '/v1/models', { key: admin }), 403);
  });

  test('chat completions: JSON, logprobs, stream with usage, refusals', async () => {
    const path = '/v1/chat/completions';
    let j = conform('POST', path, await call('POST', path, { key: demo, body: { ...chat, logprobs: true, top_logprobs: 2, n: 2 } }), 200);
    assert.equal(j.choices.length, 2);
    assert.equal(j.choices[0].logprobs.content[0].top_logprobs.length, 2);
    const chunks = conform('POST', path, await call('POST', path, {
      key: demo, body: { ...chat, stream: true, stream_options: { include_usage: true } },
    }), 200, { sse: 'ChatCompletionChunk' });
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(chunks.at(-1).usage && chunks.at(-1).choices.length === 0);
    j = conform('POST', path, await call('POST', path, { key: demo, body: { ...chat, response_format: { type: 'json_schema' } } }), 400);
    assert.equal(j.error.param, 'response_format.type');
    conform('POST', path, await call('POST', path, { key: demo, body: { ...chat, temperature: 3 } }), 400);
    conform('POST', path, await call('POST', path, { key: demo, body: { ...chat, model: 'nope' } }), 404);
    conform('POST', path, await call('POST', path, { key: demo, raw: JSON.stringify(chat), contentType: 'text/plain' }), 415);
    conform('POST', path, await call('POST', path, { key: demo, raw: `{"model":"${'x'.repeat(70 * 1024)}"}` }), 413);
  });

  test('completions and Idempotency-Key', async () => {
    const path = '/v1/completions';
    const body = { model: 'maasd-demo', prompt: ['Hi', 'Yo'], n: 2, max_tokens: 2, logprobs: 2, echo: true };
    const j = conform('POST', path, await call('POST', path, { key: demo, body }), 200);
    assert.equal(j.choices.length, 4);
    conform('POST', path, await call('POST', path, {
      key: demo, body: { model: 'maasd-demo', prompt: 'Hi', max_tokens: 2, stream: true, stream_options: { include_usage: true } },
    }), 200, { sse: 'TextCompletionChunk' });
    const headers = { 'Idempotency-Key': `openapi-${Date.now()}` };
    const first = conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', prompt: 'A', max_tokens: 1 }, headers }), 200);
    const again = await call('POST', path, { key: demo, body: { model: 'maasd-demo', prompt: 'A', max_tokens: 1 }, headers });
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(conform('POST', path, again, 200).id, first.id);
    conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', prompt: 'B', max_tokens: 1 }, headers }), 422);
    conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', prompt: 'A', best_of: 3 } }), 400);
  });

  test('embeddings, tokenize, detokenize', async () => {
    let path = '/v1/embeddings';
    let j = conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', input: ['a', 'b'], dimensions: 8 } }), 200);
    assert.equal(j.data[1].embedding.length, 8);
    j = conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', input: 'a', encoding_format: 'base64' } }), 200);
    assert.equal(typeof j.data[0].embedding, 'string');
    conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', input: '' } }), 400);
    path = '/v1/tokenize';
    j = conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', prompt: 'Hello there' } }), 200);
    assert.equal(j.count, j.tokens.length);
    conform('POST', path, await call('POST', path, { key: demo, body: { model: 'nope', prompt: 'x' } }), 404);
    path = '/v1/detokenize';
    j = conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', tokens: j.tokens } }), 200);
    assert.equal(typeof j.text, 'string');
    conform('POST', path, await call('POST', path, { key: demo, body: { model: 'maasd-demo', tokens: [-1] } }), 400);
  });

  test('usage', async () => {
    const start = Math.floor(Date.now() / 1000) - 7200;
    const j = conform('GET', '/v1/usage', await call('GET', `/v1/usage?start_time=${start}&bucket_width=1h&group_by=model,api_key_id`, { key: demo }), 200);
    assert.ok(j.data.some((b) => b.results.some((r) => r.model === 'maasd-demo')));
    conform('GET', '/v1/usage', await call('GET', `/v1/usage?start_time=${start}&bucket_width=1h&limit=1`, { key: demo }), 200);
    conform('GET', '/v1/usage', await call('GET', '/v1/usage', { key: demo }), 400);
  });

  test('customers, keys, plans, subscriptions and credits', async () => {
    const A = (method, path, opts = {}) => call(method, path, { key: admin, ...opts });
    let c = conform('POST', '/admin/v1/customers', await A('POST', '/admin/v1/customers', { body: { name: 'Spec Ltd', email: 'spec@example.test' } }), 200);
    conform('POST', '/admin/v1/customers', await A('POST', '/admin/v1/customers', { body: { name: '' } }), 400);
    conform('GET', '/admin/v1/customers', await A('GET', '/admin/v1/customers?limit=1'), 200);
    conform('GET', '/admin/v1/customers', await A('GET', '/admin/v1/customers?limit=0'), 400);
    conform('GET', '/admin/v1/customers/{id}', await A('GET', `/admin/v1/customers/${c.id}`), 200);
    conform('GET', '/admin/v1/customers/{id}', await A('GET', '/admin/v1/customers/cus_nope'), 404);
    c = conform('POST', '/admin/v1/customers/{id}', await A('POST', `/admin/v1/customers/${c.id}`, { body: { email: '' } }), 200);
    assert.equal(c.email, null);
    conform('GET', '/admin/v1/customers', await call('GET', '/admin/v1/customers', { key: demo }), 403);

    const keyPath = '/admin/v1/customers/{id}/keys';
    const headers = { 'Idempotency-Key': `key-${Date.now()}` };
    const k = conform('POST', keyPath, await A('POST', `/admin/v1/customers/${c.id}/keys`, { body: { name: 'ci', scopes: ['inference'], allowed_models: ['not-served'] }, headers }), 200);
    assert.match(k.secret, /^mk_live_/);
    const replay = conform('POST', keyPath, await A('POST', `/admin/v1/customers/${c.id}/keys`, { body: { name: 'ci', scopes: ['inference'], allowed_models: ['not-served'] }, headers }), 200);
    assert.equal(replay.secret, undefined);
    conform('POST', keyPath, await A('POST', `/admin/v1/customers/${c.id}/keys`, { body: { scopes: ['root'] } }), 400);
    conform('GET', keyPath, await A('GET', `/admin/v1/customers/${c.id}/keys`), 200);
    conform('GET', '/admin/v1/keys/{id}', await A('GET', `/admin/v1/keys/${k.id}`), 200);
    // A key whose model list excludes the model; a customer with no subscription.
    conform('POST', '/v1/completions', await call('POST', '/v1/completions', { key: k.secret, body: { model: 'maasd-demo', prompt: 'x', max_tokens: 1 } }), 403);
    const k2 = conform('POST', keyPath, await A('POST', `/admin/v1/customers/${c.id}/keys`, { body: {} }), 200);
    let e = conform('POST', '/v1/completions', await call('POST', '/v1/completions', { key: k2.secret, body: { model: 'maasd-demo', prompt: 'x', max_tokens: 1 } }), 429);
    assert.equal(e.error.code, 'insufficient_quota');
    const rotated = conform('POST', '/admin/v1/keys/{id}/rotate', await A('POST', `/admin/v1/keys/${k.id}/rotate`, { body: { grace_seconds: 60 } }), 200);
    assert.ok(rotated.secret);
    conform('POST', '/admin/v1/keys/{id}/rotate', await A('POST', `/admin/v1/keys/${k.id}/rotate`), 409);
    conform('POST', '/admin/v1/keys/{id}/revoke', await A('POST', `/admin/v1/keys/${k.id}/revoke`), 200);
    conform('GET', '/admin/v1/keys/{id}', await A('GET', '/admin/v1/keys/key_nope'), 404);

    const plans = conform('GET', '/admin/v1/plans', await A('GET', '/admin/v1/plans'), 200);
    assert.ok(plans.data.some((p) => p.id === 'free'));
    const planPath = '/admin/v1/plans/{id}/versions';
    const tiny = {
      name: 'Tiny', billing_interval: 'month', base_fee_micros: 0, included_tokens: 100000,
      price_input_per_1m_micros: 0, price_output_per_1m_micros: 0, requests_per_minute: 1,
      tokens_per_minute: 100000, max_concurrent_requests: 1, max_tokens_per_request: 64, hard_cap: true,
    };
    conform('POST', planPath, await A('POST', '/admin/v1/plans/tiny/versions', { body: tiny }), 200);
    conform('POST', planPath, await A('POST', '/admin/v1/plans/tiny/versions', { body: { colour: 'red' } }), 400);

    const subPath = '/admin/v1/customers/{id}/subscription';
    conform('GET', subPath, await A('GET', `/admin/v1/customers/${c.id}/subscription`), 404);
    conform('POST', subPath, await A('POST', `/admin/v1/customers/${c.id}/subscription`, { body: { plan: 'tiny' } }), 200);
    conform('POST', subPath, await A('POST', `/admin/v1/customers/${c.id}/subscription`, { body: { plan: 'tiny' } }), 409);
    // One request a minute: the second is refused with the rate-limit headers.
    conform('POST', '/v1/completions', await call('POST', '/v1/completions', { key: k2.secret, body: { model: 'maasd-demo', prompt: 'x', max_tokens: 1 } }), 200);
    e = conform('POST', '/v1/completions', await call('POST', '/v1/completions', { key: k2.secret, body: { model: 'maasd-demo', prompt: 'x', max_tokens: 1 } }), 429);
    assert.equal(e.error.code, 'rate_limit_exceeded');
    conform('POST', `${subPath}/change`, await A('POST', `/admin/v1/customers/${c.id}/subscription/change`, { body: { plan: 'pro' } }), 200);
    conform('POST', `${subPath}/change`, await A('POST', `/admin/v1/customers/${c.id}/subscription/change`, { body: { plan: 'pro' } }), 409);
    conform('POST', `${subPath}/cancel`, await A('POST', `/admin/v1/customers/${c.id}/subscription/cancel`, { body: { at_period_end: true } }), 200);
    const sub = conform('GET', subPath, await A('GET', `/admin/v1/customers/${c.id}/subscription`), 200);
    assert.deepEqual(sub.changes.map((x) => x.kind), ['created', 'plan_changed', 'cancel_scheduled']);

    const credPath = '/admin/v1/customers/{id}/credits';
    conform('POST', credPath, await A('POST', `/admin/v1/customers/${c.id}/credits`, { body: { unit: 'tokens', amount: 1000, reason: 'spec' } }), 200);
    conform('POST', credPath, await A('POST', `/admin/v1/customers/${c.id}/credits`, { body: { unit: 'micros', currency: 'USD', amount: 5000000, kind: 'prepaid', reason: 'top-up', expires_at: Date.now() + 86400000 } }), 200);
    conform('POST', credPath, await A('POST', `/admin/v1/customers/${c.id}/credits`, { body: { unit: 'tokens', amount: 0, reason: 'x' } }), 400);
    conform('GET', credPath, await A('GET', `/admin/v1/customers/${c.id}/credits`), 200);
    conform('GET', credPath, await A('GET', '/admin/v1/customers/cus_nope/credits'), 404);

    c = conform('POST', '/admin/v1/customers/{id}', await A('POST', `/admin/v1/customers/${c.id}`, { body: { status: 'erased' } }), 200);
    conform('POST', '/admin/v1/customers/{id}', await A('POST', `/admin/v1/customers/${c.id}`, { body: { name: 'again' } }), 409);
  });

  test('model registry: register, alias, unload, load', async () => {
    const A = (method, path, opts = {}) => call(method, path, { key: admin, ...opts });
    const file = join(dir, 'demo.gguf');
    conform('POST', '/admin/v1/models', await A('POST', '/admin/v1/models', { body: { id: 'spec', path: file } }), 200);
    conform('POST', '/admin/v1/models', await A('POST', '/admin/v1/models', { body: { id: 'spec', path: join(dir, 'missing.gguf') } }), 400);
    const m2 = conform('POST', '/admin/v1/models', await A('POST', '/admin/v1/models', { body: { id: 'spec', path: file } }), 200);
    assert.equal(m2.name, 'spec@2');
    const aliasPath = '/admin/v1/aliases/{alias}';
    conform('POST', aliasPath, await A('POST', '/admin/v1/aliases/spec-chat', { body: { model: 'spec@1' } }), 200);
    conform('POST', aliasPath, await A('POST', '/admin/v1/aliases/spec-chat', { body: { model: 'spec' } }), 400);
    conform('POST', '/admin/v1/models/{name}/unload', await A('POST', '/admin/v1/models/spec@1/unload'), 409);
    conform('POST', aliasPath, await A('POST', '/admin/v1/aliases/spec-chat', { body: { model: 'spec@2' } }), 200);
    conform('POST', '/admin/v1/models/{name}/unload', await A('POST', '/admin/v1/models/spec@1/unload'), 200);
    const list = conform('GET', '/admin/v1/models', await A('GET', '/admin/v1/models'), 200);
    assert.equal(list.data.find((m) => m.name === 'spec@1').state, 'unloaded');
    conform('POST', '/admin/v1/models/{name}/load', await A('POST', '/admin/v1/models/spec@1/load'), 200);
    conform('POST', '/admin/v1/models/{name}/load', await A('POST', '/admin/v1/models/spec@1/load'), 409);
    conform('POST', '/admin/v1/models/{name}/load', await A('POST', '/admin/v1/models/spec@9/load'), 404);
    const models = conform('GET', '/v1/models', await call('GET', '/v1/models', { key: demo }), 200);
    assert.equal(models.data.find((m) => m.id === 'spec-chat').resolves_to, 'spec@2');
  });

  test('overload, timeout and a stream that fails midway', async () => {
    // One running slot, one queue place, 150 ms per call: of four long
    // calls two find the queue full (503) and two run out of time (504).
    const d2 = await startDaemon({ dir: tempDir(), args: ['--kv-cache-bytes', '256M', '--request-timeout', '150ms', '--max-running', '1', '--max-queue', '1'] });
    try {
      const cust = await newCustomer(d2);
      const long = { model: 'maasd-demo', prompt: 'x', max_tokens: 2000, logit_bias: await noEos(d2, cust.key) };
      const path = '/v1/completions';
      const rs = await Promise.all(Array.from({ length: 4 }, () => call('POST', path, { key: cust.key, body: long, daemon: d2 })));
      const statuses = rs.map((r) => r.status).sort();
      assert.ok(statuses.includes(503) && statuses.includes(504), statuses.join(','));
      for (const r of rs) conform('POST', path, r, r.status);
      const chunks = conform('POST', path, await call('POST', path, { key: cust.key, body: { ...long, stream: true }, daemon: d2 }), 200, { sse: 'TextCompletionChunk' });
      assert.equal(chunks.at(-1).error?.code, 'timeout');
    } finally { await d2.cleanup(); }
  });

  test('metrics, when served on this branch', async (t) => {
    const op = spec.paths['/metrics']?.get;
    if (!op || op['x-maasd-pending']) {
      t.skip(`GET /metrics is ${op ? `pending (${op['x-maasd-pending']})` : 'not documented'}`);
      return;
    }
    conform('GET', '/metrics', await call('GET', '/metrics'), 200);
  });

  test('unknown routes and methods answer the error object', async () => {
    let r = await call('GET', '/v1/nope', { key: demo });
    assert.equal(r.status, 404);
    assertValid({ $ref: '#/components/schemas/Error' }, JSON.parse(r.text), 'unknown route');
    r = await call('DELETE', '/v1/models', { key: demo });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET');
    assertValid({ $ref: '#/components/schemas/Error' }, JSON.parse(r.text), 'wrong method');
  });

  test('every operation was exercised', (t) => {
    const missing = operations
      .filter(({ method, path, op }) => !op['x-maasd-pending'] && !exercised.has(`${method} ${path}`))
      .map(({ method, path }) => `${method} ${path}`);
    // Reported, not failed: a route added on another branch is documented
    // (the unit test insists) before a call is added here.
    if (missing.length) t.diagnostic(`operations without a live 2xx check: ${missing.join(', ')}`);
  });
});
