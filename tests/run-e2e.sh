#!/usr/bin/env bash
# run-e2e.sh — end-to-end tests: each tests/e2e/*.test.mjs starts the real
# daemon ($MAASD_BIN) on an ephemeral loopback port with a fresh database and
# talks to it over HTTP (node:test runner, the official openai package).
set -euo pipefail
cd "$(dirname "$0")/e2e"
: "${MAASD_BIN:?set MAASD_BIN to the maasd binary}"
shopt -s nullglob
tests=(*.test.mjs)
if [ ${#tests[@]} -eq 0 ]; then
  echo "no end-to-end tests"
  exit 0
fi
# One file at a time: the machine has two cores and each test starts a daemon.
node --test --test-concurrency=1 --test-reporter=spec "${tests[@]}"
