// tenancy.test.mjs — who may call maasd: keys and scopes on every route,
// immediate revocation, tenant isolation, the admin API and its
// idempotency, the CLI working on the database while the daemon serves,
// the audit chain, first-start credentials. The real daemon, a real
// database file, and the sqlite3 CLI where a test must play the attacker.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startDaemon, runMaasd, sleep, SLOW } from './lib/daemon.mjs';

function credentials(d) {
  const text = readFileSync(join(d.dir, 'maasd-credentials.txt'), 'utf8');
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(MAASD_[A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

async function call(d, key, method, path, body, headers = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(`${d.url}${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, json, text };
}

// A well-formed key with a correct checksum that was never issued
// (apikey.h: 24 random base62 characters, then base62 of SHA-256's first
// four bytes over everything before).
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function forgedKey() {
  let body = 'mk_live_';
  for (let i = 0; i < 24; i++) body += B62[Math.floor(Math.random() * 62)];
  let v = createHash('sha256').update(body).digest().readUInt32BE(0);
  let check = '';
  for (let i = 0; i < 6; i++) { check = B62[v % 62] + check; v = Math.floor(v / 62); }
  return body + check;
}

function sql(d, statement) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 5000', d.dbPath, statement], { encoding: 'utf8', stdio: 'pipe' }).trim();
}

function assert401(r) {
  assert.equal(r.status, 401, r.text);
  assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="maasd"');
  assert.equal(r.json.error.code, 'invalid_api_key');
}

describe('tenancy', () => {
  let d, creds, admin;
  before(async () => {
    d = await startDaemon({ args: ['--test-routes'] });
    creds = credentials(d);
    admin = creds.MAASD_ADMIN_KEY;
  });
  after(async () => {
    // A clean exit: under the sanitizers this is where leaks would show.
    const ex = await d.stop('SIGTERM');
    await d.cleanup();
    assert.equal(ex.code, 0, d.stderrText().slice(-3000));
  });

  async function newCustomer(name, plan = 'free', scopes = ['inference', 'usage:read']) {
    const c = await call(d, admin, 'POST', '/admin/v1/customers', { name, email: `${name.toLowerCase()}@example.test` });
    assert.equal(c.status, 200, c.text);
    if (plan) {
      const s = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription`, { plan });
      assert.equal(s.status, 200, s.text);
    }
    const k = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/keys`, { name: 'test', scopes });
    assert.equal(k.status, 200, k.text);
    return { id: c.json.id, key: k.json.secret, keyId: k.json.id };
  }

  test('first start wrote credentials once, 0600, and printed them once', async () => {
    const st = statSync(join(d.dir, 'maasd-credentials.txt'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.match(creds.MAASD_ADMIN_KEY, /^mk_live_[0-9A-Za-z]{30}$/);
    assert.match(creds.MAASD_DEMO_KEY, /^mk_live_[0-9A-Za-z]{30}$/);
    const printed = d.lines.filter((l) => l.includes(creds.MAASD_ADMIN_KEY));
    assert.equal(printed.length, 1, 'the admin secret is printed exactly once');
    assert.ok(!printed[0].startsWith('{'), 'as a plain line, not a JSON log line');
    assert.equal(statSync(`${d.dbPath}.pepper`).mode & 0o777, 0o600);
  });

  test('auth is on by default: 401 with WWW-Authenticate for missing and bad keys', async () => {
    assert401(await call(d, null, 'GET', '/admin/v1/customers'));
    assert401(await call(d, 'mk_live_short', 'GET', '/admin/v1/customers'));
    assert401(await call(d, forgedKey(), 'GET', '/v1/usage?start_time=0'));
    let r = await call(d, null, 'GET', '/v1/usage?start_time=0', undefined, { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
    assert401(r);
    // A corrupted real key fails its checksum.
    const bad = creds.MAASD_DEMO_KEY.slice(0, -1) + (creds.MAASD_DEMO_KEY.endsWith('a') ? 'b' : 'a');
    r = await call(d, bad, 'GET', '/v1/usage?start_time=0');
    assert401(r);
    assert.match(r.json.error.message, /checksum/);
    // Auth comes before the body: no 415 leaks the route to a stranger.
    r = await fetch(`${d.url}/admin/v1/customers`, { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 401);
    // Probes and test routes stay public.
    for (const p of ['/healthz', '/readyz', '/version']) assert.equal((await fetch(`${d.url}${p}`)).status, 200, p);
    assert.equal((await fetch(`${d.url}/_test/slow?ms=1`)).status, 200);
    // No key or Authorization value in the logs.
    assert.ok(!d.lines.some((l) => l.startsWith('{') && l.includes(creds.MAASD_DEMO_KEY.slice(8))));
  });

  test('the official SDK sees typed errors', async () => {
    const client = new OpenAI({ apiKey: forgedKey(), baseURL: `${d.url}/v1`, maxRetries: 0 });
    await assert.rejects(client.get('/usage', { query: { start_time: 0 } }), OpenAI.AuthenticationError);
    const demo = new OpenAI({ apiKey: creds.MAASD_DEMO_KEY, baseURL: `${d.url}/admin/v1`, maxRetries: 0 });
    await assert.rejects(demo.get('/customers'), OpenAI.PermissionDeniedError);
    const ok = new OpenAI({ apiKey: creds.MAASD_DEMO_KEY, baseURL: `${d.url}/v1`, maxRetries: 0 });
    const page = await ok.get('/usage', { query: { start_time: 0, end_time: 86400 } });
    assert.equal(page.object, 'page');
  });

  test('a key without the route\'s scope gets 403', async () => {
    let r = await call(d, creds.MAASD_DEMO_KEY, 'GET', '/admin/v1/customers');
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'permission_denied');
    // The admin key has no usage:read.
    r = await call(d, admin, 'GET', '/v1/usage?start_time=0');
    assert.equal(r.status, 403);
  });

  test('revocation takes effect on the very next request', async () => {
    const c = await newCustomer('Revokee');
    assert.equal((await call(d, c.key, 'GET', '/v1/usage?start_time=0')).status, 200);
    const r = await call(d, admin, 'POST', `/admin/v1/keys/${c.keyId}/revoke`);
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.json.revoked_at, 'number');
    const after = await call(d, c.key, 'GET', '/v1/usage?start_time=0');
    assert401(after);
    assert.match(after.json.error.message, /revoked/);
  });

  test('an expired key is refused', async () => {
    const c = await newCustomer('Expiring');
    const k = await call(d, admin, 'POST', `/admin/v1/customers/${c.id}/keys`, { scopes: ['usage:read'], expires_at: Date.now() + 1500 * SLOW });
    assert.equal(k.status, 200, k.text);
    assert.equal((await call(d, k.json.secret, 'GET', '/v1/usage?start_time=0')).status, 200);
    await sleep(1600 * SLOW);
    const r = await call(d, k.json.secret, 'GET', '/v1/usage?start_time=0');
    assert401(r);
    assert.match(r.json.error.message, /expired/);
  });

  test('tenant isolation: usage and admin data stay with their customer', async () => {
    const a = await newCustomer('Alpha');
    const b = await newCustomer('Beta');
    // Usage recorded for both (as the inference path would), on 2024-03-01/02.
    const day = Date.UTC(2024, 2, 1);
    const row = (id, c, tokens, t) => `('${id}', '${c.id}', '${c.keyId}', 'stories', '/v1/chat/completions', ${tokens}, ${tokens / 10}, 'stop', 0, 200, 1, 10, ${t}, ${t + 11}, ${t + 12}, 1)`;
    sql(d, `INSERT INTO usage_ledger (request_id, customer_id, api_key_id, model, endpoint, prompt_tokens, completion_tokens, finish_reason, client_aborted, status, queue_ms, compute_ms, started_at, finished_at, recorded_at, plan_version_id) VALUES ${[
      row('iso-a1', a, 100, day + 1000), row('iso-a2', a, 200, day + 86400000 + 5),
      row('iso-b1', b, 7000, day + 2000), row('iso-b2', b, 9000, day + 3000)].join(',')}`);
    const q = `/v1/usage?start_time=${day / 1000}&end_time=${day / 1000 + 3 * 86400}&bucket_width=1d&group_by=model,api_key_id`;
    const ra = await call(d, a.key, 'GET', q);
    assert.equal(ra.status, 200, ra.text);
    assert.equal(ra.json.object, 'page');
    assert.equal(ra.json.data.length, 3);
    assert.deepEqual(ra.json.data.map((bk) => bk.start_time), [day / 1000, day / 1000 + 86400, day / 1000 + 2 * 86400]);
    const all = ra.json.data.flatMap((bk) => bk.results);
    assert.equal(all.length, 2);
    for (const res of all) {
      assert.equal(res.object, 'organization.usage.completions.result');
      assert.equal(res.api_key_id, a.keyId);
      assert.equal(res.model, 'stories');
    }
    assert.equal(all.reduce((s, x) => s + x.input_tokens, 0), 300);
    assert.equal(all.reduce((s, x) => s + x.num_model_requests, 0), 2);
    const rb = await call(d, b.key, 'GET', q);
    assert.equal(rb.json.data.flatMap((bk) => bk.results).reduce((s, x) => s + x.input_tokens, 0), 16000);
    // Hourly buckets come from the ledger itself and agree; pagination by next_page.
    const h1 = await call(d, a.key, 'GET', `/v1/usage?start_time=${day / 1000}&end_time=${day / 1000 + 48 * 3600}&bucket_width=1h&limit=24`);
    assert.equal(h1.json.data.length, 24);
    assert.equal(h1.json.has_more, true);
    const h2 = await call(d, a.key, 'GET', `/v1/usage?start_time=${day / 1000}&end_time=${day / 1000 + 48 * 3600}&bucket_width=1h&limit=24&page=${h1.json.next_page}`);
    assert.equal(h2.json.has_more, false);
    const hourly = [...h1.json.data, ...h2.json.data].flatMap((bk) => bk.results);
    assert.equal(hourly.reduce((s, x) => s + x.input_tokens, 0), 300);
    assert.equal(hourly[0].model, null); // not grouped
    // Nothing lets A name B: there is no customer parameter, and admin routes refuse A.
    for (const [m, p, body] of [['GET', `/admin/v1/customers/${b.id}`], ['GET', `/admin/v1/customers/${b.id}/keys`],
      ['POST', `/admin/v1/keys/${b.keyId}/revoke`], ['POST', `/admin/v1/customers/${b.id}`, { name: 'pwned' }],
      ['GET', '/admin/v1/customers']]) {
      const r = await call(d, a.key, m, p, body);
      assert.equal(r.status, 403, `${m} ${p}`);
    }
    assert.equal((await call(d, b.key, 'GET', '/v1/usage?start_time=0')).status, 200, "B's key still works");
    const bAfter = await call(d, admin, 'GET', `/admin/v1/customers/${b.id}`);
    assert.equal(bAfter.json.name, 'Beta');
    // The ledger refuses edits.
    assert.throws(() => sql(d, "UPDATE usage_ledger SET prompt_tokens = 0 WHERE request_id = 'iso-a1'"), /append-only/);
  });

  test('admin API round trips', async () => {
    // Customers: create, get, update, paginate.
    const c = await call(d, admin, 'POST', '/admin/v1/customers', { name: 'Round Trip', email: 'rt@example.test' });
    assert.equal(c.status, 200, c.text);
    assert.match(c.json.id, /^cus_[0-9A-Za-z]{20}$/);
    assert.equal((await call(d, admin, 'GET', `/admin/v1/customers/${c.json.id}`)).json.email, 'rt@example.test');
    const u = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}`, { name: 'Round Trip Ltd', status: 'suspended' });
    assert.equal(u.json.status, 'suspended');
    assert.equal((await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}`, { status: 'active' })).json.status, 'active');
    assert.equal((await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}`, { status: 'gone' })).status, 400);
    assert.equal((await call(d, admin, 'GET', '/admin/v1/customers/cus_doesnotexist')).status, 404);
    const seen = new Set();
    let after = '', pages = 0;
    for (;;) {
      const p = await call(d, admin, 'GET', `/admin/v1/customers?limit=2${after ? `&after=${after}` : ''}`);
      assert.equal(p.json.object, 'list');
      for (const x of p.json.data) { assert.ok(!seen.has(x.id), 'no customer twice'); seen.add(x.id); }
      pages++;
      if (!p.json.has_more) break;
      after = p.json.last_id;
    }
    assert.ok(pages >= 2 && seen.has(c.json.id));
    assert.equal((await call(d, admin, 'GET', '/admin/v1/customers?limit=0')).status, 400);

    // Keys: the secret once, then only the display prefix.
    const k = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/keys`, { name: 'ci', scopes: ['usage:read'], allowed_models: ['stories'] });
    assert.equal(k.status, 200, k.text);
    assert.match(k.json.secret, /^mk_live_/);
    assert.equal(k.json.display_prefix, `${k.json.secret.slice(0, 12)}…${k.json.secret.slice(-4)}`);
    const list = await call(d, admin, 'GET', `/admin/v1/customers/${c.json.id}/keys`);
    assert.equal(list.json.data.length, 1);
    assert.ok(!list.text.includes(k.json.secret.slice(8)), 'lists never show the secret');
    assert.equal(list.json.data[0].secret, undefined);
    assert.deepEqual(list.json.data[0].allowed_models, ['stories']);
    assert.equal((await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/keys`, { scopes: ['root'] })).status, 400);
    // Rotate: a new secret; the old key keeps working through the grace period.
    const rot = await call(d, admin, 'POST', `/admin/v1/keys/${k.json.id}/rotate`, { grace_seconds: 3600 });
    assert.equal(rot.status, 200, rot.text);
    assert.notEqual(rot.json.secret, k.json.secret);
    assert.equal((await call(d, k.json.secret, 'GET', '/v1/usage?start_time=0')).status, 200);
    assert.equal((await call(d, rot.json.secret, 'GET', '/v1/usage?start_time=0')).status, 200);
    const old = await call(d, admin, 'GET', `/admin/v1/keys/${k.json.id}`);
    assert.equal(old.json.rotated_to, rot.json.id);
    assert.ok(old.json.revoked_at > Date.now() + 3500 * 1000);

    // Plans: list; a new version in the future; history cannot be rewritten.
    const plans = await call(d, admin, 'GET', '/admin/v1/plans');
    assert.deepEqual(plans.json.data.map((p) => p.id).sort(), ['enterprise', 'free', 'pro']);
    const pro = plans.json.data.find((p) => p.id === 'pro');
    assert.equal(pro.current_version.base_fee_micros, 20000000);
    assert.equal(pro.current_version.hard_cap, false);
    const future = Date.now() + 30 * 86400000;
    const v2 = await call(d, admin, 'POST', '/admin/v1/plans/pro/versions', { base_fee_micros: 25000000, effective_from: future });
    assert.equal(v2.status, 200, v2.text);
    assert.equal(v2.json.version, 2);
    assert.equal(v2.json.included_tokens, 2000000);
    const past = await call(d, admin, 'POST', '/admin/v1/plans/pro/versions', { base_fee_micros: 1, effective_from: 1000 });
    assert.equal(past.status, 400);
    assert.match(past.json.error.message, /past/);
    assert.throws(() => sql(d, "UPDATE plan_versions SET base_fee_micros = 1 WHERE plan_id = 'pro' AND version = 1"), /in force/);

    // Subscriptions: create, change (recorded with its instant), cancel.
    const s = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription`, { plan: 'pro', billing_anchor_day: 31 });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json.status, 'trialing');
    assert.equal(s.json.billing_anchor_day, 31);
    assert.equal((await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription`, { plan: 'free' })).status, 409);
    const before = Date.now();
    const ch = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription/change`, { plan: 'enterprise' });
    assert.equal(ch.status, 200, ch.text);
    assert.equal(ch.json.plan_id, 'enterprise');
    const cancel = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription/cancel`, { at_period_end: true });
    assert.equal(cancel.json.cancel_at_period_end, true);
    const got = await call(d, admin, 'GET', `/admin/v1/customers/${c.json.id}/subscription`);
    assert.deepEqual(got.json.changes.map((x) => x.kind), ['created', 'plan_changed', 'cancel_scheduled']);
    const change = got.json.changes[1];
    assert.ok(change.at >= before && change.from_plan_version_id !== change.to_plan_version_id);
    assert.match(change.actor, /^key:key_/);

    // Credits.
    const cr = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/credits`, { unit: 'tokens', amount: 50000, reason: 'welcome' });
    assert.equal(cr.status, 200, cr.text);
    assert.equal(cr.json.remaining, 50000);
    const money = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/credits`, { unit: 'micros', currency: 'EUR', amount: 10000000, kind: 'prepaid', reason: 'top-up' });
    assert.equal(money.status, 200, money.text);
    assert.equal((await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/credits`, { unit: 'tokens', amount: -5, reason: 'x' })).status, 400);
    const credits = await call(d, admin, 'GET', `/admin/v1/customers/${c.json.id}/credits`);
    assert.equal(credits.json.data.length, 2);

    // Every change above is in the audit log, with the acting key.
    const actions = sql(d, `SELECT group_concat(action, ' ') FROM (SELECT action FROM audit_log WHERE target IN ('${c.json.id}', '${s.json.id}', '${k.json.id}', '${rot.json.id}') ORDER BY seq)`);
    assert.equal(actions, 'customer.create customer.update customer.update key.issue key.rotate key.issue subscription.create subscription.change subscription.cancel_at_period_end');
  });

  test('Idempotency-Key on an admin POST: same request replays, another is 422', async () => {
    const before = Number(sql(d, 'SELECT count(*) FROM customers'));
    const hdr = { 'Idempotency-Key': 'create-gamma-1' };
    const first = await call(d, admin, 'POST', '/admin/v1/customers', { name: 'Gamma' }, hdr);
    assert.equal(first.status, 200);
    const again = await call(d, admin, 'POST', '/admin/v1/customers', { name: 'Gamma' }, hdr);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.json, first.json);
    assert.equal(Number(sql(d, 'SELECT count(*) FROM customers')), before + 1, 'created once');
    const other = await call(d, admin, 'POST', '/admin/v1/customers', { name: 'Delta' }, hdr);
    assert.equal(other.status, 422);
    assert.equal(other.json.error.param, 'Idempotency-Key');
    // A key issue replays without its secret: secrets are never stored.
    const ik = { 'Idempotency-Key': 'issue-1' };
    const k1 = await call(d, admin, 'POST', `/admin/v1/customers/${first.json.id}/keys`, { scopes: ['usage:read'] }, ik);
    assert.match(k1.json.secret, /^mk_live_/);
    const k2 = await call(d, admin, 'POST', `/admin/v1/customers/${first.json.id}/keys`, { scopes: ['usage:read'] }, ik);
    assert.equal(k2.json.id, k1.json.id);
    assert.equal(k2.json.secret, undefined);
    assert.equal(sql(d, `SELECT count(*) FROM idempotency_keys WHERE instr(response_body, '${k1.json.secret.slice(8)}')`), '0');
    // Concurrent duplicates: exactly one creation, the others replay or wait (409).
    const hdr2 = { 'Idempotency-Key': 'burst-1' };
    const rs = await Promise.all(Array.from({ length: 8 }, () => call(d, admin, 'POST', '/admin/v1/customers', { name: 'Burst' }, hdr2)));
    const ids = new Set(rs.filter((r) => r.status === 200).map((r) => r.json.id));
    assert.equal(ids.size, 1);
    for (const r of rs) assert.ok(r.status === 200 || r.status === 409, r.text);
    assert.equal(sql(d, "SELECT count(*) FROM customers WHERE name = 'Burst'"), '1');
  });

  test('the CLI works on the database while the daemon serves', async () => {
    const c = await newCustomer('Cli');
    const issued = await runMaasd(['keys', 'issue', '--db', d.dbPath, '--customer', c.id, '--scopes', 'usage:read']);
    assert.equal(issued.code, 0, issued.stderr);
    const secret = issued.stdout.trim();
    assert.match(issued.stdout, /^mk_live_[0-9A-Za-z]{30}\n$/, 'the secret alone on stdout');
    assert.ok(!issued.stderr.includes(secret.slice(8)), 'and nowhere else');
    assert.equal((await call(d, secret, 'GET', '/v1/usage?start_time=0')).status, 200);
    const keyId = /key (key_[0-9A-Za-z]+)/.exec(issued.stderr)[1];
    const revoked = await runMaasd(['keys', 'revoke', keyId, '--db', d.dbPath]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert401(await call(d, secret, 'GET', '/v1/usage?start_time=0'));
    const user = sql(d, `SELECT actor FROM audit_log WHERE action = 'key.revoke' AND target = '${keyId}'`);
    assert.match(user, /^cli:/);
    // Other commands, for the record: JSON out, errors as one line.
    const list = await runMaasd(['customers', 'get', c.id, '--db', d.dbPath]);
    assert.equal(JSON.parse(list.stdout).id, c.id);
    const bad = await runMaasd(['subscriptions', 'create', '--db', d.dbPath, '--customer', c.id, '--plan', 'pro']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^maasd: .*already has a live subscription/);
  });

  test('an edited audit row breaks the chain and `maasd audit verify` says where', async () => {
    let r = await runMaasd(['audit', 'verify', '--db', d.dbPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /audit log intact: \d+ rows, last hash [0-9a-f]{64}/);
    assert.throws(() => sql(d, "UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 3"), /append-only/);
    sql(d, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 3");
    r = await runMaasd(['audit', 'verify', '--db', d.dbPath]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /audit log broken at seq 3/);
  });
});

describe('metering: admission and the ledger through a stand-in inference route', () => {
  let d, admin;
  before(async () => {
    d = await startDaemon({ args: ['--test-routes'] });
    admin = credentials(d).MAASD_ADMIN_KEY;
  });
  after(async () => {
    const ex = await d.stop('SIGTERM');
    await d.cleanup();
    assert.equal(ex.code, 0, d.stderrText().slice(-3000));
  });

  async function customer(name, plan, keyBody = {}) {
    const c = await call(d, admin, 'POST', '/admin/v1/customers', { name });
    await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/subscription`, { plan });
    const k = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/keys`, { scopes: ['inference', 'usage:read'], ...keyBody });
    assert.equal(k.status, 200, k.text);
    return { id: c.json.id, key: k.json.secret, keyId: k.json.id };
  }
  const metered = (c, q = '') => call(d, c.key, 'GET', `/_test/metered?${q}`);

  test('rate-limit headers on every answer; 429 with Retry-After past requests per minute', async () => {
    const c = await customer('Limited', 'free');
    let r = await metered(c, 'prompt_tokens=20&max_tokens=100&completion_tokens=30');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '20');
    assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '19');
    assert.equal(r.headers.get('x-ratelimit-limit-tokens'), '10000');
    assert.equal(r.headers.get('x-ratelimit-remaining-tokens'), '9880'); // 20 + 100 reserved
    assert.match(r.headers.get('x-ratelimit-reset-requests'), /^\d+(\.\d+)?(ms|s)$|^\d+m\d+(\.\d+)?s$/);
    assert.deepEqual(r.json.usage, { prompt_tokens: 20, completion_tokens: 30 });
    let limited = null;
    for (let i = 0; i < 25 && !limited; i++) {
      r = await metered(c);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'the free plan allows 20 requests a minute');
    assert.equal(limited.json.error.code, 'rate_limit_exceeded');
    assert.equal(limited.json.error.type, 'rate_limit_error');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal(limited.headers.get('x-ratelimit-remaining-requests'), '0');
    // The SDK raises its typed error (no retries here).
    const client = new OpenAI({ apiKey: c.key, baseURL: `${d.url}/_test`, maxRetries: 0 });
    await assert.rejects(client.get('/metered'), OpenAI.RateLimitError);
  });

  test('concurrent requests beyond the plan are refused, and nothing is reserved for them', async () => {
    const c = await customer('Concurrent', 'free'); // 2 at a time
    const rs = await Promise.all([0, 1, 2].map(() => metered(c, `ms=${600 * SLOW}`)));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 429]);
    assert.match(rs.find((r) => r.status === 429).json.error.message, /concurrent/);
    assert.equal((await metered(c)).status, 200, 'slots come back when requests end');
  });

  test('a hard cap is never exceeded, even by a burst; credits lift it', async () => {
    const plan = await call(d, admin, 'POST', '/admin/v1/plans/tiny/versions', {
      name: 'Tiny', billing_interval: 'month', base_fee_micros: 0, included_tokens: 300,
      price_input_per_1m_micros: 0, price_output_per_1m_micros: 0, requests_per_minute: 1000,
      tokens_per_minute: 100000, max_concurrent_requests: 100, max_tokens_per_request: 100, hard_cap: true,
    });
    assert.equal(plan.status, 200, plan.text);
    const c = await customer('Capped', 'tiny');
    // 20 at once, each wanting 10 + 50 tokens, against 300 included.
    const rs = await Promise.all(Array.from({ length: 20 }, () => metered(c, `prompt_tokens=10&max_tokens=50&ms=${100 * SLOW}`)));
    const ok = rs.filter((r) => r.status === 200);
    const capped = rs.filter((r) => r.status === 429);
    assert.ok(ok.length >= 5 && capped.length >= 1, rs.map((r) => r.status).join(','));
    for (const r of capped) {
      assert.equal(r.json.error.code, 'insufficient_quota');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
    }
    const used = Number(sql(d, `SELECT sum(prompt_tokens + completion_tokens) FROM usage_ledger WHERE customer_id = '${c.id}'`));
    assert.ok(used <= 300, `used ${used} of 300`);
    assert.equal(used, ok.reduce((s, r) => s + r.json.usage.prompt_tokens + r.json.usage.completion_tokens, 0));
    // Whatever is left is granted as a smaller completion budget.
    const left = 300 - used;
    if (left > 10) {
      const r = await metered(c, 'prompt_tokens=10&max_tokens=100');
      assert.equal(r.json.max_tokens, Math.min(100, left - 10));
    }
    assert.equal((await metered(c, 'prompt_tokens=10')).status, 429);
    // A token credit lifts the cap.
    const g = await call(d, admin, 'POST', `/admin/v1/customers/${c.id}/credits`, { unit: 'tokens', amount: 1000, reason: 'goodwill' });
    assert.equal(g.status, 200, g.text);
    assert.equal((await metered(c, 'prompt_tokens=10&max_tokens=50')).status, 200);
  });

  test('each request is one ledger row, visible in /v1/usage; a client that left is recorded too', async () => {
    const c = await customer('Ledgered', 'pro');
    for (let i = 0; i < 3; i++) assert.equal((await metered(c, 'prompt_tokens=7&max_tokens=5')).status, 200);
    const ctl = new AbortController();
    const gone = fetch(`${d.url}/_test/metered?ms=${400 * SLOW}`, { headers: { Authorization: `Bearer ${c.key}`, 'X-Request-Id': 'left-early-1' }, signal: ctl.signal }).catch(() => 'aborted');
    await sleep(100 * SLOW);
    ctl.abort();
    assert.equal(await gone, 'aborted');
    for (let i = 0; i < 50 && sql(d, "SELECT count(*) FROM usage_ledger WHERE request_id = 'left-early-1'") !== '1'; i++) await sleep(100);
    assert.equal(sql(d, "SELECT client_aborted FROM usage_ledger WHERE request_id = 'left-early-1'"), '1');
    const pv = sql(d, `SELECT group_concat(DISTINCT plan_version_id) FROM usage_ledger WHERE customer_id = '${c.id}'`);
    assert.equal(pv, sql(d, "SELECT id FROM plan_versions WHERE plan_id = 'pro' AND version = 1"));
    // Yesterday to tomorrow, so a run across midnight UTC still sees every row.
    const start = Math.floor(Date.now() / 86400000) * 86400 - 86400;
    const u = await call(d, c.key, 'GET', `/v1/usage?start_time=${start}&end_time=${start + 3 * 86400}&group_by=model`);
    assert.equal(u.json.data.length, 3);
    const res = u.json.data.flatMap((b) => b.results);
    assert.ok(res.length >= 1 && res.every((x) => x.model === 'test'));
    const sum = (f) => res.reduce((s, x) => s + x[f], 0);
    res[0] = { model: 'test', num_model_requests: sum('num_model_requests'), input_tokens: sum('input_tokens') };
    assert.equal(res[0].model, 'test');
    assert.equal(res[0].num_model_requests, 4);
    assert.equal(res[0].input_tokens, 3 * 7 + 10);
  });

  test('a key limited to some models cannot use others', async () => {
    const c = await customer('Narrow', 'pro', { allowed_models: ['small'] });
    assert.equal((await metered(c, 'model=small')).status, 200);
    const r = await metered(c, 'model=large');
    assert.equal(r.status, 403);
    assert.equal(r.json.error.param, 'model');
  });

  test('the stand-in route needs an inference key like a real one', async () => {
    assert401(await call(d, null, 'GET', '/_test/metered'));
    assert.equal((await call(d, admin, 'GET', '/_test/metered')).status, 403);
    // The operator has no subscription: admitted nowhere.
    const op = await call(d, admin, 'POST', `/admin/v1/customers/${credentials(d).MAASD_OPERATOR_CUSTOMER}/keys`, { scopes: ['inference'] });
    const r = await call(d, op.json.secret, 'GET', '/_test/metered');
    assert.equal(r.status, 429);
    assert.equal(r.json.error.code, 'insufficient_quota');
  });
});

describe('later starts', () => {
  test('a restart creates nothing and prints no secret', async () => {
    const d = await startDaemon();
    try {
      const creds = credentials(d);
      await d.stop();
      const d2 = await startDaemon({ dir: d.dir, db: d.dbPath });
      try {
        assert.ok(!d2.stderrText().includes('mk_live_'));
        assert.deepEqual(credentials(d2), creds);
        const r = await call(d2, creds.MAASD_ADMIN_KEY, 'GET', '/admin/v1/customers');
        assert.equal(r.json.data.length, 2);
      } finally { await d2.stop(); }
    } finally { await d.cleanup(); }
  });

  test('a missing pepper with keys in the database refuses to start', async () => {
    const d = await startDaemon();
    await d.stop();
    const { renameSync } = await import('node:fs');
    renameSync(`${d.dbPath}.pepper`, `${d.dbPath}.pepper.bak`);
    const r = await runMaasd(['serve', '--listen', '127.0.0.1:0', '--db', d.dbPath]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pepper file .* is missing .* restore it/);
    await d.cleanup();
  });
});
