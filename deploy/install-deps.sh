#!/usr/bin/env bash
# install-deps.sh — the one place that installs what maasd needs.
#
# Used by the Makefile (`make deps`, and so `make run` / `make test`), by
# .ci/run through `make test`, and by the Dockerfile. Idempotent: when every
# package is already installed it only checks, in well under a second, and
# never touches the network.
#
#   deploy/install-deps.sh            build + runtime packages
#   deploy/install-deps.sh --test     also what `make test` needs (cmocka,
#                                     clang for the fuzzer, Node.js for the
#                                     end-to-end tests and their npm packages)
#   deploy/install-deps.sh --runtime  only the shared libraries the binary
#                                     needs (the Docker runtime stage)
set -euo pipefail

mode=build
case "${1:-}" in
  --test) mode=test ;;
  --runtime) mode=runtime ;;
  "") ;;
  *) echo "usage: $0 [--test|--runtime]" >&2; exit 2 ;;
esac

runtime_pkgs=(libmicrohttpd12 libcjson1 libuv1 libopenblas0-pthread libsqlite3-0
              libpcre2-8-0 libgnutls30 ca-certificates curl)
build_pkgs=(build-essential pkg-config git libmicrohttpd-dev libcjson-dev libuv1-dev
            libopenblas-dev libsqlite3-dev libpcre2-dev libgnutls28-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev openssl sqlite3)
# deploy/validate.sh: systemd-analyze verify/security on deploy/maasd.service.
test_pkgs+=(systemd)

case "$mode" in
  runtime) want=("${runtime_pkgs[@]}") ;;
  build) want=("${runtime_pkgs[@]}" "${build_pkgs[@]}") ;;
  test) want=("${runtime_pkgs[@]}" "${build_pkgs[@]}" "${test_pkgs[@]}") ;;
esac

# Node.js: the end-to-end tests drive the daemon with the official `openai`
# npm package, which needs Node >= 18 (Debian 12 ships 18). A machine that
# already has a newer node (from NodeSource, say) keeps it.
if [ "$mode" = test ] && ! command -v node >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages for the end-to-end tests, pinned by tests/e2e/package-lock.json.
if [ "$mode" = test ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  e2e="$here/tests/e2e"
  if [ -f "$e2e/package-lock.json" ] && \
     { [ ! -d "$e2e/node_modules" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; }; then
    echo "install-deps: npm ci in tests/e2e" >&2
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
