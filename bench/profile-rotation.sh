#!/usr/bin/env bash
# Where a refresh's time goes: a release server (CPU 0) with rotation + blacklist on a fresh
# SQLite file, wrk spending 64 refresh tokens once each (CPU 1, bench/wrk.lua), and
# `perf record -e cpu-clock -g` of the server for 5 s (a software clock: it works where the
# virtual machine has no hardware counters); prints the throughput, the hottest symbols, the
# system calls' shares and the directory that keeps perf.data (`perf report -i DIR/perf.data`).
#
#   bash bench/profile-rotation.sh [BIN]   (default: target/release/restjwt)
#
# Settings (environment): ROTATE (1; 0: refresh without rotation, one token sent again and
# again), PROFILE_DATABASE_URL (default: a fresh SQLite file; a PostgreSQL URL profiles that
# store: its database must exist and be empty or restjwt's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/restjwt}"; D="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-prof.XXXXXX")"
ROTATE="${ROTATE:-1}"
export RESTJWT_SIGNING_KEY="${RESTJWT_SIGNING_KEY:-profile-signing-key-0123456789-0123456789-0123456789}" RESTJWT_THROTTLE_ENABLED=false DATABASE_URL="${PROFILE_DATABASE_URL:-sqlite://$D/db.sqlite3}"
"$BIN" migrate >/dev/null 2>&1
RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$BIN" createsuperuser --noinput --username bob --email bob@example.com >/dev/null 2>&1 || true
ROTATION=(RESTJWT_ROTATE_REFRESH_TOKENS=false)
[ "$ROTATE" = 1 ] && ROTATION=(RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true)
env "${ROTATION[@]}" RESTJWT_ACCESS_TOKEN_LIFETIME=1h \
  taskset -c 0 "$BIN" serve --bind 127.0.0.1:0 2>"$D/log" &
PID=$!
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || { cat "$D/log" >&2; exit 1; }; PORT="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$D/log" | head -n1)"; [ -n "$PORT" ] && break; sleep 0.1; done
seq 64 | xargs -P 2 -I{} curl -s -X POST -H 'Content-Type: application/json' -d '{"username":"bob","password":"bob-pass-1234"}' "http://127.0.0.1:$PORT/api/token/" | grep -o '"refresh":"[^"]*"' | cut -d'"' -f4 > "$D/tokens"
if [ "$ROTATE" = 1 ]; then
  LOAD=(env BENCH_REFRESH_TOKENS="$D/tokens" BENCH_THREADS=1)
else
  LOAD=(env BENCH_BODY="{\"refresh\":\"$(head -n1 "$D/tokens")\"}")
fi
(cd "$ROOT" && "${LOAD[@]}" taskset -c 1 wrk -t1 -c64 -d8s -s bench/wrk.lua "http://127.0.0.1:$PORT/api/token/refresh/" > "$D/wrk.txt" 2>&1) &
W=$!
sleep 2
perf record -e cpu-clock -F 999 -g -p "$PID" -o "$D/perf.data" -- sleep 5 >/dev/null 2>&1 || true
wait $W
grep -E "Requests/sec|RESULT|Non-2xx" "$D/wrk.txt"
kill -INT $PID; wait $PID 2>/dev/null || true
echo "-- by binary"
perf report -i "$D/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep "%" | head -6
echo "-- system calls (inclusive)"
perf report -i "$D/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -E "__x64_sys_" | cut -c1-100 | head -12
echo "-- hottest symbols (exclusive)"
perf report -i "$D/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | cut -c1-160 | grep -v "^#" | grep "%" | head -30
echo "$D"
