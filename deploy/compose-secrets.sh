#!/usr/bin/env bash
# compose-secrets.sh — the files deploy/compose.yaml mounts as secrets:
# a self-signed certificate for the names the containers use, and a
# random metrics token. Replace tls.crt/tls.key with a real certificate for
# clients outside the host. Existing files are kept.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
if [ ! -f "$dir/tls.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj /CN=maasd -addext "subjectAltName=DNS:maasd,DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
fi
if [ ! -f "$dir/metrics-token" ]; then
  openssl rand -hex 32 > "$dir/metrics-token"
fi
# Compose bind-mounts these files with their host modes; the containers run
# as unprivileged users (maasd 10001, prometheus 65534), so they must be
# readable to them. The directory itself stays private to its owner.
chmod 0644 "$dir/tls.crt" "$dir/tls.key" "$dir/metrics-token"
echo "secrets in $dir"
