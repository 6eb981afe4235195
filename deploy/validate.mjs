// validate.mjs — static checks of the deployment files against the code
// (run by deploy/validate.sh, itself run by `make test`).
//
// Every YAML file must parse cleanly (the `yaml` package pinned in
// tests/e2e/package.json, duplicate keys are errors), and everything the
// manifests say about maasd must be true of this checkout and binary:
// every --flag is a setting of `maasd serve --help`, every config-file key
// too, every probe and scrape path is a route of api/routes.c, every port
// is 8080, every COPY source and referenced file exists, names that refer
// to each other (volumes, secrets, claims, ports, selectors) match, and
// every stop timeout outlasts the daemon's shutdown timeout.
//
//   MAASD_BIN=build/maasd node deploy/validate.mjs
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(ROOT, 'tests/e2e/package.json'));
const YAML = require('yaml');
const BIN = process.env.MAASD_BIN || join(ROOT, 'build/maasd');
const PORT = 8080;

let passed = 0, failed = 0;
function check(what, ok, detail = '') {
  if (ok) { passed++; console.log(`ok    ${what}`); }
  else { failed++; console.log(`FAIL  ${what}${detail ? `: ${detail}` : ''}`); }
  return ok;
}
const read = (p) => readFileSync(join(ROOT, p), 'utf8');

// ---- what the code says ---------------------------------------------------------
const help = execFileSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
const SETTINGS = new Map();  // name -> metavar
for (const m of help.matchAll(/^ {2}--([a-z0-9-]+) (\S+)/gm)) SETTINGS.set(m[1], m[2]);
check('maasd serve --help lists the settings', SETTINGS.size > 10, `${SETTINGS.size} found`);
const ROUTES = new Set();
for (const m of read('api/routes.c').matchAll(/\{"(GET|POST)", "([^"]+)"/g)) ROUTES.add(`${m[1]} ${m[2]}`);
check('api/routes.c lists the routes', ROUTES.has('GET /healthz') && ROUTES.has('GET /metrics'));
const DEFAULT_SHUTDOWN_S = 30;

function durationSeconds(v) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(String(v));
  if (!m) return NaN;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
}

// A serve command line (array of words): flags exist, values present,
// listen on PORT, file paths under `mounts` (when given). Returns the flags.
function checkServeArgs(where, words, { mounts } = {}) {
  const flags = new Map();
  const i0 = words.indexOf('serve');
  check(`${where}: runs \`maasd serve\``, words[0]?.endsWith('maasd') && i0 === 1, words.slice(0, 2).join(' '));
  for (let i = i0 + 1; i < words.length; i++) {
    const w = String(words[i]);
    if (!w.startsWith('--')) { check(`${where}: '${w}' follows a flag`, false); continue; }
    const [name, inline] = w.slice(2).split(/=(.*)/s);
    const known = SETTINGS.has(name);
    check(`${where}: --${name} is a setting`, known);
    const value = inline ?? (SETTINGS.get(name) === 'BOOL' ? 'true' : words[++i]);
    check(`${where}: --${name} has a value`, value !== undefined && !String(value).startsWith('--'));
    flags.set(name, String(value));
  }
  if (flags.has('listen')) check(`${where}: listens on port ${PORT}`, flags.get('listen').endsWith(`:${PORT}`), flags.get('listen'));
  if (mounts) {
    for (const f of ['db', 'key-pepper-file', 'metrics-token-file', 'tls-cert', 'tls-key', 'backup-dir']) {
      if (!flags.has(f)) continue;
      const p = flags.get(f);
      check(`${where}: --${f} ${p} is on a mounted volume`, mounts.some((m) => p === m || p.startsWith(m.replace(/\/?$/, '/'))));
    }
  }
  if (flags.has('tls-cert') || flags.has('tls-key'))
    check(`${where}: --tls-cert and --tls-key together`, flags.has('tls-cert') && flags.has('tls-key'));
  return flags;
}
const shutdownOf = (flags) => (flags.has('shutdown-timeout') ? durationSeconds(flags.get('shutdown-timeout')) : DEFAULT_SHUTDOWN_S);

function parseYamlFile(rel) {
  const docs = YAML.parseAllDocuments(read(rel), { uniqueKeys: true, strict: true, prettyErrors: true });
  const problems = docs.flatMap((d) => [...d.errors, ...d.warnings].map((e) => e.message));
  check(`${rel}: well-formed YAML`, problems.length === 0, problems.join('; '));
  return docs.map((d) => d.toJS());
}

// ---- every YAML file under deploy/ ------------------------------------------------
const yamlFiles = [];
(function walk(dir) {
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory() && e.name !== 'secrets') walk(rel);
    else if (/\.ya?ml$/.test(e.name)) yamlFiles.push(rel);
  }
})('deploy');
const parsed = Object.fromEntries(yamlFiles.map((f) => [f, parseYamlFile(f)]));
check('deploy/ has compose, prometheus and k8s YAML', ['deploy/compose.yaml', 'deploy/prometheus.yml', 'deploy/k8s/deployment.yaml'].every((f) => f in parsed));

// ---- Dockerfile (no Dockerfile linter is packaged for Debian: structure here) -------
{
  const text = read('Dockerfile');
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const KNOWN = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
  const instr = lines.map((l) => { const [k, ...r] = l.split(/\s+/); return { k: k.toUpperCase(), rest: r.join(' '), raw: l }; });
  check('Dockerfile: every line is a known instruction', instr.every((i) => KNOWN.has(i.k)), instr.filter((i) => !KNOWN.has(i.k)).map((i) => i.raw).join(' | '));
  check('Dockerfile: starts with FROM', instr[0]?.k === 'FROM' || (instr[0]?.k === 'ARG' && instr.find((i) => i.k !== 'ARG')?.k === 'FROM'));
  const stages = instr.filter((i) => i.k === 'FROM').map((i) => (/\bAS\s+(\S+)/i.exec(i.rest) || [])[1]).filter(Boolean);
  for (const c of instr.filter((i) => i.k === 'COPY' || i.k === 'ADD')) {
    const words = c.rest.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='));
    const srcs = words.filter((w) => !w.startsWith('--')).slice(0, -1);
    if (from) check(`Dockerfile: COPY ${from} names a stage`, stages.includes(from.slice(7)), from);
    else for (const s of srcs) check(`Dockerfile: COPY source '${s}' exists`, existsSync(join(ROOT, s)));
  }
  const cmd = instr.filter((i) => i.k === 'CMD').pop();
  let cmdWords = null;
  try { cmdWords = JSON.parse(cmd.rest); } catch { /* not exec form */ }
  if (check('Dockerfile: CMD in exec form (maasd is PID 1 and gets SIGTERM/SIGHUP)', Array.isArray(cmdWords))) checkServeArgs('Dockerfile CMD', cmdWords);
  check(`Dockerfile: EXPOSE ${PORT}`, instr.some((i) => i.k === 'EXPOSE' && i.rest.split(/\s+/).includes(String(PORT))));
  const user = instr.filter((i) => i.k === 'USER').pop();
  check('Dockerfile: runs as a non-root user', !!user && !/^(root|0)(:|$)/.test(user.rest));
  check('Dockerfile: VOLUME /var/lib/maasd', instr.some((i) => i.k === 'VOLUME' && i.rest.includes('/var/lib/maasd')));
  const hc = instr.find((i) => i.k === 'HEALTHCHECK');
  const hcPath = hc && /https?:\/\/[^/\s]+(\/[^\s"]*)/.exec(hc.rest);
  check('Dockerfile: HEALTHCHECK path is a route', !!hcPath && ROUTES.has(`GET ${hcPath[1]}`), hcPath?.[1]);
  check('Dockerfile: builds with deploy/install-deps.sh and make build', text.includes('deploy/install-deps.sh') && /make build/.test(text));
}

// ---- Compose + Prometheus --------------------------------------------------------------
{
  const c = parsed['deploy/compose.yaml'][0];
  const m = c?.services?.maasd;
  check('compose: a maasd service', !!m);
  const ctx = resolve(ROOT, 'deploy', m.build?.context ?? '.');
  check('compose: builds the repository root', ctx === ROOT, ctx);
  check('compose: with its Dockerfile', existsSync(join(ctx, m.build?.dockerfile ?? 'Dockerfile')) && (m.build?.dockerfile ?? 'Dockerfile') === 'Dockerfile');
  const vols = (m.volumes ?? []).map((v) => String(v).split(':'));
  const data = vols.find(([, target]) => target === '/var/lib/maasd');
  check('compose: a named volume at /var/lib/maasd', !!data && data[0] in (c.volumes ?? {}), JSON.stringify(vols));
  const secrets = m.secrets ?? [];
  const flags = checkServeArgs('compose maasd', m.command, { mounts: ['/var/lib/maasd', ...secrets.map((s) => `/run/secrets/${s}`)] });
  for (const s of secrets) check(`compose: secret ${s} is defined`, !!c.secrets?.[s]);
  const gen = read('deploy/compose-secrets.sh');
  for (const [name, s] of Object.entries(c.secrets ?? {}))
    check(`compose: secret ${name}'s file is made by compose-secrets.sh`, s.file?.startsWith('./secrets/') && gen.includes(`$dir/${s.file.slice('./secrets/'.length)}`), s.file);
  check(`compose: publishes ${PORT}`, (m.ports ?? []).some((p) => String(p).endsWith(`:${PORT}`)));
  const test = (m.healthcheck?.test ?? []).join(' ');
  const hp = /https?:\/\/[^/\s]+(\/\S*)/.exec(test);
  check('compose: healthcheck path is a route', !!hp && ROUTES.has(`GET ${hp[1]}`), hp?.[1]);
  check('compose: healthcheck speaks the scheme served', !!hp && test.includes(flags.has('tls-cert') ? 'https://' : 'http://'));
  check('compose: stop_grace_period outlasts --shutdown-timeout', durationSeconds(m.stop_grace_period) > shutdownOf(flags), `${m.stop_grace_period} vs ${shutdownOf(flags)}s`);
  const p = c.services.prometheus;
  check('compose: a prometheus service', !!p);
  const promMount = (p.volumes ?? []).map((v) => String(v).split(':')).find(([, t]) => t === '/etc/prometheus/prometheus.yml');
  check('compose: prometheus mounts deploy/prometheus.yml', !!promMount && resolve(ROOT, 'deploy', promMount[0]) === join(ROOT, 'deploy/prometheus.yml'));

  const prom = parsed['deploy/prometheus.yml'][0];
  const job = prom.scrape_configs?.find((j) => j.job_name === 'maasd');
  check('prometheus: a maasd job', !!job);
  check('prometheus: scrapes a route', ROUTES.has(`GET ${job.metrics_path ?? '/metrics'}`));
  check('prometheus: target is the maasd service on its port', (job.static_configs ?? []).flatMap((s) => s.targets).includes(`maasd:${PORT}`));
  check('prometheus: scheme matches the daemon', (job.scheme ?? 'http') === (flags.has('tls-cert') ? 'https' : 'http'));
  for (const f of [job.authorization?.credentials_file, job.tls_config?.ca_file].filter(Boolean)) {
    const name = /^\/run\/secrets\/(.+)$/.exec(f)?.[1];
    check(`prometheus: ${f} is a secret mounted in its container`, !!name && (p.secrets ?? []).includes(name));
  }
  const tokenSecret = /^\/run\/secrets\/(.+)$/.exec(flags.get('metrics-token-file') ?? '')?.[1];
  check('prometheus: uses the token file maasd reads', job.authorization?.credentials_file === `/run/secrets/${tokenSecret}`);
}

// ---- Kubernetes --------------------------------------------------------------------------
{
  const docs = Object.entries(parsed).filter(([f]) => f.startsWith('deploy/k8s/')).flatMap(([f, ds]) => ds.map((d) => ({ f, d })));
  for (const { f, d } of docs.filter((x) => x.d?.kind !== 'Kustomization')) check(`${f}: ${d?.kind}/${d?.metadata?.name} has apiVersion, kind, metadata.name`, !!(d?.apiVersion && d?.kind && d?.metadata?.name));
  const find = (kind, name) => docs.map((x) => x.d).find((d) => d?.kind === kind && (!name || d.metadata.name === name));
  const kust = find('Kustomization') ?? parsed['deploy/k8s/kustomization.yaml']?.[0];
  for (const r of kust?.resources ?? []) check(`k8s: kustomization resource ${r} exists`, existsSync(join(ROOT, 'deploy/k8s', r)));
  const dep = find('Deployment', 'maasd');
  check('k8s: a maasd Deployment', !!dep);
  const spec = dep.spec.template.spec;
  const ctr = spec.containers.find((x) => x.name === 'maasd');
  check('k8s: one replica (one SQLite writer)', dep.spec.replicas === 1 && dep.spec.strategy?.type === 'Recreate');
  const mounts = (ctr.volumeMounts ?? []).map((v) => v.mountPath);
  const flags = checkServeArgs('k8s maasd container', ctr.args ?? ctr.command, { mounts });
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])])
    for (const vm of c.volumeMounts ?? []) check(`k8s: ${c.name} mounts defined volume ${vm.name}`, volumes.has(vm.name));
  const port = (ctr.ports ?? []).find((p) => p.containerPort === PORT);
  check(`k8s: container port ${PORT} is named`, !!port?.name);
  const scheme = flags.has('tls-cert') ? 'HTTPS' : 'HTTP';
  for (const [probe, want] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz'], ['startupProbe', null]]) {
    const g = ctr[probe]?.httpGet;
    if (!g && !want) continue;
    check(`k8s: ${probe} is an httpGet`, !!g);
    if (!g) continue;
    if (want) check(`k8s: ${probe} on ${want}`, g.path === want, g.path);
    check(`k8s: ${probe} path is a route`, ROUTES.has(`GET ${g.path}`), g.path);
    check(`k8s: ${probe} port is the container's`, g.port === port?.name || g.port === PORT, String(g.port));
    check(`k8s: ${probe} scheme ${scheme}`, (g.scheme ?? 'HTTP') === scheme);
  }
  const res = ctr.resources ?? {};
  check('k8s: memory and cpu requests set, equal to limits', !!res.requests?.memory && !!res.requests?.cpu &&
    res.requests.memory === res.limits?.memory && String(res.requests.cpu) === String(res.limits?.cpu));
  if (flags.has('threads')) check('k8s: --threads matches the CPU limit', flags.get('threads') === String(res.limits?.cpu));
  check('k8s: terminationGracePeriodSeconds outlasts --shutdown-timeout', spec.terminationGracePeriodSeconds > shutdownOf(flags));
  const claim = [...volumes.values()].find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim?.claimName;
  check('k8s: the data volume is the PersistentVolumeClaim', !!claim && !!find('PersistentVolumeClaim', claim));
  const dataMount = ctr.volumeMounts.find((v) => volumes.get(v.name)?.persistentVolumeClaim);
  check('k8s: the claim is mounted at /var/lib/maasd', dataMount?.mountPath === '/var/lib/maasd');
  // Secrets: each file flag names a key of the Secret mounted there.
  for (const f of ['metrics-token-file', 'tls-cert', 'tls-key']) {
    const p = flags.get(f);
    if (!p) continue;
    const vm = ctr.volumeMounts.find((v) => p.startsWith(`${v.mountPath}/`));
    const sec = vm && volumes.get(vm.name)?.secret;
    const def = sec && find('Secret', sec.secretName);
    const key = vm && p.slice(vm.mountPath.length + 1);
    check(`k8s: --${f} is key '${key}' of Secret ${sec?.secretName}`, !!def && key in { ...def.data, ...def.stringData });
  }
  const init = (spec.initContainers ?? []).find((x) => x.name === 'key-pepper');
  const pepper = flags.get('key-pepper-file');
  if (pepper) {
    const script = (init?.command ?? []).join(' ');
    const src = /install -m 0600 (\S+) (\S+)/.exec(script);
    check('k8s: the key pepper is installed owner-only where --key-pepper-file points', !!src && src[2] === pepper);
    if (src) {
      const vm = init.volumeMounts.find((v) => src[1].startsWith(`${v.mountPath}/`));
      const sec = vm && volumes.get(vm.name)?.secret;
      const def = sec && find('Secret', sec.secretName);
      check(`k8s: the pepper comes from Secret ${sec?.secretName}`, !!def && src[1].slice(vm.mountPath.length + 1) in { ...def.data, ...def.stringData });
    }
  }
  const svc = find('Service', 'maasd');
  check('k8s: a maasd Service', !!svc);
  const labels = dep.spec.template.metadata.labels;
  check('k8s: Service selects the pods', Object.entries(svc.spec.selector).every(([k, v]) => labels[k] === v));
  check('k8s: Deployment selector matches its pods', Object.entries(dep.spec.selector.matchLabels).every(([k, v]) => labels[k] === v));
  check(`k8s: Service targets the container port`, svc.spec.ports.some((p) => p.targetPort === port?.name || p.targetPort === PORT) && svc.spec.ports.some((p) => p.port === PORT));
  check('k8s: images are the one compose builds', [...spec.containers, ...(spec.initContainers ?? [])].every((x) => x.image === parsed['deploy/compose.yaml'][0].services.maasd.image));
}

// ---- systemd unit and its config file ---------------------------------------------------------
{
  const unit = read('deploy/maasd.service');
  const get = (k) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1].trim());
  const exec = get('ExecStart')[0]?.split(/\s+/) ?? [];
  checkServeArgs('maasd.service ExecStart', exec);
  const cfgIdx = exec.indexOf('--config');
  const cfgPath = cfgIdx > 0 ? exec[cfgIdx + 1] : null;
  check('maasd.service: the config file is in ConfigurationDirectory', !!cfgPath && cfgPath.startsWith(`/etc/${get('ConfigurationDirectory')[0]}/`));
  const conf = read('deploy/maasd.conf');
  const words = ['maasd', 'serve'];
  for (const line of conf.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#')) continue;
    const eq = l.indexOf('=');
    check(`maasd.conf: '${l}' is key = value`, eq > 0);
    words.push(`--${l.slice(0, eq).trim()}`, l.slice(eq + 1).trim());
  }
  const flags = checkServeArgs('maasd.conf', words);
  const state = `/var/lib/${get('StateDirectory')[0]}`;
  for (const f of ['db', 'key-pepper-file', 'backup-dir'])
    if (flags.has(f)) check(`maasd.conf: --${f} is in the StateDirectory (writable under ProtectSystem=strict)`, flags.get(f).startsWith(`${state}/`));
  for (const f of ['tls-cert', 'tls-key', 'metrics-token-file'])
    if (flags.has(f)) check(`maasd.conf: --${f} is in /etc/maasd`, flags.get(f).startsWith('/etc/maasd/'));
  check('maasd.service: TimeoutStopSec outlasts --shutdown-timeout', durationSeconds(get('TimeoutStopSec')[0]) > shutdownOf(flags));
  for (const [k, v] of [['Restart', 'on-failure'], ['KillSignal', 'SIGTERM'], ['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'],
    ['PrivateTmp', 'yes'], ['MemoryDenyWriteExecute', 'yes'], ['StateDirectory', 'maasd']])
    check(`maasd.service: ${k}=${v}`, get(k).includes(v));
  check('maasd.service: RestrictAddressFamilies and SystemCallFilter set', get('RestrictAddressFamilies').length > 0 && get('SystemCallFilter').length > 0);
  check('maasd.service: a user of its own', get('User').length > 0 || get('DynamicUser').includes('yes'));
  check('maasd.service: ExecReload sends SIGHUP', /kill -HUP \$MAINPID/.test(get('ExecReload')[0] ?? ''));
}

console.log(`\ndeploy/validate.mjs: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
