// daemon.mjs — start the real maasd binary for a test and talk to it.
//
// Every daemon gets its own temporary directory (database, credentials) and
// an ephemeral loopback port, learnt from its "listening" log line. stderr
// is kept line by line so tests can assert on logs.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import net from 'node:net';

export const BIN = process.env.MAASD_BIN;
if (!BIN) throw new Error('set MAASD_BIN to the maasd binary');
// Sanitizer builds are several times slower: scale waits, never assert times.
export const SANITIZED = !!process.env.MAASD_SANITIZED;
export const SLOW = SANITIZED ? 5 : 1;

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'maasd-e2e-'));
}

export async function startDaemon({ args = [], env = {}, dir = tempDir(), db } = {}) {
  const dbPath = db ?? join(dir, 'maasd.db');
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', dbPath, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = {
    proc, dir, dbPath, lines: [], stdout: '', exited: null,
    logs() { return this.lines.map((l) => { try { return JSON.parse(l); } catch { return { raw: l }; } }); },
    stderrText() { return this.lines.join('\n'); },
  };
  let buf = '';
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (s) => { d.stdout += s; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => { // after stderr is fully read
    d.exited = { code, signal };
    resolve(d.exited);
  }));
  d.waitExit = () => exited;
  const listening = new Promise((resolve, reject) => {
    proc.stderr.on('data', (s) => {
      buf += s;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        d.lines.push(line);
        if (process.env.MAASD_E2E_VERBOSE) process.stderr.write(`[maasd] ${line}\n`);
        try {
          const o = JSON.parse(line);
          if (o.msg === 'listening') resolve(o.port);
        } catch { /* not JSON: a start-up error line */ }
      }
    });
    exited.then((e) => reject(new Error(`maasd exited before listening (${JSON.stringify(e)}): ${d.lines.join('\n')}`)));
  });
  d.port = await withTimeout(listening, 60000 * SLOW, 'daemon start');
  d.url = `http://127.0.0.1:${d.port}`;
  d.stop = async (signal = 'SIGTERM') => {
    if (!d.exited) proc.kill(signal);
    return d.waitExit();
  };
  d.cleanup = async () => {
    await d.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return d;
}

// Run `maasd ARGS...` to completion; resolves {code, stdout, stderr}.
export function runMaasd(args, { env = {}, input } = {}) {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (s) => { stdout += s; });
    p.stderr.on('data', (s) => { stderr += s; });
    if (input !== undefined) p.stdin.end(input); else p.stdin.end();
    // 'close', not 'exit': only then has all of the output been read.
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

// Send raw bytes and collect the raw response (for what fetch cannot send).
export function rawRequest(port, bytes, { timeoutMs = 10000 * SLOW } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(timeoutMs, () => { sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); });
    sock.write(bytes);
  });
}

export function parseRawResponse(text) {
  const [head, ...rest] = text.split('\r\n\r\n');
  const [statusLine, ...hdrs] = head.split('\r\n');
  const headers = {};
  for (const h of hdrs) {
    const i = h.indexOf(':');
    headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The keys the daemon wrote, on first start, to the credentials file next
// to its database (see docs/billing.md): MAASD_ADMIN_KEY, MAASD_DEMO_KEY.
export function credentials(d) {
  const text = readFileSync(join(dirname(d.dbPath), 'maasd-credentials.txt'), 'utf8');
  const out = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Z_]+)=(.*)$/);
    if (m) out[m[1]] = m[2];
  }
  return out;
}
export const adminKey = (d) => credentials(d).MAASD_ADMIN_KEY;
export const demoKey = (d) => credentials(d).MAASD_DEMO_KEY;

// A new customer on `plan` with an inference + usage:read key, made through
// the admin API. Tests that need headroom use 'enterprise' (32 concurrent
// requests, 6000 a minute); the demo customer is on 'free'.
export async function newCustomer(d, { plan = 'enterprise', name = 'Test customer', scopes = ['inference', 'usage:read'] } = {}) {
  const admin = adminKey(d);
  const call = async (path, body) => {
    const r = await fetch(`${d.url}${path}`, {
      method: 'POST', body: JSON.stringify(body),
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    });
    const json = await r.json();
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  const c = await call('/admin/v1/customers', { name });
  await call(`/admin/v1/customers/${c.id}/subscription`, { plan });
  const k = await call(`/admin/v1/customers/${c.id}/keys`, { scopes });
  return { id: c.id, key: k.secret, keyId: k.id };
}

// logit_bias that keeps a model from ending early: its end-of-text token
// (asked of the model's own tokenizer) banned.
export async function noEos(d, key, model = 'maasd-demo') {
  const r = await fetch(`${d.url}/v1/tokenize`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt: '<|endoftext|>', add_special: false, parse_special: true }),
  });
  const j = await r.json();
  if (j.tokens?.length !== 1) throw new Error(`no single end-of-text token: ${JSON.stringify(j)}`);
  return { [j.tokens[0]]: -100 };
}
