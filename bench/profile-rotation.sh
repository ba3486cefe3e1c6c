#!/usr/bin/env bash
# Where a rotation's time goes: a release server with rotation + blacklist on a fresh SQLite
# file (CPU 0), wrk spending 64 refresh tokens once each (CPU 1, bench/wrk.lua), and
# `perf record -g` of the server for 5 s; prints the throughput, the hottest symbols and the
# directory that keeps perf.data (for `perf report -i DIR/perf.data`).
#
#   bash bench/profile-rotation.sh [BIN]   (default: target/release/restjwt)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/restjwt}"; D="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-prof.XXXXXX")"
export DATABASE_URL="sqlite://$D/db.sqlite3"
RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$BIN" createsuperuser --noinput --username bob --email bob@example.com >/dev/null
env RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true RESTJWT_ACCESS_TOKEN_LIFETIME=1h \
  taskset -c 0 "$BIN" serve --bind 127.0.0.1:0 2>"$D/log" &
PID=$!
for _ in $(seq 100); do PORT="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$D/log" | head -n1)"; [ -n "$PORT" ] && break; sleep 0.1; done
seq 64 | xargs -P 2 -I{} curl -s -X POST -H 'Content-Type: application/json' -d '{"username":"bob","password":"bob-pass-1234"}' "http://127.0.0.1:$PORT/api/token/" | grep -o '"refresh":"[^"]*"' | cut -d'"' -f4 > "$D/tokens"
(cd "$ROOT" && BENCH_REFRESH_TOKENS="$D/tokens" BENCH_THREADS=1 taskset -c 1 wrk -t1 -c64 -d8s -s bench/wrk.lua "http://127.0.0.1:$PORT/api/token/refresh/" > "$D/wrk.txt" 2>&1) &
W=$!
sleep 2
perf record -F 999 -g -p "$PID" -o "$D/perf.data" -- sleep 5 >/dev/null 2>&1 || true
wait $W
cat "$D/wrk.txt" | grep -E "Requests/sec|RESULT|Non-2xx"
kill -INT $PID; wait $PID 2>/dev/null || true
perf report -i "$D/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -40
echo "$D"
