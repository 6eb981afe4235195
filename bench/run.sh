#!/usr/bin/env bash
# run.sh — `make bench`: the engine benchmark with its defaults (F32, F16 and
# Q8_0 TinyLlama-shaped models; see the header of bench/engine.c). Extra
# arguments go to build/bench/engine, e.g. `bench/run.sh --quick` (Q8_0 only)
# or `bench/run.sh --types q8_0 --batches 1,16`.
#
# The first run writes the models (7.8 GB in all) to $TMPDIR (default /tmp)
# and takes a few minutes more; later runs reuse them and take about two.
set -euo pipefail
cd "$(dirname "$0")/.."
exec build/bench/engine "$@"
