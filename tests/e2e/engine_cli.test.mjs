// engine_cli.test.mjs — `maasd generate` on real models: the trained
// stories260K from the shared data (skipped without it) and the built-in
// demo model (always).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runMaasd } from './lib/daemon.mjs';

const shared = process.env.MAASD_SHARED || join(process.cwd(), '..', '..', '..', 'shared');
const stories = join(shared, 'models', 'stories260K.gguf');

test('generate: stories260K greedy continuation is the reference story', { skip: !existsSync(stories) && `shared data not found at ${shared}` }, async () => {
  const expected = JSON.parse(readFileSync(join(shared, 'models', 'stories260K.expected.json'), 'utf8'));
  const ids = await runMaasd(['generate', '--model', stories, '--prompt-ids', '1', '--temperature', '0', '--max-tokens', '200', '--ids']);
  assert.equal(ids.code, 0, ids.stderr);
  assert.deepEqual(ids.stdout.trim().split(' ').map(Number), expected.expected_token_ids);
  const text = await runMaasd(['generate', '--model', stories, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '40']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^, there was a little girl named Lily\./);
});

test('generate: the built-in demo model, seeded, is reproducible', async () => {
  const a = await runMaasd(['generate', '--model', 'builtin:demo', '--prompt', 'Hello', '--max-tokens', '12', '--seed', '7', '--ids']);
  const b = await runMaasd(['generate', '--model', 'builtin:demo', '--prompt', 'Hello', '--max-tokens', '12', '--seed', '7', '--ids']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok(a.stdout.trim().split(' ').length >= 1);
});

test('generate: bad arguments are one clear line', async () => {
  let r = await runMaasd(['generate', '--model', 'builtin:demo']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: maasd generate/);
  r = await runMaasd(['generate', '--model', '/no/such/file.gguf', '--prompt', 'x']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^maasd: .*no\/such\/file\.gguf/);
  r = await runMaasd(['generate', '--model', 'builtin:demo', '--prompt-ids', '1,x']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--prompt-ids/);
});
