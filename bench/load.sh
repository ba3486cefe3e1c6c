#!/usr/bin/env bash
# Load benchmark: restjwt (release build, fresh SQLite file) and the reference system
# (Django + DRF + simplejwt on gunicorn, ../shared/reference) loaded in the same run by the same
# client (wrk) with the same connection counts, plus restjwt's bare GET /healthz as the ceiling.
# Prints a Markdown table (requests/s, p50, p99, errors, peak RSS, ratios), the login figures,
# a burst of concurrent logins against token-check latency, and where the targets of issue 6
# stand. See docs/benchmarks.md.
#
#   bash bench/load.sh
#
# Settings (environment):
#   PHASE_SECONDS (10)         length of each measured load phase
#   CONNECTIONS ("64 256")     connection counts; every endpoint is loaded at each
#   BURST_CONNECTIONS (256)    concurrent logins in the burst test
#   PROBE_CONNECTIONS (4), PROBE_DELAY_MS (10)
#                              the token-check probe of the burst test: each connection waits
#                              this long between requests (at most 400 checks/s by default)
#   SERVER_CPUS (0), CLIENT_CPUS (1)
#                              taskset CPU lists for both servers and for wrk; set both empty to
#                              run unpinned
#   NICE (-10)                 nice level of both servers and wrk when run as root, so that other
#                              work on a shared machine disturbs the figures less; empty: as is
#   WRK_THREADS (1)            wrk threads
#   WRK_TIMEOUT (10s)          wrk's request timeout (a slower answer counts as a socket error)
#   REFERENCE_WORKERS (5)      gunicorn sync workers (the figure the issue quotes)
#   REFERENCE_DIR              default: ../shared/reference beside the repository
#   SKIP_REFERENCE (0)         1 to load restjwt alone
#   POSTGRES_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres)
#                              where the PostgreSQL phases create (and afterwards drop) a
#                              database of their own; needs psql
#   SKIP_POSTGRES (0)          1 to skip the PostgreSQL phases
#   SKIP_BUILD (0)             1 to use target/release/restjwt as it is (RJ_BIN: another binary)
#   PG2_CPUS ("0 1")           the CPUs of the two instances of the two-instance phases, one each
#   ROTATION_USERS (1)         the rotation phases' refresh tokens belong to this many users
#                              (bob, bob2, ...), taken in turn; with 1, every rotation's new
#                              token references the same auth_user row
#   ONLY ("")                  a bash regular expression: only the phases whose name matches
#                              run (e.g. 'rotate, PostgreSQL'; 'burst' for the login burst);
#                              empty: all
#   PG_WAITS (1)               during each PostgreSQL phase, sample what the bench database's
#                              active backends wait for (pg_stat_activity, every 100 ms, from
#                              one psql session) and report the shares; 0 to skip
#
# Every request goes to 127.0.0.1; every wrk run and every wait loop is bounded in time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PHASE_SECONDS="${PHASE_SECONDS:-10}"
CONNECTIONS="${CONNECTIONS:-64 256}"
BURST_CONNECTIONS="${BURST_CONNECTIONS:-256}"
PROBE_CONNECTIONS="${PROBE_CONNECTIONS:-4}"
PROBE_DELAY_MS="${PROBE_DELAY_MS:-10}"
SERVER_CPUS="${SERVER_CPUS-0}"
CLIENT_CPUS="${CLIENT_CPUS-1}"
WRK_THREADS="${WRK_THREADS:-1}"
NICE="${NICE--10}"
[[ "$(id -u)" == 0 ]] || NICE=""
WRK_TIMEOUT="${WRK_TIMEOUT:-10s}"
REFERENCE_WORKERS="${REFERENCE_WORKERS:-5}"
REFERENCE_DIR="${REFERENCE_DIR:-$ROOT/../shared/reference}"
SKIP_REFERENCE="${SKIP_REFERENCE:-0}"
POSTGRES_ADMIN_URL="${POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SKIP_POSTGRES="${SKIP_POSTGRES:-0}"
PG2_CPUS="${PG2_CPUS:-0 1}"
ROTATION_USERS="${ROTATION_USERS:-1}"
ONLY="${ONLY:-}"
PG_WAITS="${PG_WAITS:-1}"
PG_DB="restjwt_bench_$$"
PG_KEY="bench-signing-key-shared-by-every-instance-0123456789"
HAVE_PG=0
USERNAME=bob
PASSWORD=bob-pass-1234
LUA="$ROOT/bench/wrk.lua"
export REFERENCE_HOME="${REFERENCE_HOME:-$HOME/.cache/restjwt-reference}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/load.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools
if ! command -v wrk >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing wrk (Debian package)"
    apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
  fi
  command -v wrk >/dev/null 2>&1 || die "wrk is not installed: apt-get install wrk"
fi
for tool in curl taskset pgrep awk; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

pin() { # pin CPULIST command...: run pinned, or as is when the list is empty
  local cpus="$1"; shift
  if [[ -n "$cpus" ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-bench.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  ((HAVE_PG)) && psql "$POSTGRES_ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Process measurements

pids_of() { # a server's processes: the pid and its children (gunicorn's workers); PID may be
  # a comma-separated list (several instances measured as one)
  local pid
  for pid in ${1//,/ }; do
    echo "$pid"
    pgrep -P "$pid" || true
  done
}

pg_pids() { # the PostgreSQL processes working for the bench's database: its backends and the
  # shared WAL writer, checkpointer and background writer (whose work others share)
  ((HAVE_PG)) || return 0
  psql "$POSTGRES_ADMIN_URL" -qAtc "SELECT pid FROM pg_stat_activity WHERE (datname = '$PG_DB'
    AND application_name <> 'restjwt-bench-sampler')
    OR backend_type IN ('walwriter', 'checkpointer', 'background writer')" 2>/dev/null || true
}

pg_ticks() { # "PID TICKS" of each PostgreSQL process working for the bench database now
  local p
  for p in $(pg_pids); do echo "$p $(cpu_ticks "$p")"; done
}

pg_ticks_since() { # START-FILE: the CPU ticks of the bench database's PostgreSQL processes since
  # the snapshot in START-FILE, counting the backends that opened since (a pool opens its
  # connections when the load needs them: taking only the processes of the start missed them)
  local p ticks total=0
  declare -A start=()
  while read -r p ticks; do [[ -n "$p" ]] && start[$p]="$ticks"; done <"$1"
  for p in $(pg_pids); do
    ticks="$(cpu_ticks "$p")"
    [[ -d "/proc/$p" ]] || continue
    total=$((total + ticks - ${start[$p]:-0}))
  done
  echo "$total"
}

machine_busy_ticks() { # every CPU's non-idle ticks, from /proc/stat
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

cpu_ticks() { # user + system clock ticks of the processes, all threads included
  local total=0 pid ticks
  for pid in "$@"; do
    # Fields after the command name, which may hold spaces: utime and stime are 12th and 13th.
    ticks="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')" || ticks=0
    total=$((total + ${ticks:-0}))
  done
  echo "$total"
}

SERVERS=() # the main pid of every server running now

all_server_pids() {
  local pid
  for pid in "${SERVERS[@]}"; do pids_of "$pid"; done
}

wait_idle() { # until every server (they share a core) uses under ~5% of a core, at most 60 s:
  # a closed-loop client leaves queued requests behind, and they must not run into the next phase
  local before after
  for _ in $(seq 120); do
    # shellcheck disable=SC2046
    before="$(cpu_ticks $(all_server_pids))"
    sleep 0.5
    # shellcheck disable=SC2046
    after="$(cpu_ticks $(all_server_pids))"
    (( after - before <= 2 )) && return 0
  done
  log "warning: the servers are still busy after 60 s"
}

reset_peak_rss() { # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
  local p
  for p in $(pids_of "$1"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}

peak_rss_kib() { # VmHWM summed over the server's processes (the reference: master + workers)
  local total=0 p kib
  for p in $(pids_of "$1"); do
    kib="$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null)" || kib=0
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

count_cpus() { # CPUs in a list such as "0", "0-1" or "0,2-3"; all of them for an empty list
  [[ -z "$1" ]] && { nproc --all; return; }
  echo "$1" | tr ',' '\n' | awk -F- '{ n += (NF == 2 ? $2 - $1 + 1 : 1) } END { print n }'
}

# ---------------------------------------------------------------------------------------------
# Servers

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # until URL answers with the expected status, at most 60 s
  local url="$1" want="$2" code
  for _ in $(seq 120); do
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)"
    [[ "$code" == "$want" ]] && return 0
    sleep 0.5
  done
  die "$url did not answer $want within 60 s"
}

RJ_BIN="${RJ_BIN:-$ROOT/target/release/restjwt}"

start_restjwt() { # start_restjwt NAME [ENV=VALUE...]: sets RJ_PID_<NAME> and RJ_PORT_<NAME>
  local name="$1"; shift
  local logf="$TMP/restjwt-$name.log" port="" cpus="${RJ_CPUS-$SERVER_CPUS}"
  # Throttling off: every request comes from one address, as the reference's do unthrottled.
  env DATABASE_URL="sqlite://$TMP/restjwt.sqlite3" RESTJWT_ACCESS_TOKEN_LIFETIME=1h \
      RESTJWT_THROTTLE_ENABLED=false RUST_LOG=info NO_COLOR=1 "$@" \
      ${NICE:+nice -n "$NICE"} ${cpus:+taskset -c "$cpus"} "$RJ_BIN" serve --bind 127.0.0.1:0 >"$logf" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  SERVERS+=("$pid")
  for _ in $(seq 300); do
    port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$logf" | head -n1)"
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "restjwt did not start"; }
    sleep 0.1
  done
  [[ -n "$port" ]] || die "restjwt logged no 'listening on' line within 30 s"
  printf -v "RJ_PID_$name" '%s' "$pid"
  printf -v "RJ_PORT_$name" '%s' "$port"
}

REF_VENV="$REFERENCE_HOME/.venv"

start_reference() { # start_reference NAME ROTATE DB: sets REF_PID_<NAME> and REF_PORT_<NAME>
  local name="$1" rotate="$2" db="$3" port
  port="$(free_port)"
  env PORT="$port" WORKERS="$REFERENCE_WORKERS" REFERENCE_DB="$db" \
      REFERENCE_ROTATE="$rotate" REFERENCE_BLACKLIST_AFTER_ROTATION="$rotate" \
      REFERENCE_ACCESS_SECONDS=3600 \
      ${NICE:+nice -n "$NICE"} ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} bash "$REFERENCE_DIR/serve.sh" gunicorn \
      >"$TMP/reference-$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  SERVERS+=("$pid")
  wait_http "http://127.0.0.1:$port/api/user/" 401
  printf -v "REF_PID_$name" '%s' "$pid"
  printf -v "REF_PORT_$name" '%s' "$port"
}

stop_pid() { # SIGINT (gunicorn: quick shutdown; restjwt: graceful), then wait at most 10 s
  local pid="$1" kept=() p
  for p in "${SERVERS[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
  SERVERS=("${kept[@]}")
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

login_json() { # login_json PORT: the token pair's JSON
  curl -s -m 60 -X POST -H 'Content-Type: application/json' \
    -d "{\"username\":\"$USERNAME\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$1/api/token/"
}
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
AUTH() { echo "Authorization: Bearer $1"; }

# ---------------------------------------------------------------------------------------------
# Load phases. Each result is one line of $RESULTS:
#   side endpoint connections ok_per_s p50_us p99_us status_errors socket_errors peak_rss_kib cpu_pct
# cpu_pct is the server's CPU time during the phase over its length (100 = one core busy).

RESULTS="$TMP/results.tsv"
COSTS="$TMP/costs.tsv" # side|endpoint|conns|answered|server_ticks|pg_ticks|wrk_ticks|machine_busy_ticks|ok_per_s|baseline_ticks_per_s
WAITS="$TMP/waits.tsv" # endpoint|conns|wait (CPU: running, not waiting)|samples
: >"$WAITS"
: >"$COSTS"
CLK_TCK="$(getconf CLK_TCK)"
: >"$RESULTS"

run_wrk() { # run_wrk OUT CONNECTIONS SECONDS URL [ENV=VALUE...] [-- extra wrk args]
  local out="$1" conns="$2" secs="$3" url="$4"; shift 4
  local envs=() extra=()
  while (($#)); do
    if [[ "$1" == -- ]]; then shift; extra=("$@"); break; fi
    envs+=("$1"); shift
  done
  local threads="${BENCH_WRK_THREADS:-$WRK_THREADS}"
  (( conns < threads )) && threads="$conns"
  env BENCH_THREADS="$threads" "${envs[@]}" \
    ${NICE:+nice -n "$NICE"} ${CLIENT_CPUS:+taskset -c "$CLIENT_CPUS"} \
    /usr/bin/time -f "%U %S" -o "$out.cpu" wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout "$WRK_TIMEOUT" -s "$LUA" \
    "${extra[@]}" "$url" >"$out" 2>&1 || true
}

parse_result() { # parse_result FILE -> "ok_per_s p50_us p99_us status_errors socket_errors"
  awk '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
      ok = r["requests"] - r["status_errors"]
      printf "%.1f %d %d %d %d\n", ok / (r["duration_us"] / 1e6), r["p50_us"], r["p99_us"],
        r["status_errors"], r["connect"] + r["read"] + r["write"] + r["timeout"]
      found = 1
    }
    END { if (!found) print "0 0 0 0 0" }' "$1"
}

answered() { # answered FILE: how many requests got an answer of any status
  awk '/^RESULT/ { split($2, kv, "="); print kv[2]; found = 1 } END { if (!found) print 0 }' "$1"
}

sample_pg_waits() { # FILE: one line per busy backend of the bench database, every 100 ms
  # for the phase: its wait event, "CPU" where it waits for nothing, "idle-in-transaction"
  # between the statements of a transaction (waiting for restjwt). One psql session, so that sampling costs
  # one backend's light queries, not a process per sample.
  local i
  for i in $(seq 1 $((PHASE_SECONDS * 10))); do
    echo "SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU')
      ELSE 'idle-in-transaction' END FROM pg_stat_activity WHERE datname = '$PG_DB'
      AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid();"
    echo "SELECT pg_sleep(0.1);"
  done | PGAPPNAME=restjwt-bench-sampler timeout $((PHASE_SECONDS * 3)) psql "$PG_URL" -qAtX 2>/dev/null | grep -v '^$' >"$1" || true
}

warm_up() { # warm_up URL ACCESS: a few seconds of checks, so every worker has served requests
  run_wrk "$TMP/warm-up.txt" 16 3 "$1/api/user/" -- -H "$(AUTH "$2")"
}

measure() { # measure SIDE ENDPOINT CONNECTIONS PID URL [ENV=VALUE...] [-- wrk args]
  local side="$1" endpoint="$2" conns="$3" pid="$4" url="$5"; shift 5
  local out="$TMP/wrk-$side-${endpoint//[^a-z0-9]/_}-$conns.txt"
  [[ -z "$ONLY" || "$endpoint" =~ $ONLY ]] || return 0
  log "$side $endpoint, $conns connections, ${PHASE_SECONDS} s"
  wait_idle
  reset_peak_rss "$pid"
  local before after pg_after busy_before busy_after baseline
  # Other work on the machine, over one second with every server idle: what the phase's
  # leftover CPU (the kernel's network work is charged to no process) is measured against.
  baseline="$(machine_busy_ticks)"; sleep 1; baseline=$(( $(machine_busy_ticks) - baseline ))
  pg_ticks >"$out.pg"
  # shellcheck disable=SC2046
  before="$(cpu_ticks $(pids_of "$pid"))"
  busy_before="$(machine_busy_ticks)"
  local sampler=""
  if ((HAVE_PG)) && [[ "$PG_WAITS" == 1 && "$endpoint" == *PostgreSQL* ]]; then
    sample_pg_waits "$out.waits" &
    sampler=$!
  fi
  run_wrk "$out" "$conns" "$PHASE_SECONDS" "$url" "$@"
  if [[ -n "$sampler" ]]; then
    wait "$sampler" || true
    sort "$out.waits" | uniq -c | awk -v e="$endpoint" -v c="$conns" '{ print e "|" c "|" $2 "|" $1 }' >>"$WAITS"
  fi
  # shellcheck disable=SC2046
  after="$(cpu_ticks $(pids_of "$pid"))"
  pg_after="$(pg_ticks_since "$out.pg")"
  busy_after="$(machine_busy_ticks)"
  local result
  result="$(parse_result "$out")"
  echo "$side $endpoint $conns $result $(peak_rss_kib "$pid")" \
    "$(( (after - before) * 100 / (CLK_TCK * PHASE_SECONDS) ))" >>"$RESULTS"
  # Per-request costs for the capacity model: CPU seconds of restjwt, PostgreSQL and wrk, and
  # of the whole machine, over the phase; answered requests.
  echo "$side|$endpoint|$conns|$(answered "$out")|$(( after - before ))|$pg_after|$(awk '{ printf "%d", ($1 + $2) * '"$CLK_TCK"' }' "$out.cpu" 2>/dev/null || echo 0)|$(( busy_after - busy_before ))|${result%% *}|$baseline" >>"$COSTS"
  grep -q '^RESULT' "$out" || { log "wrk failed:"; cat "$out" >&2; }
}


# ---------------------------------------------------------------------------------------------
# Build and start

log "machine: $(nproc --all) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
idle_percent() { # share of the machine's CPU time spent idle over one second
  local a b c d t1 i1
  read -r _ a b c d _ </proc/stat; t1=$((a + b + c + d)); i1=$d
  sleep 1
  read -r _ a b c d _ </proc/stat
  echo $(( 100 * (d - i1) / (a + b + c + d - t1) ))
}
IDLE_BEFORE="$(idle_percent)"
(( IDLE_BEFORE < 90 )) && log "warning: the machine is only ${IDLE_BEFORE}% idle before the run: other work will skew the figures"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "building restjwt (release)"
  (cd "$ROOT" && cargo build --release --quiet --bin restjwt)
fi

create_users() { # DATABASE-URL: the user, and ROTATION_USERS - 1 more (bob2, bob3, ...)
  local name
  for i in $(seq 1 "$ROTATION_USERS"); do
    name="$USERNAME"; ((i == 1)) || name="$USERNAME$i"
    env DATABASE_URL="$1" RESTJWT_SUPERUSER_PASSWORD="$PASSWORD" NO_COLOR=1 \
      "$RJ_BIN" createsuperuser --noinput --username "$name" --email "$name@example.com" >/dev/null
  done
}

log "restjwt: fresh SQLite file in $TMP, user $USERNAME (and $((ROTATION_USERS - 1)) more)"
create_users "sqlite://$TMP/restjwt.sqlite3"
start_restjwt main
RJ_URL="http://127.0.0.1:$RJ_PORT_main"
RJ_PAIR="$(login_json "$RJ_PORT_main")"
RJ_ACCESS="$(json_field access <<<"$RJ_PAIR")"
RJ_REFRESH="$(json_field refresh <<<"$RJ_PAIR")"
[[ -n "$RJ_ACCESS" && -n "$RJ_REFRESH" ]] || die "restjwt login failed: $RJ_PAIR"
warm_up "$RJ_URL" "$RJ_ACCESS"
# Rotation + blacklist with simplejwt's setting names (and restjwt's reuse detection, on by
# default with them), and the user endpoint from the token alone (JWTStatelessUserAuthentication).
start_restjwt rotate RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true
start_restjwt stateless RESTJWT_STATELESS_USER_AUTHENTICATION=true
warm_up "http://127.0.0.1:$RJ_PORT_stateless" "$RJ_ACCESS"

# PostgreSQL: a database of the bench's own, one user, six instances sharing a signing key:
# plain and rotating, one of each for the one-instance phases, and a second of each (on the
# other CPU of PG2_CPUS) for the two-instance phases.
if [[ "$SKIP_POSTGRES" != 1 ]] && command -v psql >/dev/null 2>&1 \
    && psql "$POSTGRES_ADMIN_URL" -qAtc "CREATE DATABASE $PG_DB" >/dev/null 2>&1; then
  HAVE_PG=1
  PG_URL="${POSTGRES_ADMIN_URL%/*}/$PG_DB"
  log "restjwt on PostgreSQL: database $PG_DB, user $USERNAME"
  env DATABASE_URL="$PG_URL" NO_COLOR=1 "$RJ_BIN" migrate >/dev/null
  create_users "$PG_URL"
  read -r PG_CPU_A PG_CPU_B <<<"$PG2_CPUS"
  PG_ENV=(DATABASE_URL="$PG_URL" RESTJWT_SIGNING_KEY="$PG_KEY")
  PG_ROTATE=(RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true)
  RJ_CPUS="$PG_CPU_A" start_restjwt pg "${PG_ENV[@]}"
  RJ_CPUS="$PG_CPU_B" start_restjwt pgb "${PG_ENV[@]}"
  RJ_CPUS="$PG_CPU_A" start_restjwt pgrot "${PG_ENV[@]}" "${PG_ROTATE[@]}"
  RJ_CPUS="$PG_CPU_B" start_restjwt pgrotb "${PG_ENV[@]}" "${PG_ROTATE[@]}"
  PG_URL_A="http://127.0.0.1:$RJ_PORT_pg"
  PG_PAIR="$(login_json "$RJ_PORT_pg")"
  PG_ACCESS="$(json_field access <<<"$PG_PAIR")"
  PG_REFRESH="$(json_field refresh <<<"$PG_PAIR")"
  [[ -n "$PG_ACCESS" && -n "$PG_REFRESH" ]] || die "restjwt login on PostgreSQL failed: $PG_PAIR"
  warm_up "$PG_URL_A" "$PG_ACCESS"
  warm_up "http://127.0.0.1:$RJ_PORT_pgb" "$PG_ACCESS"
  PG2_ADDRS="BENCH_ADDRS=127.0.0.1:$RJ_PORT_pg 127.0.0.1:$RJ_PORT_pgb"
  PG2_ROT_ADDRS="BENCH_ADDRS=127.0.0.1:$RJ_PORT_pgrot 127.0.0.1:$RJ_PORT_pgrotb"
else
  log "PostgreSQL phases skipped (SKIP_POSTGRES=1, no psql, or $POSTGRES_ADMIN_URL refused CREATE DATABASE)"
fi

HAVE_REFERENCE=0
if [[ "$SKIP_REFERENCE" != 1 && -f "$REFERENCE_DIR/serve.sh" ]]; then
  REFERENCE_DIR="$(cd "$REFERENCE_DIR" && pwd)"
  if [[ ! -x "$REF_VENV/bin/gunicorn" ]]; then
    log "installing the reference (setup.sh)"
    bash "$REFERENCE_DIR/setup.sh" >&2
  fi
  log "reference: fresh SQLite files in $TMP, user $USERNAME"
  env REFERENCE_DB="$TMP/reference.sqlite3" REFERENCE_USER="$USERNAME" REFERENCE_PASSWORD="$PASSWORD" \
    bash "$REFERENCE_DIR/setup.sh" >/dev/null
  cp "$TMP/reference.sqlite3" "$TMP/reference-rotate.sqlite3"
  start_reference off 0 "$TMP/reference.sqlite3"
  start_reference rotate 1 "$TMP/reference-rotate.sqlite3"
  REF_URL="http://127.0.0.1:$REF_PORT_off"
  REF_PAIR="$(login_json "$REF_PORT_off")"
  REF_ACCESS="$(json_field access <<<"$REF_PAIR")"
  REF_REFRESH="$(json_field refresh <<<"$REF_PAIR")"
  [[ -n "$REF_ACCESS" && -n "$REF_REFRESH" ]] || die "reference login failed: $REF_PAIR"
  # Django loads lazily in each worker: warm both instances (the copied database has the same
  # user and key, so the access token works on both).
  warm_up "$REF_URL" "$REF_ACCESS"
  warm_up "http://127.0.0.1:$REF_PORT_rotate" "$REF_ACCESS"
  HAVE_REFERENCE=1
else
  log "reference not found at $REFERENCE_DIR (or SKIP_REFERENCE=1): restjwt alone"
fi

restart_reference_off() { # drops the logins still queued in gunicorn's backlog after a phase
  stop_pid "$REF_PID_off"
  start_reference off 0 "$TMP/reference.sqlite3"
  REF_URL="http://127.0.0.1:$REF_PORT_off"
  warm_up "$REF_URL" "$REF_ACCESS"
}

mint_reference_refresh_tokens() { # N refresh tokens of the user, for the rotation phase
  (cd "$REFERENCE_DIR/django" && env REFERENCE_DB="$TMP/reference-rotate.sqlite3" \
    DJANGO_SETTINGS_MODULE=seed.settings PYTHONDONTWRITEBYTECODE=1 \
    "$REF_VENV/bin/python" manage.py shell --no-imports -c "
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import RefreshToken
user = get_user_model().objects.get(username='$USERNAME')
print('\n'.join(str(RefreshToken.for_user(user)) for _ in range($1)))
")
}

mint_restjwt_refresh_tokens() { # N refresh tokens from N logins (the ROTATION_USERS in turn), 2 at a time
  local port="$1" n="$2"
  for i in $(seq 0 $((n - 1))); do
    ((i % ROTATION_USERS == 0)) && echo "$USERNAME" || echo "$USERNAME$((i % ROTATION_USERS + 1))"
  done | xargs -P 2 -I{} curl -s -m 60 -X POST -H 'Content-Type: application/json' \
    -d "{\"username\":\"{}\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$port/api/token/" | grep -o '"refresh":"[^"]*"' | cut -d'"' -f4
}

# ---------------------------------------------------------------------------------------------
# The runs: each endpoint on restjwt, then at once on the reference, so drift hits both alike.

for conns in $CONNECTIONS; do
  measure restjwt "GET /healthz" "$conns" "$RJ_PID_main" "$RJ_URL/healthz"

  measure restjwt "GET /api/user/" "$conns" "$RJ_PID_main" "$RJ_URL/api/user/" \
    -- -H "$(AUTH "$RJ_ACCESS")"
  # The reference's own stateless class needs a settings change it does not offer: no row.
  measure restjwt "GET /api/user/ (stateless)" "$conns" "$RJ_PID_stateless" \
    "http://127.0.0.1:$RJ_PORT_stateless/api/user/" -- -H "$(AUTH "$RJ_ACCESS")"
  ((HAVE_REFERENCE)) && measure reference "GET /api/user/" "$conns" "$REF_PID_off" \
    "$REF_URL/api/user/" -- -H "$(AUTH "$REF_ACCESS")"

  measure restjwt "POST /api/token/verify/" "$conns" "$RJ_PID_main" "$RJ_URL/api/token/verify/" \
    "BENCH_BODY={\"token\":\"$RJ_ACCESS\"}"
  ((HAVE_REFERENCE)) && measure reference "POST /api/token/verify/" "$conns" "$REF_PID_off" \
    "$REF_URL/api/token/verify/" "BENCH_BODY={\"token\":\"$REF_ACCESS\"}"

  measure restjwt "POST /api/token/refresh/" "$conns" "$RJ_PID_main" \
    "$RJ_URL/api/token/refresh/" "BENCH_BODY={\"refresh\":\"$RJ_REFRESH\"}"
  ((HAVE_REFERENCE)) && measure reference "POST /api/token/refresh/" "$conns" "$REF_PID_off" \
    "$REF_URL/api/token/refresh/" "BENCH_BODY={\"refresh\":\"$REF_REFRESH\"}"
  # One token per connection (sessions of their own), each sent again and again: real traffic
  # refreshes many tokens, and on PostgreSQL concurrent reads of different tokens share a
  # statement only through ANY($1), not by being one row.
  if [[ -z "$ONLY" || "POST /api/token/refresh/ (many tokens)" =~ $ONLY ]]; then
    mint_restjwt_refresh_tokens "$RJ_PORT_main" "$conns" >"$TMP/restjwt-many-$conns.txt"
  fi
  measure restjwt "POST /api/token/refresh/ (many tokens)" "$conns" "$RJ_PID_main" \
    "$RJ_URL/api/token/refresh/" "BENCH_REFRESH_TOKENS=$TMP/restjwt-many-$conns.txt" BENCH_REUSE_TOKENS=1

  # Every token of the pool is a session of its own (a login each), and is spent once.
  mint_restjwt_refresh_tokens "$RJ_PORT_rotate" "$conns" >"$TMP/restjwt-refresh-$conns.txt"
  measure restjwt "POST /api/token/refresh/ (rotate)" "$conns" "$RJ_PID_rotate" \
    "http://127.0.0.1:$RJ_PORT_rotate/api/token/refresh/" \
    "BENCH_REFRESH_TOKENS=$TMP/restjwt-refresh-$conns.txt"
  if ((HAVE_REFERENCE)); then
    mint_reference_refresh_tokens "$conns" >"$TMP/reference-refresh-$conns.txt"
    measure reference "POST /api/token/refresh/ (rotate)" "$conns" "$REF_PID_rotate" \
      "http://127.0.0.1:$REF_PORT_rotate/api/token/refresh/" \
      "BENCH_REFRESH_TOKENS=$TMP/reference-refresh-$conns.txt"
  fi

  if ((HAVE_PG)); then
    # The same three on PostgreSQL, one instance and then two (wrk's two threads, one per
    # instance: a round-robin client), right after SQLite so that drift hits both alike. Each
    # of the two instances gets the one-instance phase's connections (twice as many in all):
    # reads are batched, so a batch's size, and with it a request's cost, follows the
    # concurrency one instance sees, and the capacity model predicts from the one-instance
    # phase's costs.
    conns2=$((conns * 2))
    measure restjwt "GET /api/user/ (PostgreSQL)" "$conns" "$RJ_PID_pg" "$PG_URL_A/api/user/" \
      -- -H "$(AUTH "$PG_ACCESS")"
    BENCH_WRK_THREADS=2 measure restjwt "GET /api/user/ (PostgreSQL, 2 instances)" "$conns2" \
      "$RJ_PID_pg,$RJ_PID_pgb" "$PG_URL_A/api/user/" "$PG2_ADDRS" -- -H "$(AUTH "$PG_ACCESS")"
    measure restjwt "POST /api/token/refresh/ (PostgreSQL)" "$conns" "$RJ_PID_pg" \
      "$PG_URL_A/api/token/refresh/" "BENCH_BODY={\"refresh\":\"$PG_REFRESH\"}"
    BENCH_WRK_THREADS=2 measure restjwt "POST /api/token/refresh/ (PostgreSQL, 2 instances)" \
      "$conns2" "$RJ_PID_pg,$RJ_PID_pgb" "$PG_URL_A/api/token/refresh/" "$PG2_ADDRS" \
      "BENCH_BODY={\"refresh\":\"$PG_REFRESH\"}"
    if [[ -z "$ONLY" || "POST /api/token/refresh/ (many tokens, PostgreSQL)" =~ $ONLY ]]; then
      mint_restjwt_refresh_tokens "$RJ_PORT_pg" "$conns" >"$TMP/pg-many-$conns.txt"
    fi
    measure restjwt "POST /api/token/refresh/ (many tokens, PostgreSQL)" "$conns" "$RJ_PID_pg" \
      "$PG_URL_A/api/token/refresh/" "BENCH_REFRESH_TOKENS=$TMP/pg-many-$conns.txt" BENCH_REUSE_TOKENS=1
    mint_restjwt_refresh_tokens "$RJ_PORT_pgrot" "$conns" >"$TMP/pg-refresh-$conns.txt"
    measure restjwt "POST /api/token/refresh/ (rotate, PostgreSQL)" "$conns" "$RJ_PID_pgrot" \
      "http://127.0.0.1:$RJ_PORT_pgrot/api/token/refresh/" \
      "BENCH_REFRESH_TOKENS=$TMP/pg-refresh-$conns.txt"
    mint_restjwt_refresh_tokens "$RJ_PORT_pgrot" "$conns2" >"$TMP/pg2-refresh-$conns.txt"
    BENCH_WRK_THREADS=2 measure restjwt "POST /api/token/refresh/ (rotate, PostgreSQL, 2 instances)" \
      "$conns2" "$RJ_PID_pgrot,$RJ_PID_pgrotb" "http://127.0.0.1:$RJ_PORT_pgrot/api/token/refresh/" \
      "$PG2_ROT_ADDRS" "BENCH_REFRESH_TOKENS=$TMP/pg2-refresh-$conns.txt"
  fi

  LOGIN_BODY="BENCH_BODY={\"username\":\"$USERNAME\",\"password\":\"$PASSWORD\"}"
  measure restjwt "POST /api/token/" "$conns" "$RJ_PID_main" "$RJ_URL/api/token/" "$LOGIN_BODY"
  if ((HAVE_REFERENCE)); then
    measure reference "POST /api/token/" "$conns" "$REF_PID_off" "$REF_URL/api/token/" "$LOGIN_BODY"
    restart_reference_off
  fi
done

# ---------------------------------------------------------------------------------------------
# Login burst: BURST_CONNECTIONS connections log in back to back (so that many logins are in
# flight at every moment) while a probe checks tokens at a bounded rate; the probe alone first.

BURST="$TMP/burst.tsv" # side logins_per_s p99_alone_us p99_burst_us probe_errors peak_kib answered_alone answered_burst
: >"$BURST"
burst() { # burst SIDE PID URL ACCESS
  local side="$1" pid="$2" url="$3" access="$4"
  local probe=("BENCH_DELAY_MS=$PROBE_DELAY_MS" -- -H "$(AUTH "$access")")
  log "$side: token-check probe alone, ${PHASE_SECONDS} s"
  wait_idle
  run_wrk "$TMP/probe-alone-$side.txt" "$PROBE_CONNECTIONS" "$PHASE_SECONDS" "$url/api/user/" "${probe[@]}"
  log "$side: $BURST_CONNECTIONS concurrent logins with the probe, ${PHASE_SECONDS} s"
  wait_idle
  reset_peak_rss "$pid"
  WRK_TIMEOUT=30s run_wrk "$TMP/burst-$side.txt" "$BURST_CONNECTIONS" "$((PHASE_SECONDS + 2))" \
    "$url/api/token/" "$LOGIN_BODY" &
  local burst_pid=$!
  sleep 1
  run_wrk "$TMP/probe-burst-$side.txt" "$PROBE_CONNECTIONS" "$PHASE_SECONDS" "$url/api/user/" "${probe[@]}"
  wait "$burst_pid" || true
  local peak logins alone during errors
  peak="$(peak_rss_kib "$pid")"
  logins="$(parse_result "$TMP/burst-$side.txt" | awk '{print $1}')"
  alone="$(parse_result "$TMP/probe-alone-$side.txt" | awk '{print $3}')"
  read -r _ _ during s_err k_err < <(parse_result "$TMP/probe-burst-$side.txt")
  echo "$side $logins $alone $during $((s_err + k_err)) $peak $(answered "$TMP/probe-alone-$side.txt") $(answered "$TMP/probe-burst-$side.txt")" >>"$BURST"
}
if [[ -z "$ONLY" || "burst" =~ $ONLY ]]; then
  burst restjwt "$RJ_PID_main" "$RJ_URL" "$RJ_ACCESS"
  ((HAVE_REFERENCE)) && burst reference "$REF_PID_off" "$REF_URL" "$REF_ACCESS"
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------------------
# Report (Markdown)

SERVER_CORES="$(count_cpus "$SERVER_CPUS")"
report() {
  local commit
  commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# restjwt load benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); restjwt commit $commit"
  echo "- machine: $(nproc --all) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); load average before $LOAD_BEFORE, after $LOAD_AFTER; ${IDLE_BEFORE}% idle before the run"
  echo "- client: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $WRK_THREADS thread(s), ${PHASE_SECONDS} s per phase, timeout $WRK_TIMEOUT"
  echo "- pinning: servers on CPUs '${SERVER_CPUS:-all}' ($SERVER_CORES core(s)), wrk on CPUs '${CLIENT_CPUS:-all}'; nice ${NICE:-0}"
  echo "- restjwt: release build, SQLite file, HS256, Argon2id m=19456 t=2 p=1"
  echo "- rotation phases: refresh tokens of $ROTATION_USERS user(s) (ROTATION_USERS)"
  if ((HAVE_REFERENCE)); then
    echo "- reference: gunicorn, $REFERENCE_WORKERS sync workers, Django + DRF + simplejwt 5.5.1, SQLite file, HS256, PBKDF2-SHA256 1,500,000 iterations"
  fi
  echo
  echo "Errors are non-2xx/3xx answers + socket errors (connect, read, write, timeout); req/s counts"
  echo "only 2xx/3xx answers. Peak RSS is VmHWM during the phase (the reference: master + workers,"
  echo "summed). CPU % is the server's CPU time over the phase (100 = one core busy; the servers have"
  echo "$SERVER_CORES core(s)). Ratios compare requests/s. A row marked \"2 instances\" had twice the"
  echo "table's connections in all, the table's per instance."
  awk -v have_ref="$HAVE_REFERENCE" -v cores="$SERVER_CORES" '
    function ms(us) { return us == "n/a" ? "n/a" : sprintf("%.2f", us / 1000) }
    function mib(kib) { return kib == "n/a" ? "n/a" : sprintf("%.1f", kib / 1024) }
    function rps(x) { return x == "n/a" ? "n/a (not implemented)" : sprintf("%.0f", x) }
    function errs(s, k) { return s == "n/a" ? "n/a" : s "+" k }
    function ratio(a, b) { return (a == "n/a" || b == "" || b == "n/a" || b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }
    {
      # endpoint names hold spaces: side first, the last 8 fields are numbers
      side = $1; conns = $(NF - 7)
      endpoint = $2; for (i = 3; i <= NF - 8; i++) endpoint = endpoint " " $i
      key = endpoint SUBSEP conns
      if (!(key in seen)) { seen[key] = 1; order[++n] = key; ep[n] = endpoint; cn[n] = conns }
      r[side, key] = $(NF - 6); p50[side, key] = $(NF - 5); p99[side, key] = $(NF - 4)
      se[side, key] = $(NF - 3); ke[side, key] = $(NF - 2); rss[side, key] = $(NF - 1); cpu[side, key] = $NF
      if (endpoint == "GET /healthz") ceiling[conns] = $(NF - 6)
    }
    END {
      last = ""
      for (i = 1; i <= n; i++) {
        key = order[i]
        # A two-instance phase belongs to the round it ran in: its row stays in that table.
        if (cn[i] != last && ep[i] !~ /2 instances\)$/) {
          print ""; print "## " cn[i] " connections"; print ""
          print "| endpoint | restjwt req/s | p50 ms | p99 ms | errors | peak RSS MiB | CPU % | reference req/s | p50 ms | p99 ms | errors | peak RSS MiB | CPU % | restjwt/reference | restjwt/ceiling |"
          print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          last = cn[i]
        }
        ref = (have_ref && (("reference", key) in r))
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", ep[i],
          rps(r["restjwt", key]), ms(p50["restjwt", key]), ms(p99["restjwt", key]),
          errs(se["restjwt", key], ke["restjwt", key]), mib(rss["restjwt", key]), cpu["restjwt", key],
          ref ? rps(r["reference", key]) : "-", ref ? ms(p50["reference", key]) : "-",
          ref ? ms(p99["reference", key]) : "-",
          ref ? errs(se["reference", key], ke["reference", key]) : "-",
          ref ? mib(rss["reference", key]) : "-", ref ? cpu["reference", key] : "-",
          ref ? ratio(r["restjwt", key], r["reference", key]) : "-",
          ratio(r["restjwt", key], ceiling[cn[i]])
      }
    }' "$RESULTS"

  if ((HAVE_PG)); then
    echo
    echo "## PostgreSQL beside SQLite (issue 14)"
    echo
    echo "One restjwt instance on CPU ${PG_CPU_A} against PostgreSQL 127.0.0.1 (unpinned, shared with"
    echo "wrk and everything else), then two (CPUs $PG2_CPUS) on the same database, wrk's two threads"
    echo "one per instance, each instance with the connections of the row (twice as many in all)."
    echo "PostgreSQL/SQLite compares the one-instance figure with SQLite's phase just before it."
    echo
    echo "| endpoint | connections | SQLite req/s | PostgreSQL req/s | PostgreSQL/SQLite | 2 instances req/s | 2 instances/1 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    awk '
      $1 != "restjwt" { next }
      { conns = $(NF - 7); endpoint = $2; for (i = 3; i <= NF - 8; i++) endpoint = endpoint " " $i
        r[endpoint, conns] = $(NF - 6); if (!(conns in seen)) { seen[conns] = 1; order[++n] = conns } }
      END {
        split("GET /api/user/|POST /api/token/refresh/|POST /api/token/refresh/ (rotate)|POST /api/token/refresh/ (many tokens)", eps, "|")
        for (c = 1; c <= n; c++) for (e = 1; e <= 4; e++) {
          ep = eps[e]; k = order[c]
          pg = (e >= 3) ? substr(ep, 1, length(ep) - 1) ", PostgreSQL)" : ep " (PostgreSQL)"
          pg2 = (e >= 3) ? substr(ep, 1, length(ep) - 1) ", PostgreSQL, 2 instances)" : ep " (PostgreSQL, 2 instances)"
          sq = r[ep, k]; one = r[pg, k]; two = r[pg2, 2 * k]
          if (one == "") continue
          printf "| %s | %d | %.0f | %.0f | %s | %s | %s |\n", ep, k, sq, one,
            (sq > 0 ? sprintf("%.2f", one / sq) : "n/a"), (two == "" ? "-" : sprintf("%.0f", two)),
            (two == "" ? "-" : (one > 0 ? sprintf("%.2f", two / one) : "n/a"))
        }
      }' "$RESULTS"
  fi

  if [[ -s "$WAITS" ]]; then
    echo
    echo "### What PostgreSQL's backends waited for"
    echo
    echo "Samples of pg_stat_activity every 100 ms during each PostgreSQL phase: the bench"
    echo "database's backends that were running a statement (CPU, or the event they waited for) or"
    echo "inside a transaction between statements (idle-in-transaction: waiting for restjwt's next"
    echo "statement). Per sample, the mean number of backends in each state; the top five."
    echo
    echo "| endpoint | connections | backends per sample by state |"
    echo "|---|---:|---|"
    awk -F'|' -v samples="$((PHASE_SECONDS * 10))" '
      { key = $1 SUBSEP $2; if (!(key in seen)) { seen[key] = 1; order[++n] = key; ep[n] = $1; cn[n] = $2 }
        count[key, $3] += $4; names[key] = names[key] "|" $3 }
      END {
        for (i = 1; i <= n; i++) {
          key = order[i]; m = split(substr(names[key], 2), list, "|"); line = ""
          for (shown = 0; shown < 5; shown++) {
            best = ""; for (j = 1; j <= m; j++) if (list[j] != "" && (best == "" || count[key, list[j]] > count[key, best])) best = list[j]
            if (best == "") break
            line = line (line == "" ? "" : ", ") sprintf("%s %.2f", best, count[key, best] / samples)
            for (j = 1; j <= m; j++) if (list[j] == best) list[j] = ""
          }
          printf "| %s | %s | %s |\n", ep[i], cn[i], line
        }
      }' "$WAITS"
  fi

  echo
  echo "## Per-request costs (the capacity model's inputs)"
  echo
  echo "CPU time per answered request during each phase, from /proc: restjwt (all its threads; both"
  echo "instances in the two-instance phases), PostgreSQL (the bench database's backends, those the"
  echo "pools opened during the phase included, plus the shared WAL writer, checkpointer and"
  echo "background writer), wrk, and the kernel: the machine's busy time that no process was"
  echo "charged for (loopback TCP's softirq work, mostly) beyond the other work measured over one"
  echo "idle second just before the phase (the last column: on a shared machine, the capacity that"
  echo "was not ours)."
  echo
  echo "| endpoint | connections | req/s | restjwt µs | PostgreSQL µs | wrk µs | kernel µs | other work, cores |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'|' -v tck="$CLK_TCK" -v secs="$PHASE_SECONDS" '$1 == "restjwt" && $4 > 0 {
      us = 1e6 / tck / $4
      kernel = $8 - $5 - $6 - $7 - $10 * secs; if (kernel < 0) kernel = 0
      printf "| %s | %d | %.0f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", $2, $3, $9, $5 * us, $6 * us, $7 * us, kernel * us, $10 / tck
    }' "$COSTS"
  if ((HAVE_PG)); then
    echo
    echo "### The model checked against the two-instance phases"
    echo
    echo "Predicted from the one-instance phase's costs: requests/s = min(instance bound, machine"
    echo "bound), where the instance bound is 2 cores / restjwt µs (each instance has a core) and the"
    echo "machine bound is the CPU left by other work before the two-instance phase (all cores minus"
    echo "other work's) over the CPU one request takes on the whole path (restjwt + PostgreSQL + wrk"
    echo "+ kernel)."
    echo
    echo "Connections are the two-instance phase's, in all: each instance had half, as many as the"
    echo "one-instance phase whose costs predict it."
    echo
    echo "| endpoint | connections | predicted req/s | measured req/s | measured/predicted | bound |"
    echo "|---|---:|---:|---:|---:|---|"
    awk -F'|' -v tck="$CLK_TCK" -v secs="$PHASE_SECONDS" -v cpus="$(nproc --all)" '
      $1 != "restjwt" || $4 <= 0 { next }
      { key = $2 SUBSEP $3; n[key] = $4; r[key] = $5; p[key] = $6; w[key] = $7; m[key] = $8; x[key] = $9; b[key] = $10
        if ($2 ~ /, 2 instances\)$/) { two[++t] = $2; tc[t] = $3 } }
      END {
        for (i = 1; i <= t; i++) {
          one = two[i]; sub(/, 2 instances\)$/, ")", one)
          # Each of the two instances had the connections of the one-instance phase.
          k1 = one SUBSEP (tc[i] / 2); k2 = two[i] SUBSEP tc[i]
          if (!(k1 in n)) continue
          cr = r[k1] / tck / n[k1]; cp = p[k1] / tck / n[k1]; cw = w[k1] / tck / n[k1]
          ck = (m[k1] - r[k1] - p[k1] - w[k1] - b[k1] * secs) / tck / n[k1]; if (ck < 0) ck = 0
          others = b[k2] / tck
          inst = 2 / cr; mach = (cpus - others) / (cr + cp + cw + ck)
          pred = (inst < mach) ? inst : mach
          printf "| %s | %d | %.0f | %.0f | %.2f | %s |\n", two[i], tc[i], pred, x[k2], x[k2] / pred, (inst < mach ? "instances" : "machine")
        }
      }' "$COSTS"
  fi

  echo
  echo "## Login"
  echo
  awk -v cores="$SERVER_CORES" '$2 == "POST" && $3 == "/api/token/" {
      printf "- %s, %d connections: %.1f logins/s on %d core(s) = %.1f logins/s per core (%s)\n",
        $1, $4, $5, cores, $5 / cores,
        ($1 == "restjwt" ? "Argon2id m=19456 KiB, t=2, p=1" : "PBKDF2-SHA256, 1,500,000 iterations")
    }' "$RESULTS"
  echo
  echo "## Login burst: $BURST_CONNECTIONS concurrent logins"
  echo
  echo "$BURST_CONNECTIONS connections log in back to back for ${PHASE_SECONDS} s while $PROBE_CONNECTIONS connections check a token"
  echo "(GET /api/user/) every ${PROBE_DELAY_MS} ms each; the same probe ran alone just before."
  echo
  echo "| server | logins/s | checks answered alone | check p99 alone ms | checks answered during burst | check p99 during burst ms | during/alone | check errors | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk '{ during = ($8 > 0 ? sprintf("%.2f", $4 / 1000) : "none answered")
         printf "| %s | %.1f | %d | %.2f | %d | %s | %s | %d | %.1f |\n", $1, $2, $7, $3 / 1000, $8, during,
         ($3 > 0 && $8 > 0 ? sprintf("%.2f", $4 / $3) : "n/a"), $5, $6 / 1024 }' "$BURST"

  echo
  echo "## Targets (issue 6)"
  echo
  awk -v burst="$BURST" -v have_ref="$HAVE_REFERENCE" '
    function verdict(ok) { return ok ? "met" : "NOT met" }
    {
      side = $1; conns = $(NF - 7)
      endpoint = $2; for (i = 3; i <= NF - 8; i++) endpoint = endpoint " " $i
      r[side, endpoint, conns] = $(NF - 6)
      if (side == "restjwt" && $NF != "n/a") {
        # Two-instance phases sum two processes: the target is for one server.
        if (endpoint !~ /2 instances/ && $(NF - 1) > peak) { peak = $(NF - 1); peak_at = endpoint ", " conns }
        if (conns == 256) { errors256 += $(NF - 3) + $(NF - 2); ran256 = 1 }
      }
    }
    END {
      c = 64
      u = r["restjwt", "GET /api/user/", c]; h = r["restjwt", "GET /healthz", c]
      if (h > 0) printf "- GET /api/user/ with the user row checked >= 60%% of the ceiling: %.0f%% at %d connections: %s\n", 100 * u / h, c, verdict(u / h >= 0.6)
      s = r["restjwt", "GET /api/user/ (stateless)", c]
      if (h > 0) printf "- GET /api/user/ stateless >= 75%% of the ceiling: %.0f%% at %d connections: %s\n", 100 * s / h, c, verdict(s / h >= 0.75)
      if (have_ref) {
        ur = r["reference", "GET /api/user/", c]
        if (ur > 0) printf "- GET /api/user/ >= 50x the reference: %.1fx: %s\n", u / ur, verdict(u / ur >= 50)
        f = r["restjwt", "POST /api/token/refresh/", c]; fr = r["reference", "POST /api/token/refresh/", c]
        if (fr > 0) printf "- refresh (rotation off) >= 40x the reference: %.1fx: %s\n", f / fr, verdict(f / fr >= 40)
        rr = r["restjwt", "POST /api/token/refresh/ (rotate)", c]
        if (rr == "n/a") print "- refresh (rotation + blacklist) >= 8x the reference: n/a (not implemented in restjwt)"
        else if (r["reference", "POST /api/token/refresh/ (rotate)", c] > 0) {
          x = rr / r["reference", "POST /api/token/refresh/ (rotate)", c]
          printf "- refresh (rotation + blacklist) >= 8x the reference: %.1fx: %s\n", x, verdict(x >= 8)
        }
      }
      while ((getline line < burst) > 0) {
        split(line, b, " ")
        if (b[1] == "restjwt") {
          printf "- check p99 during the login burst within 2x of alone: %.2fx: %s\n", (b[3] > 0 ? b[4] / b[3] : 0), verdict(b[3] > 0 && b[8] > 0 && b[4] <= 2 * b[3] && b[5] == 0)
          printf "- peak RSS during the login burst < 100 MiB: %.1f MiB: %s\n", b[6] / 1024, verdict(b[6] < 100 * 1024)
        }
      }
      printf "- peak RSS under load < 64 MiB: %.1f MiB (%s): %s\n", peak / 1024, peak_at, verdict(peak < 64 * 1024)
      if (ran256) printf "- no errors at 256 connections: %d errors: %s\n", errors256, verdict(errors256 == 0)
    }' "$RESULTS"
  echo
  echo "## Targets (issue 14)"
  echo
  awk -v have_pg="$HAVE_PG" '
    function verdict(ok) { return ok ? "met" : "NOT met" }
    { conns = $(NF - 7); endpoint = $2; for (i = 3; i <= NF - 8; i++) endpoint = endpoint " " $i
      if ($1 == "restjwt") r[endpoint, conns] = $(NF - 6) }
    END {
      c = 64; h = r["GET /healthz", c]
      rot = r["POST /api/token/refresh/ (rotate)", c]
      if (h > 0) printf "- rotation (rotation + blacklist, reuse detection on) >= 0.2 of the ceiling on SQLite: %.2f at %d connections: %s\n", rot / h, c, verdict(rot / h >= 0.2)
      if (have_pg) {
        prot = r["POST /api/token/refresh/ (rotate, PostgreSQL)", c]
        if (h > 0) printf "- rotation on PostgreSQL (reported): %.0f/s, %.2f of the ceiling\n", prot, prot / h
        u = r["GET /api/user/", c]; pu = r["GET /api/user/ (PostgreSQL)", c]
        if (u > 0) printf "- GET /api/user/ on PostgreSQL >= 0.5 of SQLite: %.2f: %s\n", pu / u, verdict(pu / u >= 0.5)
        f = r["POST /api/token/refresh/", c]; pf = r["POST /api/token/refresh/ (PostgreSQL)", c]
        if (f > 0) printf "- refresh on PostgreSQL >= 0.4 of SQLite: %.2f: %s\n", pf / f, verdict(pf / f >= 0.4)
        m = r["POST /api/token/refresh/ (many tokens)", c]; pm = r["POST /api/token/refresh/ (many tokens, PostgreSQL)", c]
        if (m > 0) printf "- refresh of many tokens on PostgreSQL >= 0.4 of SQLite: %.2f: %s\n", pm / m, verdict(pm / m >= 0.4)
      }
    }' "$RESULTS"
}

mkdir -p "$ROOT/target/bench"
report | tee "$ROOT/target/bench/load.md"
log "report kept in target/bench/load.md; raw wrk output was in $TMP (removed)"
