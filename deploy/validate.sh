#!/usr/bin/env bash
# validate.sh — check the deployment files (deploy/) against this checkout,
# with the checkers Debian and npm provide. Run by `make test` (test-deploy).
#
#   MAASD_BIN=build/maasd deploy/validate.sh
#
# 1. deploy/validate.mjs: YAML well-formedness (npm `yaml`, pinned in
#    tests/e2e/package.json) and cross-checks of every flag, config key,
#    route, port, file and name the manifests mention (see its header).
#    The Dockerfile is checked structurally there: no Dockerfile linter is
#    packaged for Debian (hadolint is not).
# 2. systemd-analyze verify and security (Debian's systemd) on the unit.
# 3. The daemon under W^X (the kernel's PR_SET_MDWE, what the unit's
#    MemoryDenyWriteExecute=yes amounts to): a completion through OpenBLAS,
#    and PCRE2 pre-tokenization when a BPE vocabulary is in ../shared.
# 4. kubectl kustomize deploy/k8s and docker compose config, when those
#    clients are installed (they are not Debian packages: optional).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MAASD_BIN:-$root/build/maasd}
passed=0 failed=0 skipped=0
ok() { echo "ok    $*"; passed=$((passed + 1)); }
bad() { echo "FAIL  $*"; failed=$((failed + 1)); }
skip() { echo "skip  $*"; skipped=$((skipped + 1)); }
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$bin" ] || { echo "validate.sh: no maasd binary at $bin (make build)" >&2; exit 1; }

# 1 ---------------------------------------------------------------------------
if node "$root/deploy/validate.mjs" > "$work/mjs.out" 2>&1; then
  ok "deploy/validate.mjs ($(tail -1 "$work/mjs.out" | sed 's/.*: //'))"
else
  grep -E '^FAIL' "$work/mjs.out" || tail -5 "$work/mjs.out"
  bad "deploy/validate.mjs ($(tail -1 "$work/mjs.out" | sed 's/.*: //'))"
fi

# 2 ---------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify needs ExecStart's binary to exist: point it at this build.
  mkdir -p "$work/unit"
  sed "s|/usr/local/bin/maasd|$bin|" "$root/deploy/maasd.service" > "$work/unit/maasd.service"
  if systemd-analyze verify "$work/unit/maasd.service" > "$work/verify.out" 2>&1 && ! [ -s "$work/verify.out" ]; then
    ok "systemd-analyze verify deploy/maasd.service"
  else
    cat "$work/verify.out"
    bad "systemd-analyze verify deploy/maasd.service"
  fi
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    # --threshold is the exposure level times ten.
    if out=$(systemd-analyze security --offline=true --threshold=25 "$work/unit/maasd.service" 2>&1); then
      ok "systemd-analyze security: $(echo "$out" | tail -1 | sed 's/.*maasd.service: //')"
    else
      echo "$out" | tail -1
      bad "systemd-analyze security: exposure over 2.5"
    fi
  else
    skip "systemd-analyze security --offline (systemd older than 250)"
  fi
else
  skip "systemd-analyze (not installed)"
fi

# 3 ---------------------------------------------------------------------------
cat > "$work/mdwe.c" <<'EOF'
/* Run a command with PR_SET_MDWE (refuse memory that is, or becomes, both
 * writable and executable): the kernel's MemoryDenyWriteExecute. */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    if (argc < 2 || prctl(65 /* PR_SET_MDWE */, 1 /* REFUSE_EXEC_GAIN */, 0L, 0L, 0L) != 0)
        return 77;
    execv(argv[1], argv + 1);
    return 78;
}
EOF
if ! cc -o "$work/mdwe" "$work/mdwe.c" 2>/dev/null; then
  skip "W^X run (no C compiler)"
elif "$work/mdwe" /bin/true; [ $? -eq 77 ]; then
  skip "W^X run (kernel without PR_SET_MDWE, before Linux 6.3)"
else
  "$work/mdwe" "$bin" serve --listen 127.0.0.1:0 --db "$work/db/maasd.db" 2> "$work/serve.log" &
  pid=$!
  port=""
  for _ in $(seq 1 300); do
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$work/serve.log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  key=$(sed -n 's/^MAASD_DEMO_KEY=//p' "$work/db/maasd-credentials.txt" 2>/dev/null)
  if [ -n "$port" ] && [ -n "$key" ] && curl -fsS "http://127.0.0.1:$port/v1/completions" \
       -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
       -d '{"model":"maasd-demo","prompt":"Once upon a time","max_tokens":4}' | grep -q '"text_completion"'; then
    ok "the daemon serves a completion under W^X (MemoryDenyWriteExecute=yes)"
  else
    tail -5 "$work/serve.log"
    bad "the daemon under W^X"
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""
  shared=${MAASD_SHARED:-$root/../shared}
  vocab="$shared/tokenizers/ggml-vocab-gpt-2.gguf"
  if [ -f "$vocab" ]; then
    want=$("$bin" tokenize --model "$vocab" --ids "Hello world, it's 2026!" 2>&1)
    got=$("$work/mdwe" "$bin" tokenize --model "$vocab" --ids "Hello world, it's 2026!" 2>&1)
    if [ -n "$want" ] && [ "$want" = "$got" ]; then
      ok "PCRE2 pre-tokenization under W^X gives the same tokens (JIT falls back)"
    else
      echo "without: $want"; echo "with:    $got"
      bad "PCRE2 pre-tokenization under W^X"
    fi
  else
    skip "PCRE2 under W^X (no BPE vocabulary in $shared/tokenizers)"
  fi
fi

# 4 ---------------------------------------------------------------------------
if command -v kubectl >/dev/null 2>&1; then
  if kubectl kustomize "$root/deploy/k8s" > "$work/k8s.yaml" 2> "$work/k8s.err"; then
    ok "kubectl kustomize deploy/k8s ($(grep -c '^kind:' "$work/k8s.yaml") objects)"
  else
    cat "$work/k8s.err"
    bad "kubectl kustomize deploy/k8s"
  fi
else
  skip "kubectl kustomize (kubectl not installed)"
fi
if docker compose version >/dev/null 2>&1; then
  # On a copy, with the secret files made as an operator would.
  cp -r "$root/deploy" "$work/deploy" && cp "$root/Dockerfile" "$work/"
  if "$work/deploy/compose-secrets.sh" > /dev/null &&
     (cd "$work/deploy" && docker compose -f compose.yaml config -q) > "$work/compose.err" 2>&1; then
    ok "docker compose config"
  else
    cat "$work/compose.err"
    bad "docker compose config"
  fi
else
  skip "docker compose config (the compose plugin is not installed)"
fi

echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
