#!/usr/bin/env bash
# run.sh — `make bench`: every benchmark, or one of them.
#
#   bench/run.sh                 engine, then serve, then usage_csv
#   bench/run.sh engine [ARGS]   build/bench/engine (see bench/engine.c), e.g.
#                                `bench/run.sh engine --quick` (Q8_0 only)
#   bench/run.sh serve [ARGS]    bench/serve.mjs through the HTTP API on the
#                                TinyLlama-shaped Q8_0 model the engine
#                                benchmark writes (written first if missing)
#   bench/run.sh usage_csv       build/bench/usage_csv (finance CSV memory)
#
# The first engine run writes its models (7.8 GB in all) to $TMPDIR (default
# /tmp) and takes a few minutes more; later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[ $# -gt 0 ] && shift
tmp=${TMPDIR:-/tmp}
q8=$tmp/maasd-bench-tinyllama-L22-q8_0-vocab.gguf

run_serve() {
  if [ ! -f "$q8" ]; then
    echo "bench: writing the TinyLlama-shaped Q8_0 model first" >&2
    build/bench/engine --types q8_0 --batches 1 --steps 1 --reps 1 >/dev/null
  fi
  node bench/serve.mjs --model-file "$q8" "$@"
}

case "$what" in
  engine) exec build/bench/engine "$@" ;;
  serve) run_serve "$@" ;;
  usage_csv) exec build/bench/usage_csv "$@" ;;
  all)
    echo "== engine"; build/bench/engine
    echo; echo "== serve"; run_serve
    echo; echo "== usage_csv"; build/bench/usage_csv ;;
  *) echo "usage: bench/run.sh [engine|serve|usage_csv] [args]" >&2; exit 2 ;;
esac
