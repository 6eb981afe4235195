// bench/serve.mjs — serving throughput and latency through the real HTTP
// path (authenticated, metered), driven by the official openai client.
//
//   node bench/serve.mjs --model-file PATH [--concurrency 1,4,16,64]
//                        [--max-tokens 64] [--prompt-tokens 512]
//
// It starts build/maasd on an ephemeral port with the model, then measures:
//   - prompt processing: a prompt of --prompt-tokens tokens, max_tokens 1,
//     prompt tokens / time to first token;
//   - the same streamed request run one at a time (the sequential baseline),
//     and C concurrent streams for each C: aggregate generated tokens/s,
//     p50/p99 time-to-first-token and inter-token latency.
// Figures are reported next to the baseline measured in the same run (the
// batching speed-up), never against fixed numbers: the machine is shared.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', 'tests', 'e2e', 'package.json'));
const { default: OpenAI } = await import(require.resolve('openai'));

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const modelFile = arg('model-file');
if (!modelFile) {
  console.error('usage: node bench/serve.mjs --model-file PATH [--concurrency 1,4,16,64] [--max-tokens N] [--prompt-tokens N]');
  process.exit(2);
}
const levels = arg('concurrency', '1,4,16,64').split(',').map(Number);
const maxTokens = Number(arg('max-tokens', '64'));
const promptTokens = Number(arg('prompt-tokens', '512'));
const sequentialRuns = Number(arg('sequential', '4'));
const extraArgs = (arg('daemon-args', '') || '').split(' ').filter(Boolean);
const bin = process.env.MAASD_BIN || join(here, '..', 'build', 'maasd');

const dir = mkdtempSync(join(tmpdir(), 'maasd-bench-'));
const daemon = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'bench.db'),
  '--model', `bench=${modelFile}`, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise((resolve, reject) => {
  let buf = '';
  daemon.stderr.on('data', (d) => {
    buf += d;
    for (const line of buf.split('\n')) {
      try { const o = JSON.parse(line); if (o.msg === 'listening') resolve(o.port); } catch { /* partial */ }
    }
  });
  daemon.on('exit', (c) => reject(new Error(`maasd exited ${c}: ${buf}`)));
});
// A customer on a plan without practical limits, made through the admin API
// with the operator key the daemon wrote at first start (docs/billing.md):
// the benchmark measures the engine and the HTTP path, not rate limits.
const creds = Object.fromEntries(readFileSync(join(dir, 'maasd-credentials.txt'), 'utf8')
  .split('\n').map((l) => l.match(/^([A-Z_]+)=(.*)$/)).filter(Boolean).map((m) => [m[1], m[2]]));
async function admin(path, body) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST', body: JSON.stringify(body),
    headers: { Authorization: `Bearer ${creds.MAASD_ADMIN_KEY}`, 'Content-Type': 'application/json' },
  });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`${path}: ${JSON.stringify(j)}`);
  return j;
}
await admin('/admin/v1/plans/bench/versions', {
  name: 'Benchmark', billing_interval: 'month', base_fee_micros: 0, included_tokens: 0,
  price_input_per_1m_micros: 0, price_output_per_1m_micros: 0, requests_per_minute: 100000000,
  tokens_per_minute: 100000000000, max_concurrent_requests: 100000, max_tokens_per_request: 100000,
  hard_cap: false,
});
const customer = await admin('/admin/v1/customers', { name: 'Benchmark' });
await admin(`/admin/v1/customers/${customer.id}/subscription`, { plan: 'bench' });
const apiKey = (await admin(`/admin/v1/customers/${customer.id}/keys`, { scopes: ['inference'] })).secret;
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0, timeout: 600000 });

// Random token ids avoid tokenizer effects; end-of-text is banned so every
// stream generates exactly max_tokens.
const eos = (await (await fetch(`http://127.0.0.1:${port}/v1/tokenize`, {
  method: 'POST', headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ model: 'bench', prompt: '<|endoftext|>', add_special: false, parse_special: true }),
})).json()).tokens[0];
function prompt(n, seed) {
  const ids = [];
  let x = seed * 2654435761 % 4294967296;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; ids.push(3 + (x % 500)); }
  return ids;
}

async function stream(n, seed, maxTok) {
  const t0 = performance.now();
  let first = 0, last = 0, tokens = 0;
  const gaps = [];
  const s = await client.completions.create({
    model: 'bench', prompt: prompt(n, seed), max_tokens: maxTok, temperature: 0, stream: true,
    logit_bias: { [eos]: -100 }, stream_options: { include_usage: true },
  });
  let usage = null;
  for await (const chunk of s) {
    const now = performance.now();
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices?.length) continue;
    if (!first) first = now; else gaps.push(now - last);
    last = now;
    tokens++;
  }
  return { ttft: first - t0, gaps, tokens: usage ? usage.completion_tokens : tokens, total: last - t0 };
}

const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const f = (x, d = 1) => Number.isFinite(x) ? x.toFixed(d) : 'n/a';

try {
  await stream(16, 999, 4); // warm-up: page the model in

  const pp = [];
  for (let i = 0; i < 2; i++) pp.push(await stream(promptTokens, 100 + i, 1));
  const ppRate = promptTokens / (Math.min(...pp.map((r) => r.ttft)) / 1000);
  console.log(`prompt processing: ${promptTokens} tokens, ${f(ppRate)} tokens/s (time to first token ${f(Math.min(...pp.map((r) => r.ttft)), 0)} ms)`);

  const seq = [];
  const t0 = performance.now();
  for (let i = 0; i < sequentialRuns; i++) seq.push(await stream(32, i, maxTokens));
  const seqTime = (performance.now() - t0) / 1000;
  const seqTokens = seq.reduce((a, r) => a + r.tokens, 0);
  const seqRate = seqTokens / seqTime;
  const seqItl = pct(seq.flatMap((r) => r.gaps), 0.99);
  console.log(`sequential baseline: ${sequentialRuns} requests one at a time, ${f(seqRate)} tokens/s, p50 TTFT ${f(pct(seq.map((r) => r.ttft), 0.5), 0)} ms, p99 ITL ${f(seqItl)} ms`);
  console.log('');
  console.log('| streams | aggregate tokens/s | speed-up vs sequential | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | p99 ITL / sequential |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const c of levels) {
    const t1 = performance.now();
    const rs = await Promise.all(Array.from({ length: c }, (_, i) => stream(32, 1000 + i, maxTokens)));
    const wall = (performance.now() - t1) / 1000;
    const tokens = rs.reduce((a, r) => a + r.tokens, 0);
    const gaps = rs.flatMap((r) => r.gaps);
    const ttfts = rs.map((r) => r.ttft);
    const rate = tokens / wall;
    console.log(`| ${c} | ${f(rate)} | ${f(rate / seqRate, 2)}x | ${f(pct(ttfts, 0.5), 0)} | ${f(pct(ttfts, 0.99), 0)} | ${f(pct(gaps, 0.5))} | ${f(pct(gaps, 0.99))} | ${f(pct(gaps, 0.99) / seqItl, 2)}x |`);
  }
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
