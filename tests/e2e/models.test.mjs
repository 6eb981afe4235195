// models.test.mjs — the model registry: versions, aliases switched under
// load with no failed request, unload, the memory check, restarts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, runMaasd, newCustomer, adminKey, tempDir, sleep } from './lib/daemon.mjs';

async function call(d, key, method, path, body) {
  const r = await fetch(`${d.url}${path}`, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

describe('model registry', () => {
  let d, admin, cust, file;
  const dir = tempDir();
  before(async () => {
    file = join(dir, 'demo.gguf');
    const w = await runMaasd(['demo-model', file]);
    assert.equal(w.code, 0, w.stderr);
    d = await startDaemon({ dir });
    admin = adminKey(d);
    cust = await newCustomer(d);
  });
  after(async () => { await d.cleanup(); });

  test('register two versions; ids resolve to the highest; aliases switch', async () => {
    let r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'tiny', path: file });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'tiny@1');
    r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'tiny', path: file });
    assert.equal(r.json.name, 'tiny@2');
    r = await call(d, cust.key, 'POST', '/v1/completions', { model: 'tiny', prompt: 'x', max_tokens: 2 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, 'tiny@2');
    r = await call(d, admin, 'POST', '/admin/v1/aliases/chat', { model: 'tiny@1' });
    assert.equal(r.status, 200, r.text);
    r = await call(d, cust.key, 'POST', '/v1/completions', { model: 'chat', prompt: 'x', max_tokens: 2 });
    assert.equal(r.json.model, 'tiny@1');
    const list = await call(d, cust.key, 'GET', '/v1/models');
    const ids = list.json.data.map((m) => m.id);
    for (const id of ['chat', 'tiny@1', 'tiny@2', 'maasd-demo']) assert.ok(ids.includes(id), id);
    assert.equal(list.json.data.find((m) => m.id === 'chat').resolves_to, 'tiny@1');
  });

  test('switching an alias under load fails no request', async () => {
    let stop = false;
    const served = { 'tiny@1': 0, 'tiny@2': 0 };
    const failures = [];
    const workers = Array.from({ length: 6 }, async () => {
      while (!stop) {
        const r = await call(d, cust.key, 'POST', '/v1/completions', { model: 'chat', prompt: 'hello', max_tokens: 16 });
        if (r.status !== 200) failures.push(r.text); else served[r.json.model]++;
      }
    });
    for (let i = 0; i < 10; i++) {
      const r = await call(d, admin, 'POST', '/admin/v1/aliases/chat', { model: i % 2 ? 'tiny@1' : 'tiny@2' });
      assert.equal(r.status, 200, r.text);
      await sleep(60);
    }
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, []);
    assert.ok(served['tiny@1'] > 0 && served['tiny@2'] > 0, JSON.stringify(served));
  });

  test('unload: refused while an alias points at it; then new calls no longer see it', async () => {
    await call(d, admin, 'POST', '/admin/v1/aliases/chat', { model: 'tiny@2' });
    let r = await call(d, admin, 'POST', '/admin/v1/models/tiny@2/unload');
    assert.equal(r.status, 409);
    // A long call on tiny@1 keeps running across its unload.
    const long = call(d, cust.key, 'POST', '/v1/completions', { model: 'tiny@1', prompt: 'x', max_tokens: 400 });
    await sleep(20);
    r = await call(d, admin, 'POST', '/admin/v1/models/tiny@1/unload');
    assert.equal(r.status, 200, r.text);
    assert.equal((await long).status, 200);
    r = await call(d, cust.key, 'POST', '/v1/completions', { model: 'tiny@1', prompt: 'x', max_tokens: 2 });
    assert.equal(r.status, 404);
    r = await call(d, admin, 'GET', '/admin/v1/models');
    assert.equal(r.json.data.find((m) => m.name === 'tiny@1').state, 'unloaded');
    r = await call(d, admin, 'POST', '/admin/v1/models/tiny@1/load');
    assert.equal(r.status, 200, r.text);
    r = await call(d, cust.key, 'POST', '/v1/completions', { model: 'tiny@1', prompt: 'x', max_tokens: 2 });
    assert.equal(r.status, 200);
  });

  test('bad registrations: missing file, not GGUF, too big for memory', async () => {
    let r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'nope', path: join(dir, 'missing.gguf') });
    assert.equal(r.status, 400);
    execFileSync('sh', ['-c', `printf 'not a model' > ${join(dir, 'junk.gguf')}`]);
    r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'junk', path: join(dir, 'junk.gguf') });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /junk/);
    execFileSync('truncate', ['-s', '4T', join(dir, 'huge.gguf')]);
    r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'huge', path: join(dir, 'huge.gguf') });
    assert.equal(r.status, 409);
    assert.match(r.json.error.message, /not enough memory/);
    r = await call(d, admin, 'POST', '/admin/v1/models', { id: 'bad id!', path: file });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'id');
    r = await call(d, cust.key, 'POST', '/admin/v1/models', { id: 'x', path: file });
    assert.equal(r.status, 403);
  });

  test('the registry survives a restart, and every change is audited', async () => {
    await d.stop();
    d = await startDaemon({ dir });
    const r = await call(d, adminKey(d), 'GET', '/admin/v1/models');
    const byName = Object.fromEntries(r.json.data.map((m) => [m.name, m.state]));
    assert.equal(byName['tiny@1'], 'loaded');
    assert.equal(byName['tiny@2'], 'loaded');
    assert.deepEqual(r.json.aliases, [{ alias: 'chat', model: 'tiny@2' }]);
    const actions = execFileSync('sqlite3', [d.dbPath, "SELECT action FROM audit_log WHERE action LIKE 'model.%'"], { encoding: 'utf8' }).trim().split('\n');
    for (const a of ['model.register', 'model.alias', 'model.unload', 'model.load']) assert.ok(actions.includes(a), a);
    const v = await runMaasd(['audit', 'verify', '--db', d.dbPath]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });
});
