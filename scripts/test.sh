#!/usr/bin/env bash
# Runs every airlock test. Installs what the tests need when it is missing (idempotent):
# PostgreSQL 15 server binaries, pgbouncer for the bench-script test, Chromium for the
# approval-page tests, and the Python drivers.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_pkgs=()
pg_ok=0
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && pg_ok=1
done
[ "$pg_ok" = 1 ] || apt_pkgs+=(postgresql-15 postgresql-client-15)
command -v psql >/dev/null 2>&1 || apt_pkgs+=(postgresql-client-15)
{ command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } || apt_pkgs+=(pgbouncer)
[ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || apt_pkgs+=(chromium-driver)
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  echo "==> installing ${apt_pkgs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if ! python3 -c 'import psycopg, asyncpg' >/dev/null 2>&1; then
  echo "==> installing Python drivers (psycopg 3, asyncpg)"
  python3 -m pip install -q 'psycopg[binary]>=3.1' 'asyncpg>=0.29'
fi

echo "==> cargo test"
cargo test --locked "$@" 2>&1
# The criterion benches, each run once as a test (a small generated store for the grep bench).
echo "==> cargo test --bench '*'"
AIRLOCK_BENCH_RECORDS="${AIRLOCK_BENCH_RECORDS:-20000}" cargo test --locked --bench '*' 2>&1
