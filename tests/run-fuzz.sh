#!/usr/bin/env bash
# run-fuzz.sh SECONDS BINARY... — run each libFuzzer binary for SECONDS from
# the repository root, on a corpus in build/fuzz/corpus/NAME seeded from
# tests/fuzz/seeds/NAME/ (committed, tiny) and, for GGUF targets, from the
# shared data's GGUF files up to 2 MiB when that folder is present. Crash
# inputs land in build/fuzz/artifacts/NAME/. Fails if any target crashed.
set -u
secs=$1; shift
shared=${MAASD_SHARED:-../shared}
failed=()
for bin in "$@"; do
  name=$(basename "$bin")
  corpus=build/fuzz/corpus/$name
  artifacts=build/fuzz/artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  if [ -d "tests/fuzz/seeds/$name" ]; then
    cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null
  fi
  case "$name" in
    fuzz_gguf)
      if [ -d "$shared" ]; then
        find "$shared" -name '*.gguf' -size -2048k -exec cp -n {} "$corpus"/ \;
      fi ;;
  esac
  log=build/fuzz/$name.log
  echo "fuzz: $name for ${secs}s (corpus $corpus, log $log)"
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc) after ${execs:-?} executions; see $log and $artifacts/" >&2
    grep -m5 -E 'ERROR|SUMMARY|Test unit written' "$log" >&2
    failed+=("$name")
  else
    echo "fuzz: $name ok, ${execs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets FAILED: ${failed[*]}" >&2
  exit 1
fi
