// finance.test.mjs — finance against the real daemon: the usage report
// (JSON pages, streamed CSV), invoices from draft to finalized, late usage
// as an adjustment, reconciliation, the revenue summary, scopes, and a
// customer reading only its own invoices. The history lives in 2024
// (written with the sqlite3 CLI, as the ledger and the renewal job would
// have), so its months can be closed today.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startDaemon, runMaasd, credentials } from './lib/daemon.mjs';

function sql(d, statement) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 5000', d.dbPath, statement], { encoding: 'utf8', stdio: 'pipe' }).trim();
}

async function call(d, key, method, path, { body, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(`${d.url}${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* CSV */ }
  return { status: r.status, headers: r.headers, json, text };
}

const T = (y, m, d, hh = 0, mm = 0) => Date.UTC(y, m - 1, d, hh, mm);
const S = (ms) => Math.floor(ms / 1000);

// RFC 4180: quoted fields may hold commas and doubled quotes.
function csvRows(text) {
  const records = [];
  let rec = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { rec.push(field); field = ''; } else if (ch === '\r' && text[i + 1] === '\n') { rec.push(field); records.push(rec); rec = []; field = ''; i++; } else field += ch;
  }
  const [head, ...rows] = records;
  return rows.map((r) => Object.fromEntries(r.map((v, i) => [head[i], v])));
}

describe('finance', () => {
  let d, admin, finance, demo, proV1, alpha, beta;

  async function customer(name) {
    const c = await call(d, admin, 'POST', '/admin/v1/customers', { body: { name } });
    assert.equal(c.status, 200, c.text);
    const k = await call(d, admin, 'POST', `/admin/v1/customers/${c.json.id}/keys`, { body: { scopes: ['inference', 'usage:read'] } });
    assert.equal(k.status, 200, k.text);
    return { id: c.json.id, key: k.json.secret, keyId: k.json.id };
  }

  // A pro subscription created at `at` (anchor = that day), no trial.
  function subscribe(c, at) {
    const day = new Date(at).getUTCDate(), month = new Date(at).getUTCMonth() + 1;
    const start = Date.UTC(new Date(at).getUTCFullYear(), month - 1, day);
    const end = Date.UTC(new Date(at).getUTCFullYear(), month, day);
    c.sub = `sub_e2e${c.id.slice(4, 17)}`;
    sql(d, `INSERT INTO subscriptions (id, customer_id, plan_id, status, billing_anchor_day, billing_anchor_month, current_period_start, current_period_end, created_at, updated_at) VALUES ('${c.sub}', '${c.id}', 'pro', 'active', ${day}, ${month}, ${start}, ${end}, ${at}, ${at});
      INSERT INTO subscription_changes (subscription_id, at, kind, to_plan_version_id, to_status, actor) VALUES ('${c.sub}', ${at}, 'created', ${proV1}, 'active', 'system:e2e')`);
  }

  const row = (id, c, at, input, output, aborted = 0) =>
    `('${id}', '${c.id}', '${c.keyId}', 'stories', '/v1/chat/completions', ${input}, ${output}, 'stop', ${aborted}, 200, 1, 250, ${at}, ${at + 251}, ${at + 300}, ${proV1})`;
  const insertRows = (rows) => sql(d, `INSERT INTO usage_ledger (request_id, customer_id, api_key_id, model, endpoint, prompt_tokens, completion_tokens, finish_reason, client_aborted, status, queue_ms, compute_ms, started_at, finished_at, recorded_at, plan_version_id) VALUES ${rows.join(',')}`);

  before(async () => {
    d = await startDaemon();
    const creds = credentials(d);
    admin = creds.MAASD_ADMIN_KEY;
    demo = creds.MAASD_DEMO_KEY;
    const f = await call(d, admin, 'POST', `/admin/v1/customers/${creds.MAASD_OPERATOR_CUSTOMER}/keys`, { body: { name: 'finance', scopes: ['finance'] } });
    assert.equal(f.status, 200, f.text);
    finance = f.json.secret;
    proV1 = Number(sql(d, "SELECT id FROM plan_versions WHERE plan_id = 'pro' AND version = 1"));
    alpha = await customer('Alpha');
    beta = await customer('Beta');
    subscribe(alpha, T(2024, 2, 1));
    subscribe(beta, T(2024, 2, 15, 12));
    insertRows([
      row('a-feb-1', alpha, T(2024, 2, 3, 10), 1000000, 500000),
      row('a-feb-2', alpha, T(2024, 2, 3, 11), 1000000, 500000, 1),
      row('a-feb-3', alpha, T(2024, 2, 28, 23, 59), 1000000, 500000),
      row('a-mar-1', alpha, T(2024, 3, 5), 10000, 2000),
      row('a-mar-2', alpha, T(2024, 3, 6), 10000, 2000),
      row('b-feb-1', beta, T(2024, 2, 20), 50000, 5000),
      row('b-mar-1', beta, T(2024, 3, 10), 70000, 7000),
    ]);
  });

  after(async () => {
    const ex = await d.stop('SIGTERM');
    await d.cleanup();
    assert.equal(ex.code, 0, d.stderrText().slice(-3000));
  });

  test('only finance and admin keys read finance routes; customers only their own invoices', async () => {
    for (const p of ['/admin/v1/usage?start_time=0', '/admin/v1/invoices?period=2024-02', '/admin/v1/invoices/reconcile?period=2024-02', '/admin/v1/reports/revenue?period=2024-02']) {
      assert.equal((await call(d, null, 'GET', p)).status, 401, p);
      const r = await call(d, demo, 'GET', p);
      assert.equal(r.status, 403, p);
      assert.match(r.json.error.message, /'admin' or 'finance'/);
      assert.equal((await call(d, alpha.key, 'GET', p)).status, 403, p);
      assert.equal((await call(d, finance, 'GET', p)).status, 200, p);
      assert.equal((await call(d, admin, 'GET', p)).status, 200, p);
    }
    assert.equal((await call(d, alpha.key, 'POST', '/admin/v1/invoices/close?period=2024-01')).status, 403);
    // Finance is not admin, and admin is not a customer.
    assert.equal((await call(d, finance, 'GET', '/admin/v1/customers')).status, 403);
    assert.equal((await call(d, admin, 'GET', '/v1/invoices')).status, 403);
  });

  test('usage report: calendar months by customer, days in pages, one customer', async () => {
    const q = `start_time=${S(T(2024, 2, 1))}&end_time=${S(T(2024, 4, 1))}`;
    const m = await call(d, finance, 'GET', `/admin/v1/usage?${q}&bucket_width=1mo&group_by=customer_id`);
    assert.equal(m.status, 200, m.text);
    assert.equal(m.json.object, 'page');
    assert.deepEqual(m.json.data.map((b) => [b.start_time, b.end_time]), [[S(T(2024, 2, 1)), S(T(2024, 3, 1))], [S(T(2024, 3, 1)), S(T(2024, 4, 1))]]);
    const feb = Object.fromEntries(m.json.data[0].results.map((r) => [r.customer_id, r]));
    assert.equal(feb[alpha.id].object, 'organization.usage.completions.result');
    assert.equal(feb[alpha.id].num_model_requests, 3);
    assert.equal(feb[alpha.id].input_tokens, 3000000);
    assert.equal(feb[alpha.id].output_tokens, 1500000);
    assert.equal(feb[alpha.id].num_aborted_requests, 1);
    assert.equal(feb[alpha.id].compute_seconds, 0.75);
    assert.equal(feb[alpha.id].model, null);
    assert.equal(feb[beta.id].input_tokens, 50000);
    // Day buckets, ten per page, followed to the end: every row once.
    let page = null, pages = 0, requests = 0, buckets = 0;
    do {
      const r = await call(d, finance, 'GET', `/admin/v1/usage?${q}&bucket_width=1d&limit=10&group_by=model,plan${page ? `&page=${page}` : ''}`);
      assert.equal(r.status, 200, r.text);
      buckets += r.json.data.length;
      for (const b of r.json.data) for (const x of b.results) { requests += x.num_model_requests; assert.equal(x.plan, 'pro'); assert.equal(x.model, 'stories'); }
      page = r.json.has_more ? r.json.next_page : null;
      pages++;
    } while (page);
    assert.equal(buckets, 29 + 31);
    assert.equal(pages, 6);
    assert.equal(requests, 7);
    const one = await call(d, finance, 'GET', `/admin/v1/usage?${q}&bucket_width=1mo&customer_id=${beta.id}`);
    assert.deepEqual(one.json.data.map((b) => b.results[0]?.input_tokens), [50000, 70000]);
    for (const bad of ['bucket_width=1w', 'group_by=project', 'limit=999', 'page=12', 'format=xml']) {
      const r = await call(d, finance, 'GET', `/admin/v1/usage?${q}&${bad}`);
      assert.equal(r.status, 400, bad);
    }
  });

  test('usage report: CSV is streamed, by Accept or format=csv, with the same figures', async () => {
    // 20 000 more rows over 30 days for a third customer: hour buckets make
    // the export longer than one 64 kB chunk.
    const gamma = await customer('Gamma');
    const base = T(2024, 6, 1);
    sql(d, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
      INSERT INTO usage_ledger (request_id, customer_id, api_key_id, model, endpoint, prompt_tokens, completion_tokens, finish_reason, client_aborted, status, queue_ms, compute_ms, started_at, finished_at, recorded_at, plan_version_id)
      SELECT 'bulk-' || i, '${gamma.id}', '${gamma.keyId}', CASE i % 2 WHEN 0 THEN 'm-even' ELSE 'm-odd' END, '/v1/completions', i % 100, i % 7, 'stop', i % 50 = 0, 200, 0, 3, ${base} + i * 129600, ${base} + i * 129600 + 3, ${base} + i * 129600 + 4, ${proV1} FROM n`);
    const q = `start_time=${S(base)}&end_time=${S(base + 31 * 86400000)}&bucket_width=1h&group_by=customer_id,model`;
    const r = await call(d, finance, 'GET', `/admin/v1/usage?${q}`, { headers: { Accept: 'text/csv' } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^text\/csv/);
    assert.equal(r.headers.get('transfer-encoding'), 'chunked');
    assert.match(r.headers.get('content-disposition'), /attachment; filename="usage-2024-06-01-2024-07-02\.csv"/);
    assert.ok(r.text.length > 64 * 1024, `${r.text.length} bytes`);
    const rows = csvRows(r.text);
    const sum = (f) => rows.reduce((s, x) => s + Number(x[f]), 0);
    assert.equal(sum('requests'), 20000);
    assert.equal(sum('input_tokens'), Number(sql(d, "SELECT sum(prompt_tokens) FROM usage_ledger WHERE request_id LIKE 'bulk-%'")));
    assert.equal(sum('output_tokens'), Number(sql(d, "SELECT sum(completion_tokens) FROM usage_ledger WHERE request_id LIKE 'bulk-%'")));
    assert.equal(sum('aborted_requests'), 400);
    assert.ok(rows.every((x) => x.customer_id === gamma.id && /^m-(even|odd)$/.test(x.model) && x.api_key_id === ''));
    assert.ok(rows.every((x) => /^2024-0[67]-\d\dT\d\d:00:00Z$/.test(x.bucket_start)));
    // format=csv answers the same bytes; the CLI writes them to stdout.
    const again = await call(d, admin, 'GET', `/admin/v1/usage?${q}&format=csv`);
    assert.equal(again.text, r.text);
    const cli = await runMaasd(['report', 'usage', '--db', d.dbPath, '--from', String(base), '--to', String(base + 31 * 86400000), '--bucket', '1h', '--group-by', 'customer_id,model', '--format', 'csv']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, r.text);
  });

  test('usage CSV: a slow reader gets every line, a client that leaves stops the export', async () => {
    // 20 000 rows, each its own model: 20 000 CSV lines, about 1.4 MB.
    const delta = await customer('Delta');
    const base = T(2024, 9, 1);
    sql(d, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
      INSERT INTO usage_ledger (request_id, customer_id, api_key_id, model, endpoint, prompt_tokens, completion_tokens, finish_reason, client_aborted, status, queue_ms, compute_ms, started_at, finished_at, recorded_at, plan_version_id)
      SELECT 'wide-' || i, '${delta.id}', '${delta.keyId}', 'model-' || i, '/v1/completions', 1, 1, 'stop', 0, 200, 0, 1, ${base} + i * 60000, ${base} + i * 60000 + 1, ${base} + i * 60000 + 2, ${proV1} FROM n`);
    const url = `${d.url}/admin/v1/usage?start_time=${S(base)}&end_time=${S(base + 15 * 86400000)}&bucket_width=1h&group_by=model&format=csv`;
    const headers = { Authorization: `Bearer ${finance}` };
    const slow = await fetch(url, { headers });
    const reader = slow.body.getReader();
    let bytes = 0, lines = 0, reads = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.length;
      for (const b of value) lines += b === 10;
      if (reads++ % 8 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(lines, 20001);
    assert.ok(bytes > 1e6, `${bytes} bytes`);
    const ctl = new AbortController();
    const gone = await fetch(url, { headers: { ...headers, 'X-Request-Id': 'export-left' }, signal: ctl.signal });
    await gone.body.getReader().read();
    ctl.abort();
    let line;
    for (let i = 0; i < 100 && !line; i++) {
      line = d.logs().find((l) => l.msg === 'request' && l.request_id === 'export-left');
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(line?.aborted, true);
    assert.ok(line.bytes < bytes, `${line.bytes} of ${bytes} bytes were sent`);
    assert.equal((await call(d, finance, 'GET', '/admin/v1/invoices?period=2024-02')).status, 200);
  });

  test('invoices: a draft, closed for good, late usage as an adjustment, reconciled', async () => {
    // February's invoices are those whose service ends in February: Alpha's
    // [Feb 1, Mar 1); Beta's first period ends on March 15.
    const list = await call(d, finance, 'GET', '/admin/v1/invoices?period=2024-02');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json.object, 'list');
    assert.deepEqual(list.json.data.map((i) => i.customer_id), [alpha.id]);
    const draft = list.json.data[0];
    assert.equal(draft.status, 'draft');
    assert.equal(draft.number, null);
    // $20 + 1M input over × $0.50 + 1.5M output over × $1.50
    assert.equal(draft.total, '22.75');
    assert.equal(draft.total_micros, 22750000);
    const full = await call(d, finance, 'GET', `/admin/v1/invoices/${draft.id}`);
    assert.deepEqual(full.json.lines.map((l) => [l.type, l.amount]), [
      ['base_fee', '20.00'], ['allowance', '0.00'], ['usage_input', '0.50'], ['usage_output', '2.25'], ['usage_requests', '0.00']]);
    assert.equal(full.json.lines[2].ledger_rows, 3);
    assert.match(full.json.lines[2].digest, /^[0-9a-f]{64}$/);
    const csv = await call(d, finance, 'GET', `/admin/v1/invoices/${draft.id}`, { headers: { Accept: 'text/csv' } });
    assert.match(csv.headers.get('content-type'), /^text\/csv/);
    const lines = csvRows(csv.text);
    assert.equal(lines.length, 5);
    assert.equal(lines[3].amount, '2.25');

    // Close: too early for March, out of order for April, once for February.
    let r = await call(d, finance, 'POST', '/admin/v1/invoices/close?period=2024-04');
    assert.equal(r.status, 409, r.text);
    assert.match(r.json.error.message, /close 2024-02 first/);
    r = await call(d, finance, 'POST', '/admin/v1/invoices/close?period=2024-02');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.invoices, 1);
    assert.equal(r.json.first_number, 1);
    assert.deepEqual(r.json.totals, [{ currency: 'USD', total_micros: 22750000, total: '22.75' }]);
    assert.equal((await call(d, finance, 'POST', '/admin/v1/invoices/close', { body: { period: '2024-02' } })).status, 409);
    const closedNext = await call(d, finance, 'POST', `/admin/v1/invoices/close?period=${new Date().toISOString().slice(0, 7)}`);
    assert.equal(closedNext.status, 409);
    const fin = await call(d, finance, 'GET', `/admin/v1/invoices/${draft.id}`);
    assert.equal(fin.json.status, 'finalized');
    assert.equal(fin.json.number, 1);
    assert.deepEqual(fin.json.lines, full.json.lines);
    assert.equal(sql(d, "SELECT action || ' ' || target FROM audit_log WHERE action = 'invoices.close'"), 'invoices.close period:2024-02');
    assert.throws(() => sql(d, `UPDATE invoice_lines SET amount_micros = 0 WHERE invoice_id = '${draft.id}'`), /finalized/);
    assert.throws(() => sql(d, `DELETE FROM invoices WHERE id = '${draft.id}'`), /finalized/);

    // A February request recovered after the close: never on February's
    // invoice, an adjustment on Alpha's next one.
    insertRows([row('a-feb-late', alpha, T(2024, 2, 20), 100000, 0)]);
    assert.equal(sql(d, "SELECT invoice_id FROM late_usage WHERE request_id = 'a-feb-late'"), draft.id);
    assert.equal((await call(d, finance, 'GET', `/admin/v1/invoices/${draft.id}`)).json.total, '22.75');
    const march = await call(d, finance, 'GET', `/admin/v1/invoices?period=2024-03&customer_id=${alpha.id}`);
    const mid = march.json.data[0].id;
    const adj = (await call(d, finance, 'GET', `/admin/v1/invoices/${mid}`)).json.lines.find((l) => l.type === 'adjustment');
    assert.equal(adj.ref, draft.id);
    assert.equal(adj.ledger_rows, 1);
    assert.equal(adj.amount, '0.05'); // 100k input over × $0.50

    let rec = await call(d, finance, 'GET', '/admin/v1/invoices/reconcile?period=2024-02');
    assert.equal(rec.status, 200, rec.text);
    assert.deepEqual(rec.json.differences, []);
    assert.equal(rec.json.pending_late_rows, 1);
    const closeCli = await runMaasd(['invoices', 'close', '--db', d.dbPath, '--period', '2024-03']);
    assert.equal(closeCli.code, 0, closeCli.stderr);
    assert.equal(JSON.parse(closeCli.stdout).invoices, 2);
    for (const p of ['2024-02', '2024-03']) {
      const c = await runMaasd(['invoices', 'reconcile', '--db', d.dbPath, '--period', p]);
      assert.equal(c.code, 0, c.stderr);
      assert.deepEqual(JSON.parse(c.stdout).differences, []);
    }
    rec = await call(d, finance, 'GET', '/admin/v1/invoices/reconcile?period=2024-02');
    assert.equal(rec.json.pending_late_rows, 0);
    const shown = await runMaasd(['invoices', 'show', mid, '--db', d.dbPath, '--format', 'csv']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /,adjustment,/);
  });

  test('a customer reads its own invoices, and gets 404 for anyone else\'s', async () => {
    // Monthly since February 2024: one invoice a month up to the current draft.
    const mine = await call(d, alpha.key, 'GET', '/v1/invoices?limit=100');
    assert.equal(mine.status, 200, mine.text);
    const now = new Date();
    assert.equal(mine.json.data.length, (now.getUTCFullYear() - 2024) * 12 + now.getUTCMonth() - 1 + 1);
    assert.equal(mine.json.data.at(-1).status, 'draft');
    assert.ok(mine.json.data.every((i) => i.customer_id === alpha.id));
    const feb = mine.json.data.find((i) => i.period === '2024-02');
    assert.equal(feb.status, 'finalized');
    const one = await call(d, alpha.key, 'GET', `/v1/invoices/${feb.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.lines.length, 5);
    assert.match((await call(d, alpha.key, 'GET', `/v1/invoices/${feb.id}?format=csv`)).headers.get('content-type'), /^text\/csv/);
    const theirs = (await call(d, beta.key, 'GET', '/v1/invoices?period=2024-03')).json.data[0];
    assert.equal(theirs.customer_id, beta.id);
    const r = await call(d, alpha.key, 'GET', `/v1/invoices/${theirs.id}`);
    assert.equal(r.status, 404);
    assert.equal((await call(d, alpha.key, 'GET', '/v1/invoices/in_00000000000000000000')).status, 404);
    assert.equal((await call(d, beta.key, 'GET', `/v1/invoices/${theirs.id}`)).status, 200);
    // Pages: one at a time, each once.
    const seen = new Set();
    let after = '';
    for (;;) {
      const p = await call(d, alpha.key, 'GET', `/v1/invoices?limit=10${after ? `&after=${after}` : ''}`);
      for (const x of p.json.data) { assert.ok(!seen.has(x.id)); seen.add(x.id); }
      if (!p.json.has_more) break;
      after = p.json.last_id;
    }
    assert.equal(seen.size, mine.json.data.length);
  });

  test('revenue summary: subscriptions, customers, MRR, usage and billed revenue', async () => {
    const r = await call(d, finance, 'GET', '/admin/v1/reports/revenue?period=2024-02');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.closed, true);
    assert.deepEqual(r.json.active_subscriptions.map((s) => [s.tier, s.plan, s.paying, s.trialing]), [['pro', 'pro@1', 2, 0]]);
    assert.deepEqual(r.json.customers, { new: 2, churned: 0, active_at_end: 2 });
    assert.deepEqual(r.json.recurring_revenue, [{ currency: 'USD', mrr_micros: 40000000, mrr: '40.00', arr_micros: 480000000, arr: '480.00' }]);
    const pro = r.json.usage_by_tier.find((u) => u.tier === 'pro');
    assert.equal(pro.requests, 5); // February: Alpha's three, the late one, Beta's
    assert.deepEqual(r.json.billed_totals.map((t) => [t.currency, t.total, t.finalized]), [['USD', '22.75', 1]]);
    assert.equal(r.json.billed_by_tier.find((b) => b.line_type === 'usage_output').amount, '2.25');
    const csv = await call(d, finance, 'GET', '/admin/v1/reports/revenue?period=2024-02&format=csv');
    assert.match(csv.text, /^section,tier,plan,line_type,currency,metric,value\r\n/);
    assert.match(csv.text, /recurring,,,,USD,mrr,40\.00\r\n/);
    const cli = await runMaasd(['report', 'revenue', '--db', d.dbPath, '--period', '2024-02', '--format', 'csv']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, csv.text);
  });

  test('reconciliation reports an edited invoice, line by line', async () => {
    const id = sql(d, "SELECT id FROM invoices WHERE number = 1");
    sql(d, `DROP TRIGGER invoice_lines_no_update; UPDATE invoice_lines SET amount_micros = amount_micros + 10000 WHERE invoice_id = '${id}' AND type = 'usage_output'`);
    const rec = await call(d, finance, 'GET', '/admin/v1/invoices/reconcile?period=2024-02');
    const fields = rec.json.differences.map((x) => `${x.invoice_id} ${x.line_no} ${x.field} ${x.stored} ${x.recomputed}`);
    assert.ok(fields.includes(`${id} 4 amount_micros 2260000 2250000`), fields.join('\n'));
    const c = await runMaasd(['invoices', 'reconcile', '--db', d.dbPath, '--period', '2024-02']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /^maasd: period 2024-02: \d+ differences? between the invoices and the ledger/);
  });
});
