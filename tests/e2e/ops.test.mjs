// ops.test.mjs — operating the daemon: Prometheus metrics (parsed with a
// strict text-format parser) moving as traffic flows, HTTPS with a
// certificate reloaded on SIGHUP, backups taken under inference load and
// restored, periodic backups with retention, and a customer's export and
// erasure through the CLI while the daemon serves.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, copyFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { startDaemon, runMaasd, tempDir, newCustomer, sleep, withTimeout, SLOW } from './lib/daemon.mjs';

const MODEL = 'maasd-demo';

// ---- a strict parser of the Prometheus text format 0.0.4 --------------------------
// Returns Map(family name -> {type, help, samples: [{name, labels, value}]}).
// Throws on anything a Prometheus server would reject, and on what our
// conventions forbid (families outside maasd_, counters without _total).
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value '${s}'`);
  return Number(s);
}
function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name '${name}'`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let v = '';
    let j = eq + 2;
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === '\\') {
        const n = s[++j];
        if (n === 'n') v += '\n'; else if (n === '\\' || n === '"') v += n;
        else throw new Error(`${where}: bad escape \\${n}`);
      } else v += s[j];
    }
    if (s[j] !== '"') throw new Error(`${where}: unterminated label value`);
    if (name in labels) throw new Error(`${where}: duplicate label ${name}`);
    labels[name] = v;
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`${where}: expected ','`);
      i++;
    }
  }
  return labels;
}
function familyOf(name, fams) {
  if (fams.has(name)) return name;
  for (const suf of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suf) ? name.slice(0, -suf.length) : null;
    if (base && fams.get(base)?.type === 'histogram') return base;
  }
  return null;
}
export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const fams = new Map();
  const seen = new Set();
  text.split('\n').slice(0, -1).forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      const f = fams.get(name) ?? { type: 'untyped', help: null, samples: [], typed: false };
      if (kind === 'TYPE') {
        if (f.typed) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE after samples of ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: bad type ${rest}`);
        f.type = rest; f.typed = true;
      } else {
        if (f.help !== null) throw new Error(`${where}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest;
      }
      fams.set(name, f);
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${line}`);
    const [, name, , lab, val] = m;
    const labels = lab === undefined ? {} : parseLabels(lab, where);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    seen.add(key);
    const fam = familyOf(name, fams);
    if (!fam) throw new Error(`${where}: sample ${name} before its TYPE`);
    const f = fams.get(fam);
    if (f.type === 'histogram' && name.endsWith('_bucket') && !('le' in labels)) throw new Error(`${where}: bucket without le`);
    const value = parseValue(val);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: negative counter`);
    f.samples.push({ name, labels, value });
  });
  for (const [name, f] of fams) {
    if (!name.startsWith('maasd_')) throw new Error(`family ${name} is not maasd_`);
    if (f.type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} without _total`);
    if (f.help === null) throw new Error(`family ${name} has no HELP`);
    if (f.type !== 'histogram') continue;
    // Per series: buckets ascending in le, cumulative, +Inf == _count.
    const series = new Map();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      const e = series.get(k) ?? { buckets: [], count: null, sum: null };
      if (s.name.endsWith('_bucket')) e.buckets.push([parseValue(le), s.value]);
      else if (s.name.endsWith('_count')) e.count = s.value;
      else if (s.name.endsWith('_sum')) e.sum = s.value;
      series.set(k, e);
    }
    for (const [k, e] of series) {
      const b = e.buckets;
      if (!b.length || b[b.length - 1][0] !== Infinity) throw new Error(`${name}${k}: no +Inf bucket`);
      for (let i = 1; i < b.length; i++) {
        if (!(b[i][0] > b[i - 1][0])) throw new Error(`${name}${k}: le not ascending`);
        if (b[i][1] < b[i - 1][1]) throw new Error(`${name}${k}: buckets not cumulative`);
      }
      if (e.count !== b[b.length - 1][1]) throw new Error(`${name}${k}: _count != +Inf bucket`);
      if (e.sum === null) throw new Error(`${name}${k}: no _sum`);
    }
  }
  return fams;
}

// The sum of a family's samples (by sample name) whose labels include `want`.
function value(fams, name, want = {}) {
  const fam = familyOf(name, fams);
  if (!fam) return 0;
  let v = 0;
  for (const s of fams.get(fam).samples)
    if (s.name === name && Object.entries(want).every(([k, x]) => s.labels[k] === x)) v += s.value;
  return v;
}

async function scrape(d, token) {
  const r = await fetch(`${d.url}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}

async function chat(d, key, body) {
  const r = await fetch(`${d.url}/v1/chat/completions`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0, ...body }),
  });
  return { status: r.status, text: await r.text() };
}

describe('metrics', () => {
  let d, token, cust;
  before(async () => {
    const dir = tempDir();
    token = 'metrics-token-' + 'x'.repeat(24);
    writeFileSync(join(dir, 'metrics.token'), `${token}\n`, { mode: 0o600 });
    d = await startDaemon({ dir, args: ['--metrics-token-file', join(dir, 'metrics.token')] });
    cust = await newCustomer(d);
  });
  after(async () => { await d.cleanup(); });

  test('the token is required and checked', async () => {
    let r = await scrape(d);
    assert.equal(r.status, 401);
    r = await scrape(d, token + 'y');
    assert.equal(r.status, 401);
    r = await scrape(d, token);
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  });

  test('the exposition parses strictly and moves with traffic', async () => {
    assert.equal((await scrape(d)).status, 401);
    const before = parsePrometheus((await scrape(d, token)).text);
    for (const family of ['maasd_http_requests_total', 'maasd_http_request_duration_seconds', 'maasd_scheduler_queue_depth',
      'maasd_scheduler_running_sequences', 'maasd_scheduler_batch_sequences', 'maasd_scheduler_batch_tokens',
      'maasd_scheduler_step_token_budget', 'maasd_scheduler_step_target_seconds',
      'maasd_prompt_tokens_total', 'maasd_generated_tokens_total', 'maasd_time_to_first_token_seconds',
      'maasd_inter_token_latency_seconds', 'maasd_kv_cache_used_tokens', 'maasd_admission_rejections_total',
      'maasd_ledger_write_duration_seconds', 'maasd_ledger_writer_backlog', 'maasd_database_size_bytes',
      'maasd_process_cpu_seconds_total', 'maasd_process_resident_memory_bytes'])
      assert.ok(before.has(family), `missing ${family}`);
    assert.ok(value(before, 'maasd_process_resident_memory_bytes') > 0);
    assert.ok(value(before, 'maasd_database_size_bytes', { file: 'db' }) > 0);
    assert.ok(value(before, 'maasd_kv_cache_capacity_tokens', { model: MODEL }) > 0);
    // Pacing never limits steps shorter than 10 ms (docs/operators.md,
    // --itl-factor): no budget, or a target of at least that.
    const budget = value(before, 'maasd_scheduler_step_token_budget', { model: MODEL });
    const target = value(before, 'maasd_scheduler_step_target_seconds', { model: MODEL });
    assert.ok(budget === 0 ? target === 0 : budget >= 1 && target >= 0.01, `budget ${budget}, target ${target}`);

    // Traffic: non-streamed and streamed completions, a model lookup by id,
    // and a refusal by the plan (max_tokens over the free plan's limit).
    for (let i = 0; i < 3; i++) assert.equal((await chat(d, cust.key)).status, 200);
    assert.equal((await chat(d, cust.key, { stream: true, max_tokens: 12 })).status, 200);
    await fetch(`${d.url}/v1/models/${MODEL}`, { headers: { Authorization: `Bearer ${cust.key}` } });
    const free = await newCustomer(d, { plan: 'free' });
    assert.equal((await chat(d, free.key, { max_tokens: 1500 })).status, 400);

    const r = await scrape(d, token);
    const after = parsePrometheus(r.text);
    const route = { route: '/v1/chat/completions', method: 'POST' };
    assert.equal(value(after, 'maasd_http_requests_total', { ...route, code: '200' }) -
      value(before, 'maasd_http_requests_total', { ...route, code: '200' }), 4);
    assert.ok(value(after, 'maasd_http_request_duration_seconds_count', route) >=
      value(before, 'maasd_http_request_duration_seconds_count', route) + 5);
    // The route pattern, never the raw path.
    assert.ok(value(after, 'maasd_http_requests_total', { route: '/v1/models/{id}', code: '200' }) >= 1);
    assert.ok(!r.text.includes(`/v1/models/${MODEL}"`));
    const gen = (f) => value(f, 'maasd_generated_tokens_total', { model: MODEL, plan: 'enterprise' });
    const prompt = (f) => value(f, 'maasd_prompt_tokens_total', { model: MODEL, plan: 'enterprise' });
    assert.ok(gen(after) - gen(before) >= 4);
    assert.ok(prompt(after) - prompt(before) >= 4);
    assert.ok(value(after, 'maasd_time_to_first_token_seconds_count', { model: MODEL }) -
      value(before, 'maasd_time_to_first_token_seconds_count', { model: MODEL }) >= 4);
    assert.ok(value(after, 'maasd_inter_token_latency_seconds_count', { model: MODEL }) >
      value(before, 'maasd_inter_token_latency_seconds_count', { model: MODEL }));
    assert.ok(value(after, 'maasd_scheduler_batch_tokens_count', { model: MODEL }) >
      value(before, 'maasd_scheduler_batch_tokens_count', { model: MODEL }));
    assert.ok(value(after, 'maasd_scheduler_forward_passes_total', { model: MODEL }) > 0);
    assert.ok(value(after, 'maasd_ledger_write_duration_seconds_count') -
      value(before, 'maasd_ledger_write_duration_seconds_count') >= 4);
    assert.equal(value(after, 'maasd_admission_rejections_total', { reason: 'invalid', plan: 'free' }), 1);
    // Refused scrapes are counted under /metrics.
    assert.ok(value(after, 'maasd_http_requests_total', { route: '/metrics', method: 'GET', code: '401' }) >= 1);
    // No customer, key or secret anywhere in the labels.
    for (const s of [cust.id, cust.keyId, cust.key, free.id, 'cus_', 'key_', 'mk_live_'])
      assert.ok(!r.text.includes(s), `metrics mention ${s}`);
  });

  test('unmatched paths are one series, whatever the client sends', async () => {
    for (let i = 0; i < 5; i++) await fetch(`${d.url}/no/such/${i}`);
    await fetch(`${d.url}/healthz`, { method: 'BREW' }).catch(() => {});
    const f = parsePrometheus((await scrape(d, token)).text);
    assert.ok(value(f, 'maasd_http_requests_total', { route: 'unmatched', method: 'other', code: '404' }) >= 5);
    for (const s of f.get('maasd_http_requests_total').samples)
      assert.ok(!s.labels.route.startsWith('/no/such'));
  });
});

describe('metrics without a token', () => {
  let d;
  before(async () => { d = await startDaemon(); });
  after(async () => { await d.cleanup(); });

  test('served to loopback clients, not to what a local proxy forwards', async () => {
    const r = await scrape(d);
    assert.equal(r.status, 200);
    parsePrometheus(r.text);
    for (const h of [{ 'X-Forwarded-For': '203.0.113.9' }, { Forwarded: 'for=203.0.113.9' }, { 'X-Real-IP': '203.0.113.9' }]) {
      const f = await fetch(`${d.url}/metrics`, { headers: h });
      assert.equal(f.status, 403);
      assert.match((await f.json()).error.message, /--metrics-token-file/);
    }
  });
});

// ---- TLS ---------------------------------------------------------------------------

function makeCert(dir, name, cn) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const pem = readFileSync(join(dir, `${name}.crt`), 'utf8');
  return { pem, key: readFileSync(join(dir, `${name}.key`), 'utf8'), fp: new X509Certificate(pem).fingerprint256 };
}

// The certificate a fresh TLS handshake gets.
function servedFingerprint(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

function httpsGet(port, path, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

describe('TLS', () => {
  let d, dir, one, two;
  before(async () => {
    dir = tempDir();
    one = makeCert(dir, 'one', 'maasd-one');
    two = makeCert(dir, 'two', 'maasd-two');
    copyFileSync(join(dir, 'one.crt'), join(dir, 'server.crt'));
    copyFileSync(join(dir, 'one.key'), join(dir, 'server.key'));
    d = await startDaemon({ dir, args: ['--test-routes', '--tls-cert', join(dir, 'server.crt'), '--tls-key', join(dir, 'server.key')] });
  });
  after(async () => { await d.cleanup(); });

  test('HTTPS works and verifies; plain HTTP does not', async () => {
    const r = await httpsGet(d.port, '/healthz', one.pem);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
    await assert.rejects(fetch(`http://127.0.0.1:${d.port}/healthz`));
    assert.equal(await servedFingerprint(d.port), one.fp);
    assert.ok(d.logs().some((l) => l.msg === 'listening' && l.scheme === 'https'));
  });

  test('SIGHUP swaps the certificate without dropping in-flight requests', async () => {
    // A request that is still running across the reload.
    const slow = httpsGet(d.port, '/_test/slow?ms=' + 800 * SLOW, one.pem);
    await sleep(100 * SLOW);
    copyFileSync(join(dir, 'two.crt'), join(dir, 'server.crt'));
    copyFileSync(join(dir, 'two.key'), join(dir, 'server.key'));
    d.proc.kill('SIGHUP');
    await withTimeout((async () => {
      while (!d.logs().some((l) => l.msg === 'TLS certificate reloaded')) await sleep(20);
    })(), 10000 * SLOW, 'reload log');
    assert.equal(await servedFingerprint(d.port), two.fp);
    assert.equal((await httpsGet(d.port, '/healthz', two.pem)).status, 200);
    const r = await slow;
    assert.equal(r.status, 200);
    assert.match(r.body, /slept_ms/);
  });

  test('a bad certificate on SIGHUP keeps the current one', async () => {
    writeFileSync(join(dir, 'server.crt'), 'not a certificate\n');
    d.proc.kill('SIGHUP');
    await withTimeout((async () => {
      while (!d.logs().some((l) => l.msg?.startsWith('TLS reload failed'))) await sleep(20);
    })(), 10000 * SLOW, 'reload failure log');
    assert.equal(await servedFingerprint(d.port), two.fp);
    assert.equal((await httpsGet(d.port, '/healthz', two.pem)).status, 200);
  });

  test('start-up refuses a key that is not the certificate\'s', async () => {
    const r = await runMaasd(['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'x.db'),
      '--tls-cert', join(dir, 'one.crt'), '--tls-key', join(dir, 'two.key')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tls-key/);
    const r2 = await runMaasd(['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'x.db'), '--tls-cert', join(dir, 'one.crt')]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /--tls-cert and --tls-key go together/);
  });
});

// ---- backups --------------------------------------------------------------------------

const sql = (db, q) => execFileSync('sqlite3', ['-readonly', db, q], { encoding: 'utf8' }).trim();

describe('backups', () => {
  test('a backup under inference load holds every row committed before it, and restores', async () => {
    const d = await startDaemon();
    const restoreDir = tempDir();
    try {
      const cust = await newCustomer(d);
      let stop = false, done = 0, failed = 0;
      const worker = async () => {
        while (!stop) {
          const r = await chat(d, cust.key, { max_tokens: 4 });
          if (r.status === 200) done++; else failed++;
        }
      };
      const workers = [worker(), worker(), worker()];
      while (done < 10) await sleep(10);
      const copy = join(restoreDir, 'maasd.db');
      const before = Number(sql(d.dbPath, 'SELECT count(*) FROM usage_ledger'));
      const r = await runMaasd(['backup', '--db', d.dbPath, '--to', copy]);
      const after = Number(sql(d.dbPath, 'SELECT count(*) FROM usage_ledger'));
      const doneAtEnd = done;
      while (done < doneAtEnd + 5) await sleep(10); // the daemon went on serving
      stop = true;
      await Promise.all(workers);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(failed, 0);
      const out = JSON.parse(r.stdout);
      assert.equal(out.integrity, 'ok');
      assert.equal(out.path, copy);
      const inCopy = Number(sql(copy, 'SELECT count(*) FROM usage_ledger'));
      assert.ok(inCopy >= before, `copy has ${inCopy} ledger rows, ${before} were committed before`);
      assert.ok(inCopy <= after);
      assert.equal(sql(copy, 'PRAGMA integrity_check'), 'ok');
      assert.equal(sql(copy, 'PRAGMA journal_mode'), 'delete');

      // Restore: the file into place, with the pepper kept apart.
      copyFileSync(`${d.dbPath}.pepper`, join(restoreDir, 'maasd.db.pepper'));
      const restored = await startDaemon({ dir: restoreDir, db: copy });
      try {
        const m = await fetch(`${restored.url}/v1/models`, { headers: { Authorization: `Bearer ${cust.key}` } });
        assert.equal(m.status, 200);
        assert.equal(Number(sql(copy, 'SELECT count(*) FROM usage_ledger')), inCopy);
      } finally {
        await restored.stop();
      }
    } finally {
      await d.cleanup();
      rmSync(restoreDir, { recursive: true, force: true });
    }
  });

  test('periodic backups keep the newest N', async () => {
    const dir = tempDir();
    const bdir = join(dir, 'backups');
    mkdirSync(bdir);
    writeFileSync(join(bdir, 'keep-me.txt'), 'not a backup');
    const d = await startDaemon({ dir, args: ['--backup-dir', bdir, '--backup-every', '1s', '--backup-keep', '2'] });
    try {
      await withTimeout((async () => {
        while (d.logs().filter((l) => l.msg === 'backup written').length < 3) await sleep(50);
      })(), 30000 * SLOW, 'three backups');
      await sleep(50);
      const files = readdirSync(bdir).sort();
      const backups = files.filter((f) => /^maasd-backup-\d{8}T\d{9}Z\.db$/.test(f));
      assert.ok(backups.length === 2 || backups.length === 3, files.join(' ')); // a 4th may be running
      assert.ok(files.includes('keep-me.txt'));
      assert.equal(sql(join(bdir, backups[backups.length - 1]), 'PRAGMA integrity_check'), 'ok');
      const f = parsePrometheus((await scrape(d)).text);
      assert.ok(value(f, 'maasd_backups_total', { result: 'ok' }) >= 3);
      assert.ok(value(f, 'maasd_backup_last_success_timestamp_seconds') > 1.7e9);
    } finally {
      await d.cleanup();
    }
  });
});

// ---- privacy --------------------------------------------------------------------------

describe('privacy', () => {
  test('export, then erase while the daemon serves: the keys stop working', async () => {
    const d = await startDaemon();
    try {
      const cust = await newCustomer(d, { name: 'Erin Erasable' });
      assert.equal((await chat(d, cust.key)).status, 200);
      let r = await runMaasd(['customers', 'export', cust.id, '--db', d.dbPath]);
      assert.equal(r.code, 0, r.stderr);
      const ex = JSON.parse(r.stdout);
      assert.equal(ex.customer_id, cust.id);
      assert.equal(ex.tables.customers[0].name, 'Erin Erasable');
      assert.equal(ex.tables.usage_ledger.length, 1);
      assert.equal(ex.tables.api_keys[0].id, cust.keyId);
      assert.ok(!('hash' in ex.tables.api_keys[0]));
      assert.ok(!r.stdout.includes(cust.key));

      r = await runMaasd(['customers', 'erase', cust.id, '--db', d.dbPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).status, 'erased');
      const after = await chat(d, cust.key);
      assert.equal(after.status, 401);
      r = await runMaasd(['customers', 'export', cust.id, '--db', d.dbPath]);
      const ex2 = JSON.parse(r.stdout);
      assert.equal(ex2.tables.customers[0].name, '(erased)');
      assert.equal(ex2.tables.customers[0].email, null);
      assert.equal(ex2.tables.usage_ledger.length, 1); // the books stay
      assert.ok(ex2.tables.audit_log.some((a) => a.action === 'customer.erase' && a.actor.startsWith('cli:')));
      r = await runMaasd(['customers', 'erase', 'cus_nosuchcustomer0000', '--db', d.dbPath]);
      assert.equal(r.code, 1);
    } finally {
      await d.cleanup();
    }
  });
});
