// foundation.test.mjs — the daemon's skeleton: probes, HTTP errors, limits,
// the asynchronous and streaming paths, logs, start-up failures, shutdown.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { startDaemon, runMaasd, rawRequest, parseRawResponse, tempDir, sleep, SLOW } from './lib/daemon.mjs';

function assertErrorShape(body, code) {
  assert.equal(typeof body.error, 'object');
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error);
  if (code) assert.equal(body.error.code, code);
}

describe('probes and errors', () => {
  let d;
  before(async () => { d = await startDaemon({ args: ['--test-routes', '--max-body-bytes', '4K'] }); });
  after(async () => { await d.cleanup(); });

  test('healthz, readyz, version', async () => {
    let r = await fetch(`${d.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
    r = await fetch(`${d.url}/readyz`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).status, 'ready');
    r = await fetch(`${d.url}/version`);
    const v = await r.json();
    assert.match(v.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof v.git_commit, 'string');
    assert.equal(typeof v.build_flags, 'string');
  });

  test('unknown route is a JSON 404', async () => {
    const r = await fetch(`${d.url}/no/such/route`);
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type'), /application\/json/);
    assertErrorShape(await r.json(), 'not_found');
  });

  test('wrong method is a JSON 405 with Allow', async () => {
    const r = await fetch(`${d.url}/healthz`, { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET');
    assertErrorShape(await r.json(), 'method_not_allowed');
  });

  test('wrong Content-Type is a JSON 415', async () => {
    const r = await fetch(`${d.url}/_test/echo`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 415);
    assertErrorShape(await r.json(), 'unsupported_media_type');
  });

  test('body over --max-body-bytes is a JSON 413 (Content-Length and chunked)', async () => {
    const big = JSON.stringify({ x: 'a'.repeat(5000) });
    let r = await fetch(`${d.url}/_test/echo`, { method: 'POST', body: big, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 413);
    assertErrorShape(await r.json(), 'request_too_large');
    // Chunked upload: no Content-Length, the limit is enforced while reading.
    const chunk = 'a'.repeat(3000);
    const raw = `POST /_test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
      `${chunk.length.toString(16)}\r\n${chunk}\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    const resp = parseRawResponse(await rawRequest(d.port, raw));
    assert.equal(resp.status, 413);
    // Under the limit still works.
    r = await fetch(`${d.url}/_test/echo`, { method: 'POST', body: '{"ok":true}', headers: { 'Content-Type': 'application/json; charset=utf-8' } });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true });
  });

  test('X-Request-Id is honoured when sane, generated otherwise', async () => {
    let r = await fetch(`${d.url}/healthz`, { headers: { 'X-Request-Id': 'abc-123_x.y' } });
    assert.equal(r.headers.get('x-request-id'), 'abc-123_x.y');
    r = await fetch(`${d.url}/healthz`, { headers: { 'X-Request-Id': 'bad id with spaces' } });
    assert.match(r.headers.get('x-request-id'), /^req_[0-9a-f]{24}$/);
    r = await fetch(`${d.url}/healthz`);
    assert.match(r.headers.get('x-request-id'), /^req_[0-9a-f]{24}$/);
  });

  test('the loop is not blocked while a request waits on another thread', async () => {
    const order = [];
    const slow = fetch(`${d.url}/_test/slow?ms=${800 * SLOW}`).then(async (r) => { order.push('slow'); return r.json(); });
    await sleep(50);
    const fast = await fetch(`${d.url}/healthz`);
    order.push('healthz');
    assert.equal(fast.status, 200);
    assert.deepEqual(await slow, { slept_ms: 800 * SLOW });
    assert.deepEqual(order, ['healthz', 'slow']);
  });

  test('many suspended requests complete concurrently', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, () => fetch(`${d.url}/_test/slow?ms=200`).then((r) => r.json())));
    assert.equal(rs.length, 20);
    for (const r of rs) assert.equal(r.slept_ms, 200);
  });

  test('chunked streaming delivers events as they are produced', async () => {
    const r = await fetch(`${d.url}/_test/stream?chunks=5&ms=${100 * SLOW}`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let text = '', reads = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      reads++;
      text += dec.decode(value);
    }
    const events = text.split('\n\n').filter(Boolean);
    assert.equal(events.length, 6);
    assert.equal(events[5], 'data: [DONE]');
    assert.ok(reads >= 2, 'events arrived in several reads, not one buffered body');
  });

  test('a client that leaves a suspended request is noticed', async () => {
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    sock.write('GET /_test/slow?ms=60000 HTTP/1.1\r\nHost: x\r\nX-Request-Id: leaver-1\r\n\r\n');
    await sleep(200);
    sock.destroy();
    for (let i = 0; i < 100; i++) {
      const line = d.logs().find((l) => l.request_id === 'leaver-1');
      if (line) { assert.equal(line.aborted, true); return; }
      await sleep(50);
    }
    assert.fail('no log line for the abandoned request');
  });

  test('one JSON log line per request, without secrets', async () => {
    await fetch(`${d.url}/healthz?token=x`, { headers: { Authorization: 'Bearer sk-very-secret-value', 'X-Request-Id': 'logcheck-1' } });
    await sleep(100);
    const line = d.logs().find((l) => l.request_id === 'logcheck-1');
    assert.ok(line, 'request logged');
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/healthz');
    assert.equal(line.status, 200);
    assert.equal(typeof line.bytes, 'number');
    assert.equal(typeof line.duration_ms, 'number');
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(!d.stderrText().includes('sk-very-secret-value'));
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM lets a slow request finish, then exits 0', async () => {
    const d = await startDaemon({ args: ['--test-routes', '--shutdown-timeout', '30s'] });
    try {
      const slow = fetch(`${d.url}/_test/slow?ms=${1000 * SLOW}`);
      await sleep(200);
      d.proc.kill('SIGTERM');
      const r = await slow;
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('connection'), 'close');
      assert.deepEqual(await r.json(), { slept_ms: 1000 * SLOW });
      const ex = await d.waitExit();
      assert.equal(ex.code, 0);
      const msgs = d.logs().map((l) => l.msg);
      assert.ok(msgs.includes('shutting down'));
      assert.ok(msgs.includes('stopped'));
    } finally { await d.cleanup(); }
  });

  test('new connections are refused once shutting down', async () => {
    const d = await startDaemon({ args: ['--test-routes'] });
    try {
      const slow = fetch(`${d.url}/_test/slow?ms=${1500 * SLOW}`);
      await sleep(200);
      d.proc.kill('SIGTERM');
      await sleep(200);
      await assert.rejects(fetch(`${d.url}/healthz`, { headers: { Connection: 'close' } }));
      assert.equal((await slow).status, 200);
      assert.equal((await d.waitExit()).code, 0);
    } finally { await d.cleanup(); }
  });

  test('requests still running at --shutdown-timeout are aborted; exit is still 0', async () => {
    const d = await startDaemon({ args: ['--test-routes', '--shutdown-timeout', '300ms'] });
    try {
      const slow = fetch(`${d.url}/_test/slow?ms=60000`).then((r) => r.status, () => 'aborted');
      await sleep(200);
      d.proc.kill('SIGTERM');
      assert.equal((await d.waitExit()).code, 0);
      assert.equal(await slow, 'aborted');
    } finally { await d.cleanup(); }
  });

  test('a second signal exits at once', async () => {
    const d = await startDaemon({ args: ['--test-routes'] });
    try {
      fetch(`${d.url}/_test/slow?ms=60000`).catch(() => {});
      await sleep(200);
      d.proc.kill('SIGTERM');
      await sleep(100);
      d.proc.kill('SIGINT');
      const ex = await d.waitExit();
      assert.equal(ex.code, 1);
    } finally { await d.cleanup(); }
  });
});

describe('start-up failures are one clear line and a non-zero exit', () => {
  async function failing(args) {
    const r = await runMaasd(['serve', ...args]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null, 'no crash');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
    return lines[0];
  }

  test('occupied port', async () => {
    const srv = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.on('listening', r));
    const port = srv.address().port;
    const dir = tempDir();
    try {
      const line = await failing(['--listen', `127.0.0.1:${port}`, '--db', join(dir, 'm.db')]);
      assert.match(line, /cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
    } finally { srv.close(); }
  });

  test('a file that is not a database', async () => {
    const dir = tempDir();
    const db = join(dir, 'garbage.db');
    writeFileSync(db, Buffer.alloc(8192, 'x'));
    const line = await failing(['--listen', '127.0.0.1:0', '--db', db]);
    assert.match(line, /not a database/);
  });

  test('a truncated database', async () => {
    const dir = tempDir();
    const db = join(dir, 'm.db');
    const d = await startDaemon({ db });
    await d.stop();
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(db);
    writeFileSync(db, bytes.subarray(0, 100));
    const r = await runMaasd(['serve', '--listen', '127.0.0.1:0', '--db', db]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /maasd: .*database/);
  });

  test('an unwritable database path', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    const line = await failing(['--listen', '127.0.0.1:0', '--db', join(dir, 'file', 'sub', 'm.db')]);
    assert.match(line, /cannot create directory|cannot open database/);
  });

  test('a schema newer than the binary', async () => {
    const dir = tempDir();
    const db = join(dir, 'm.db');
    const d = await startDaemon({ db });
    await d.stop();
    const r0 = await runMaasd(['migrate', '--db', db]);
    assert.equal(r0.code, 0);
    const { execFileSync } = await import('node:child_process');
    execFileSync('sqlite3', [db, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)"]);
    const line = await failing(['--listen', '127.0.0.1:0', '--db', db]);
    assert.match(line, /newer than this maasd binary/);
  });

  test('an invalid setting names the setting', async () => {
    let line = await failing(['--max-body-bytes', 'huge']);
    assert.match(line, /--max-body-bytes/);
    const r = await runMaasd(['serve'], { env: { MAASD_SHUTDOWN_TIMEOUT: 'forever' } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /MAASD_SHUTDOWN_TIMEOUT/);
  });
});

describe('migrate', () => {
  test('--dry-run lists pending migrations and changes nothing', async () => {
    const dir = tempDir();
    const db = join(dir, 'm.db');
    mkdirSync(dir, { recursive: true });
    // A dry run needs an existing file: create an empty database first.
    const { execFileSync } = await import('node:child_process');
    execFileSync('sqlite3', [db, 'PRAGMA user_version=0']);
    let r = await runMaasd(['migrate', '--db', db, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pending 0001_init/);
    r = await runMaasd(['migrate', '--db', db]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /apply 0001_init/);
    r = await runMaasd(['migrate', '--db', db, '--dry-run']);
    assert.doesNotMatch(r.stdout, /^pending /m);
  });

  test('serve --help lists every setting', async () => {
    const r = await runMaasd(['serve', '--help']);
    assert.equal(r.code, 0);
    for (const f of ['--listen', '--db', '--model', '--log-level', '--shutdown-timeout', '--max-body-bytes', '--max-connections', '--connection-timeout']) {
      assert.ok(r.stdout.includes(f), f);
    }
  });
});
