#!/usr/bin/env bash
# What a flood of wrong-password logins does to a legitimate login (issue 16), with throttling
# on and off, in one run of one binary: each mode starts BIN on a fresh SQLite file with two
# users, measures LOGINS sequential logins of bob from 127.0.0.3 alone, then again while
# FLOOD_CONNECTIONS keep-alive connections from 127.0.0.2 post wrong passwords for alice as
# fast as they are answered. The legitimate logins are of LOGINS users, one each per phase
# (a user logging in 20 times a minute would meet their own limit). Prints the medians and
# p90s and the flood's rate and statuses.
#
#   bash bench/flood.sh BIN
#
# Settings (environment): FLOOD_CONNECTIONS (32), LOGINS (20), WARMUP_SECS (3). Only loopback
# addresses are contacted; every wait is bounded; the server is stopped on any exit.
set -euo pipefail
BIN="$(realpath "$1")"
FLOOD_CONNECTIONS="${FLOOD_CONNECTIONS:-32}"; LOGINS="${LOGINS:-20}"; WARMUP_SECS="${WARMUP_SECS:-3}"

pid=""; dir=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; [ -z "$dir" ] || rm -rf "$dir"; }
trap cleanup EXIT

run() { # THROTTLE_ENABLED
  local mode=$1 base=""
  dir="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-flood.XXXXXX")"
  for user in alice $(seq -f 'user%g' 1 "$LOGINS"); do
    (cd "$dir" && env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" \
      RESTJWT_SUPERUSER_PASSWORD="$user-pass-1234" "$BIN" createuser --noinput \
      --username "$user" --email "$user@example.com" >/dev/null)
  done
  (cd "$dir" && exec env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" \
    RESTJWT_THROTTLE_ENABLED="$mode" "$BIN" serve --bind 127.0.0.1:0 2>"$dir/log") &
  pid=$!
  for _ in $(seq 1 200); do
    base="$(grep -o 'listening on http://[0-9.:]*' "$dir/log" | sed 's/listening on //' || true)"
    [ -n "$base" ] && break
    sleep 0.05
  done
  [ -n "$base" ] || { echo "the server did not start" >&2; cat "$dir/log" >&2; exit 1; }
  python3 - "$base" "$mode" "$FLOOD_CONNECTIONS" "$LOGINS" "$WARMUP_SECS" <<'PY'
import http.client, json, statistics, sys, threading, time, collections
base, mode, conns, logins, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
host, port = base.removeprefix("http://").split(":")
port = int(port)

def post(conn, username, password):
    body = json.dumps({"username": username, "password": password})
    conn.request("POST", "/api/token/", body, {"content-type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    return answer.status

def legit(n):
    times = []
    for i in range(1, n + 1):
        conn = http.client.HTTPConnection(host, port, timeout=60, source_address=("127.0.0.3", 0))
        start = time.perf_counter()
        status = post(conn, f"user{i}", f"user{i}-pass-1234")
        times.append((time.perf_counter() - start) * 1e3)
        conn.close()
        assert status == 200, status
    times.sort()
    return statistics.median(times), times[int(round((len(times) - 1) * 0.9))]

alone = legit(logins)
stop = threading.Event()
statuses = collections.Counter()
lock = threading.Lock()

def flood():
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30, source_address=("127.0.0.2", 0))
            status = post(conn, "alice", "wrong-pass-1")
        except Exception:
            status, conn = "error", None
        with lock:
            statuses[status] += 1

threads = [threading.Thread(target=flood, daemon=True) for _ in range(conns)]
for t in threads:
    t.start()
time.sleep(warmup)
with lock:
    before = sum(statuses.values())
started = time.perf_counter()
under = legit(logins)
elapsed = time.perf_counter() - started
with lock:
    during = sum(statuses.values()) - before
stop.set()
for t in threads:
    t.join(timeout=35)
print(f"THROTTLE_ENABLED={mode}: a user alone p50 {alone[0]:.1f} ms p90 {alone[1]:.1f} ms; "
      f"under the flood p50 {under[0]:.1f} ms p90 {under[1]:.1f} ms "
      f"(x{under[0] / alone[0]:.1f}); flood {during / elapsed:.0f} logins/s, statuses {dict(statuses)}")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  rm -rf "$dir"; dir=""
}

run true
run false
