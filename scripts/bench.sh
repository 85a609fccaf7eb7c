#!/usr/bin/env bash
# Side-by-side pgbench: direct PostgreSQL, pgbouncer (session pooling) and airlock (release
# build, shipped default policy, audit on), interleaved in one run on this machine. Prints
# median TPS, latency and ratios per cell, gateway CPU per transaction, the airlock column again
# with durability = strict, and the RSS cost of 1,000 idle sessions.
#
#   scripts/bench.sh                 # defaults: DURATION=10 REPS=2 SCALE=10
#   DURATION=5 REPS=3 scripts/bench.sh
#
# Uses only Debian packages (postgresql-15, pgbouncer) and the project's own binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
REPS=${REPS:-2}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-"1 8 32"}
MODES=${MODES:-"simple extended prepared"}
IDLE_SESSIONS=${IDLE_SESSIONS:-1000}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql-15)
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import psycopg' 2>/dev/null || python3 -m pip install -q 'psycopg[binary]'
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGBENCH=$PGBIN/pgbench

if [ -n "${AIRLOCK_BIN:-}" ]; then
  AIRLOCK=$AIRLOCK_BIN   # a prebuilt release binary
else
  echo "==> building airlock (release)" >&2
  cargo build --release --quiet
  AIRLOCK=$ROOT/target/release/airlock
fi

WORK=$(mktemp -d /tmp/airlock-bench.XXXXXX)
RUNAS=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; RUNAS=(runuser -u postgres --); fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "${RUNAS[@]}" "$PGBIN/pg_ctl" stop -m immediate -D "$WORK/data" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port); BPORT=$(free_port); APORT=$(free_port)
PW=bench-pw
echo "$PW" > "$WORK/pw"; chmod 644 "$WORK/pw"

echo "==> PostgreSQL on $PGPORT, scale $SCALE" >&2
"${RUNAS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --pwfile "$WORK/pw" -E UTF8 --locale=C --no-sync >/dev/null
cat > "$WORK/pg.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
max_connections = $((IDLE_SESSIONS + 200))
shared_buffers = 256MB
synchronous_commit = off
CONF
"${RUNAS[@]}" sh -c "cat '$WORK/pg.conf' >> '$WORK/data/postgresql.auto.conf'"
"${RUNAS[@]}" "$PGBIN/pg_ctl" start -w -D "$WORK/data" -l "$WORK/pg.log" -o "-p $PGPORT" >/dev/null
PGHOST=$WORK "$PGBIN/createdb" -p "$PGPORT" -U postgres bench
PGPASSWORD=$PW "$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PGPORT" -U postgres bench >/dev/null 2>&1
# pgbouncer logs in to PostgreSQL as the client's user: give it a role of its own.
PGHOST=$WORK "$PGBIN/psql" -q -p "$PGPORT" -U postgres -d bench \
  -c "CREATE ROLE bench LOGIN SUPERUSER PASSWORD '$PW'" >/dev/null

VERIFIER=$(echo "$PW" | "$AIRLOCK" passwd bench | sed -n 's/^bench = "\(.*\)"$/\1/p')

echo "==> pgbouncer on $BPORT (session pooling)" >&2
cat > "$WORK/userlist.txt" <<U
"bench" "$PW"
U
cat > "$WORK/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench user=bench password=$PW
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = $((IDLE_SESSIONS + 200))
# Session pooling holds a server connection per client: room for the idle-sessions phase.
default_pool_size = $((IDLE_SESSIONS + 100))
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
chmod 644 "$WORK"/userlist.txt "$WORK"/pgbouncer.ini
# A socket per client and per server connection: more than the usual 1024 descriptors.
"${RUNAS[@]}" sh -c "ulimit -n $((2 * IDLE_SESSIONS + 1024)) && exec '$PGBOUNCER' -d '$WORK/pgbouncer.ini'"
for _ in $(seq 50); do [ -f "$WORK/pgbouncer.pid" ] && break; sleep 0.1; done
BOUNCER_PID=$(cat "$WORK/pgbouncer.pid")
PIDS+=("$BOUNCER_PID")

start_airlock() { # $1 = durability
  cat > "$WORK/airlock.toml" <<TOML
[server]
listen = "127.0.0.1:$APORT"
max_connections = $((IDLE_SESSIONS + 200))
[auth]
method = "scram-sha-256"
[auth.users]
bench = "$VERIFIER"
[upstream]
url = "postgres://postgres@127.0.0.1:$PGPORT/bench?sslmode=disable"
password_env = "BENCH_UPSTREAM_PASSWORD"
[policy]
path = "$ROOT/policies/default.toml"
[audit]
path = "$WORK/audit-$1"
durability = "$1"
[admin]
listen = ""
[log]
level = "warn"
TOML
  BENCH_UPSTREAM_PASSWORD=$PW "$AIRLOCK" serve --config "$WORK/airlock.toml" 2>"$WORK/airlock-$1.log" &
  AIRLOCK_PID=$!
  PIDS+=("$AIRLOCK_PID")
  for _ in $(seq 100); do
    PGPASSWORD=$PW "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$APORT" && return 0
    sleep 0.1
  done
  echo "airlock did not start:" >&2; cat "$WORK/airlock-$1.log" >&2; exit 1
}
stop_airlock() { kill "$AIRLOCK_PID" 2>/dev/null; wait "$AIRLOCK_PID" 2>/dev/null || true; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)

# run TARGET LABEL ARGS… → prints "tps latency_ms cpu_us_per_tx"
run() {
  local target=$1; shift
  local port user pid=""
  case $target in
    direct) port=$PGPORT; user=postgres ;;
    pgbouncer) port=$BPORT; user=bench; pid=$BOUNCER_PID ;;
    airlock*) port=$APORT; user=bench; pid=$AIRLOCK_PID ;;
  esac
  local before=0 after=0
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  local out
  out=$(PGPASSWORD=$PW "$PGBENCH" -h 127.0.0.1 -p "$port" -U "$user" -n -T "$DURATION" -j 2 "$@" bench 2>&1) || {
    echo "pgbench failed against $target: $out" >&2; echo "0 0 0"; return; }
  [ -n "$pid" ] && after=$(cpu_ticks "$pid")
  local tps lat tx
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
  local cpu=0
  if [ -n "$pid" ] && [ "${tx:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((after - before)) -v c="$CLK" -v t="$tx" 'BEGIN{printf "%.1f", d / c * 1e6 / t}')
  fi
  echo "${tps:-0} ${lat:-0} $cpu"
}

median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

declare -A R
cells=()
for m in $MODES; do for c in $CLIENTS; do cells+=("S-$m-c$c|-S -M $m -c $c"); done; done
cells+=("tpcb-extended-c8|-M extended -c 8" "tpcb-extended-c32|-M extended -c 32" "connect-S-c8|-C -S -M simple -c 8")

measure() { # $1 = list of targets
  for rep in $(seq "$REPS"); do
    for cell in "${cells[@]}"; do
      local name=${cell%%|*} args=${cell#*|}
      for t in $1; do
        # shellcheck disable=SC2086
        read -r tps lat cpu < <(run "$t" $args)
        R["$name|$t|tps"]+="$tps "
        R["$name|$t|lat"]+="$lat "
        R["$name|$t|cpu"]+="$cpu "
        echo "  rep $rep $name $t: tps=$tps lat=${lat}ms cpu/tx=${cpu}us" >&2
      done
    done
  done
}

echo "==> interleaved runs: direct, pgbouncer, airlock (batched); ${DURATION}s each, $REPS reps" >&2
start_airlock batched
measure "direct pgbouncer airlock"

echo "==> idle sessions: RSS of $IDLE_SESSIONS idle clients" >&2
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
idle_cost() { # $1 pid $2 port
  local base; base=$(rss "$1")
  python3 - "$2" "$PW" "$IDLE_SESSIONS" <<'PY' >&2 &
import sys, time, psycopg
port, pw, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns = [psycopg.connect(host="127.0.0.1", port=port, user="bench", password=pw, dbname="bench") for _ in range(n)]
print("open", flush=True)
time.sleep(3)
PY
  local py=$!
  sleep 1
  local peak=$base
  while kill -0 $py 2>/dev/null; do
    local now; now=$(rss "$1"); [ "$now" -gt "$peak" ] && peak=$now; sleep 0.2
  done
  # A failed run (connections refused or timed out) measured fewer sessions: say so.
  if wait $py; then echo $(( (peak - base) / 1024 )); else echo "failed"; fi
}
# Memory after every batched cell: the audit store's page cache is bounded ([audit] cache_mb).
AIRLOCK_RSS_MB=$(( $(rss "$AIRLOCK_PID") / 1024 )); BOUNCER_RSS_MB=$(( $(rss "$BOUNCER_PID") / 1024 ))
AIRLOCK_IDLE_MB=$(idle_cost "$AIRLOCK_PID" "$APORT")
BOUNCER_IDLE_MB=$(idle_cost "$BOUNCER_PID" "$BPORT")
stop_airlock

echo "==> airlock with durability = strict" >&2
start_airlock strict
measure "airlock"
stop_airlock

whole() { awk -v x="$1" 'BEGIN{ printf "%.0f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "## pgbench on $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgbouncer $("$PGBOUNCER" --version | head -1 | awk '{print $2}'), scale $SCALE, ${DURATION}s x $REPS reps (median)"
echo
echo "| cell | direct tps | pgbouncer tps | airlock tps | airlock/direct | airlock/pgbouncer | lat direct ms | lat pgbouncer ms | lat airlock ms | cpu/tx pgbouncer us | cpu/tx airlock us | airlock strict tps | strict/batched |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for cell in "${cells[@]}"; do
  n=${cell%%|*}
  get() { echo "${R["$n|$1|$2"]}" | tr ' ' '\n' | grep -v '^$' | head -"$REPS" | median; }
  getlast() { echo "${R["$n|$1|$2"]}" | tr ' ' '\n' | grep -v '^$' | tail -"$REPS" | median; }
  d=$(get direct tps); b=$(get pgbouncer tps); a=$(get airlock tps); s=$(getlast airlock tps)
  echo "| $n | $(whole "$d") | $(whole "$b") | $(whole "$a") | $(ratio "$a" "$d") | $(ratio "$a" "$b") | $(get direct lat) | $(get pgbouncer lat) | $(get airlock lat) | $(get pgbouncer cpu) | $(get airlock cpu) | $(whole "$s") | $(ratio "$s" "$a") |"
done
echo
# One client: latency added over direct, rep by rep (the spread matters at this size).
for cell in "${cells[@]}"; do
  n=${cell%%|*}
  case $n in *-c1) ;; *) continue ;; esac
  reps() { echo "${R["$n|$1|lat"]}" | tr ' ' '\n' | grep -v '^$' | head -"$REPS"; }
  added() { paste <(reps "$1") <(reps direct) | awk '{printf "%s%.0f", (NR>1?" ":""), ($1-$2)*1000}'; }
  echo "$n added latency per statement (µs, each rep): pgbouncer $(added pgbouncer), airlock $(added airlock)"
done
echo
echo "RSS after the batched runs: airlock ${AIRLOCK_RSS_MB} MB, pgbouncer ${BOUNCER_RSS_MB} MB"
echo "Idle sessions ($IDLE_SESSIONS): airlock +${AIRLOCK_IDLE_MB} MB RSS, pgbouncer +${BOUNCER_IDLE_MB} MB RSS"
