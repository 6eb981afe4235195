#!/usr/bin/env bash
# run-unit.sh DIR NAME... — run each cmocka test binary DIR/NAME from the
# repository root; print a one-line summary; fail if any failed.
set -u
dir=$1; shift
failed=()
for t in "$@"; do
  if ! "$dir/$t"; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "unit tests FAILED in $dir: ${failed[*]}" >&2
  exit 1
fi
echo "unit tests passed in $dir ($# binaries)"
