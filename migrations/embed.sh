#!/bin/sh
# embed.sh — turn migrations/NNNN_name.sql into C so the binary carries its
# own schema and runs from any directory. Output: the table declared in
# server/migrate.h, in file-name (= version) order.
set -eu
echo '/* generated from the migrations folder by migrations/embed.sh */'
echo '#include "server/migrate.h"'
i=0
for f in "$@"; do
  printf 'static const char migration_%d[] = {\n' "$i"
  od -An -v -tx1 "$f" | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
  printf '0x00};\n'
  i=$((i + 1))
done
echo 'const struct migration migrations_embedded[] = {'
i=0
for f in "$@"; do
  base=$(basename "$f" .sql)
  num=${base%%_*}
  printf '    {%d, "%s", migration_%d},\n' "$(expr "$num" + 0)" "$base" "$i"
  i=$((i + 1))
done
echo '};'
echo "const int migrations_embedded_count = $i;"
