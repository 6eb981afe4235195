// metering.test.mjs — every inference call is billed exactly once, with the
// tokens actually processed: streamed, non-streamed, cancelled, timed out,
// refused, replayed — and after a kill -9 at a random moment.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startDaemon, newCustomer, adminKey, noEos, sleep, SLOW } from './lib/daemon.mjs';

const MODEL = 'maasd-demo';

function sql(d, q) {
  return execFileSync('sqlite3', ['-json', d.dbPath, q], { encoding: 'utf8' }).trim();
}
function rows(d, q) {
  const out = sql(d, q);
  return out ? JSON.parse(out) : [];
}
function ledger(d, customer) {
  return rows(d, `SELECT request_id, prompt_tokens, completion_tokens, finish_reason, client_aborted, status FROM usage_ledger WHERE customer_id = '${customer}'`);
}
async function waitFor(fn, what) {
  for (let i = 0; i < 200 * SLOW; i++) {
    const v = fn();
    if (v) return v;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}
const post = (d, key, path, body, headers = {}) => fetch(`${d.url}${path}`, {
  method: 'POST', body: JSON.stringify(body),
  headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
});

describe('the ledger equals what clients were told', () => {
  let d, cust, client;
  before(async () => {
    d = await startDaemon({ args: ['--model', `${MODEL}=builtin:demo`] });
    cust = await newCustomer(d);
    client = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: cust.key, maxRetries: 0 });
  });
  after(async () => { await d.cleanup(); });

  test('mixed calls: ledger totals equal the sum of the usage objects', async () => {
    const usages = [];
    const ids = [];
    const msgs = [{ role: 'user', content: 'Count to ten.' }];
    const r1 = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 9, temperature: 0 });
    usages.push(r1.usage); ids.push(r1.id);
    const r2 = await client.completions.create({ model: MODEL, prompt: ['one', 'two words'], max_tokens: 5, n: 2, temperature: 1, seed: 1 });
    usages.push(r2.usage); ids.push(r2.id);
    const s = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 7, stream: true, stream_options: { include_usage: true } });
    let sid, su;
    for await (const c of s) { sid = c.id; if (c.usage) su = c.usage; }
    usages.push(su); ids.push(sid);
    const e = await client.embeddings.create({ model: MODEL, input: ['embed me', 'and me'] });
    usages.push({ prompt_tokens: e.usage.prompt_tokens, completion_tokens: 0 });
    const rowsNow = await waitFor(() => { const r = ledger(d, cust.id); return r.length === 4 && r; }, 'four ledger rows');
    const sum = (a, k) => a.reduce((x, u) => x + (u[k] ?? 0), 0);
    assert.equal(sum(rowsNow, 'prompt_tokens'), sum(usages, 'prompt_tokens'));
    assert.equal(sum(rowsNow, 'completion_tokens'), sum(usages, 'completion_tokens'));
    // The ledger is keyed by the id the client saw.
    for (const id of ids.slice(0, 3)) assert.ok(rowsNow.some((r) => r.request_id === id), id);
    assert.ok(rowsNow.every((r) => r.status === 200 && r.client_aborted === 0));
  });

  test('a client that disconnects mid-stream is billed for what was generated', async () => {
    const ctl = new AbortController();
    const r = await post(d, cust.key, '/v1/completions', {
      model: MODEL, prompt: 'go on forever', max_tokens: 2000, stream: true, logit_bias: await noEos(d, cust.key),
    }, {});
    const reader = r.body.getReader();
    let id;
    for (let got = 0; got < 3;) {
      const { value } = await reader.read();
      const m = new TextDecoder().decode(value).match(/"id":"(cmpl-[0-9a-f]+)"/);
      if (m) id = m[1];
      got++;
    }
    await reader.cancel();
    ctl.abort();
    const row = await waitFor(() => ledger(d, cust.id).find((x) => x.request_id === id), 'the aborted row');
    assert.equal(row.client_aborted, 1);
    assert.equal(row.status, 499);
    assert.ok(row.completion_tokens >= 1 && row.completion_tokens < 2000, JSON.stringify(row));
  });

  test('Idempotency-Key: a retry replays and is never billed twice', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'once' }], max_tokens: 6, temperature: 0.9 };
    const a = await post(d, cust.key, '/v1/chat/completions', body, { 'Idempotency-Key': 'k-123' });
    const ta = await a.text();
    assert.equal(a.status, 200);
    const before = ledger(d, cust.id).length;
    const b = await post(d, cust.key, '/v1/chat/completions', body, { 'Idempotency-Key': 'k-123' });
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal(await b.text(), ta);
    const c = await post(d, cust.key, '/v1/chat/completions', { ...body, max_tokens: 7 }, { 'Idempotency-Key': 'k-123' });
    assert.equal(c.status, 422);
    await sleep(200);
    assert.equal(ledger(d, cust.id).length, before);
  });
});

describe('refusals and failures', () => {
  test('a full queue answers 503 server_overloaded with Retry-After; nothing is billed for it', async () => {
    const d = await startDaemon({ args: ['--model', `${MODEL}=builtin:demo`, '--max-running', '1', '--max-queue', '1'] });
    try {
      const cust = await newCustomer(d);
      const long = { model: MODEL, prompt: 'x', max_tokens: 400, logit_bias: await noEos(d, cust.key) };
      const rs = await Promise.all(Array.from({ length: 6 }, () => post(d, cust.key, '/v1/completions', long)));
      const over = rs.filter((r) => r.status === 503);
      assert.ok(over.length >= 1, rs.map((r) => r.status).join(','));
      const j = await over[0].json();
      assert.equal(j.error.code, 'server_overloaded');
      assert.ok(Number(over[0].headers.get('retry-after')) >= 1);
      const ok = rs.filter((r) => r.status === 200).length;
      await waitFor(() => ledger(d, cust.id).length === ok, 'rows for the answered requests');
    } finally { await d.cleanup(); }
  });

  test('a request past --request-timeout ends with 504 and its tokens are billed', async () => {
    const d = await startDaemon({ args: ['--model', `${MODEL}=builtin:demo`, '--request-timeout', '150ms', '--max-running', '1'] });
    try {
      const cust = await newCustomer(d);
      // Two long requests, one running slot: each runs into its deadline,
      // the first while generating, the second mostly while waiting.
      const bias = await noEos(d, cust.key);
      const blocker = post(d, cust.key, '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 2000, logit_bias: bias });
      await sleep(20);
      const r = await post(d, cust.key, '/v1/completions', { model: MODEL, prompt: 'y', max_tokens: 2000, logit_bias: bias });
      assert.equal(r.status, 504);
      assert.equal((await r.json()).error.type, 'server_error');
      const b = await blocker;
      assert.equal(b.status, 504);
      const rows504 = await waitFor(() => { const x = ledger(d, cust.id); return x.length === 2 && x; }, 'two rows');
      assert.ok(rows504.every((x) => x.status === 504 && x.finish_reason === 'timeout'));
      assert.ok(rows504.some((x) => x.completion_tokens > 0), 'the blocker generated tokens before its deadline');
    } finally { await d.cleanup(); }
  });

  test('50 parallel requests against a nearly exhausted hard cap overshoot by nothing', async () => {
    const d = await startDaemon({ args: ['--model', `${MODEL}=builtin:demo`] });
    try {
      const admin = adminKey(d);
      const mk = (path, body) => post(d, admin, path, body).then(async (r) => { const j = await r.json(); assert.equal(r.status, 200, JSON.stringify(j)); return j; });
      await mk('/admin/v1/plans/capped/versions', {
        name: 'Capped', billing_interval: 'month', base_fee_micros: 0, included_tokens: 2000,
        price_input_per_1m_micros: 0, price_output_per_1m_micros: 0, requests_per_minute: 100000,
        tokens_per_minute: 100000000, max_concurrent_requests: 100, max_tokens_per_request: 4096, hard_cap: true,
      });
      const cust = await newCustomer(d, { plan: 'capped' });
      // Use most of the allowance first: 1 request of known size.
      const bias = await noEos(d, cust.key);
      const first = await post(d, cust.key, '/v1/completions', { model: MODEL, prompt: [65, 66, 67, 68], max_tokens: 1500, logit_bias: bias });
      const u0 = (await first.json()).usage;
      const used0 = u0.prompt_tokens + u0.completion_tokens;
      const rs = await Promise.all(Array.from({ length: 50 }, () => post(d, cust.key, '/v1/completions', {
        model: MODEL, prompt: [65, 66, 67, 68], max_tokens: 100, logit_bias: bias,
      }).then(async (r) => ({ status: r.status, body: await r.json() }))));
      const okUsage = rs.filter((r) => r.status === 200).map((r) => r.body.usage);
      const refused = rs.filter((r) => r.status === 429);
      assert.ok(refused.length > 0 && refused.every((r) => r.body.error.code === 'insufficient_quota'));
      const total = used0 + okUsage.reduce((a, u) => a + u.prompt_tokens + u.completion_tokens, 0);
      assert.ok(total <= 2000, `used ${total} of a 2000-token hard cap`);
      await waitFor(() => ledger(d, cust.id).length === 1 + okUsage.length, 'all rows');
    } finally { await d.cleanup(); }
  });
});

describe('crash safety', () => {
  test('kill -9 at random moments under load: every completed response is in the ledger, once', async () => {
    const dir = (await import('./lib/daemon.mjs')).tempDir();
    let d = await startDaemon({ dir, args: ['--model', `${MODEL}=builtin:demo`] });
    const cust = await newCustomer(d);
    const seen = new Set();
    try {
      for (let round = 0; round < 3; round++) {
        const client = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: cust.key, maxRetries: 0 });
        let stop = false;
        const workers = Array.from({ length: 8 }, async (_, w) => {
          while (!stop) {
            try {
              const r = await client.completions.create({ model: MODEL, prompt: `w${w}`, max_tokens: 8, temperature: 1 });
              seen.add(r.id);
            } catch { /* the daemon died under us: expected */ }
          }
        });
        await sleep((200 + Math.floor(Math.random() * 600)) * SLOW);
        d.proc.kill('SIGKILL');
        await d.waitExit();
        stop = true;
        await Promise.all(workers);
        d = await startDaemon({ dir, args: ['--model', `${MODEL}=builtin:demo`] });
      }
      const ids = rows(d, `SELECT request_id FROM usage_ledger WHERE customer_id = '${cust.id}'`).map((r) => r.request_id);
      const ledgerSet = new Set(ids);
      assert.equal(ledgerSet.size, ids.length, 'no request recorded twice');
      const missing = [...seen].filter((id) => !ledgerSet.has(id));
      assert.deepEqual(missing, [], 'completed responses missing from the ledger');
      assert.ok(seen.size > 10, `only ${seen.size} requests completed`);
      assert.equal(sql(d, 'PRAGMA integrity_check'), '[{"integrity_check":"ok"}]');
    } finally { await d.cleanup(); }
  });
});
