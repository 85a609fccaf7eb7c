#!/usr/bin/env bash
# Runs `airlock demo`: a throwaway PostgreSQL with a demo schema and the gateway in front of
# it. Installs the PostgreSQL 15 server binaries first if this machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
found=0
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && found=1; done
if [ "$found" = 0 ]; then
  echo "==> installing PostgreSQL 15 server binaries"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
fi
exec cargo run --release --quiet -- demo "$@"
