#!/usr/bin/env bash
# Instructions per rotation, counted by valgrind's callgrind: a release server on a fresh SQLite
# file (rotation + blacklist), one client rotating one session's token N times in sequence
# (batches of one), after 200 rotations of warm-up; counting is zeroed before and dumped after
# the N. Counts repeat within a few percent whatever else the machine does, so two binaries
# compare on a noisy host where `bench/ab.sh` cannot resolve a few percent. It counts user-space
# instructions only (no system calls, no cache misses), and under valgrind the CPU has no
# SHA extensions, so hashing weighs more than on the hardware.
#
#   bash bench/callgrind-rotation.sh BIN [N]     (N: 2000)
#
# Prints the total and per rotation, and the callgrind file for `callgrind_annotate`.
# Needs valgrind; only 127.0.0.1 is contacted; every wait is bounded.
set -euo pipefail
command -v valgrind >/dev/null || { echo "bench/callgrind-rotation.sh: valgrind is not installed" >&2; exit 1; }
BIN="$(realpath "$1")"; N=${2:-2000}; D=$(mktemp -d "${TMPDIR:-/tmp}/restjwt-cg.XXXXXX")
export RESTJWT_SIGNING_KEY=profile-signing-key-0123456789-0123456789-0123456789 RESTJWT_THROTTLE_ENABLED=false DATABASE_URL=sqlite://$D/db.sqlite3
"$BIN" migrate >/dev/null 2>&1
RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$BIN" createsuperuser --noinput --username bob --email bob@example.com >/dev/null 2>&1
RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true valgrind --tool=callgrind --callgrind-out-file=$D/cg.out "$BIN" serve --bind 127.0.0.1:0 2>$D/log &
PID=$!
for _ in $(seq 300); do PORT="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' $D/log | head -n1)"; [ -n "$PORT" ] && break; sleep 0.2; done
[ -n "${PORT:-}" ] || { echo "the server did not start" >&2; cat "$D/log" >&2; kill "$PID" 2>/dev/null; exit 1; }
# The client: logs in when the token file is empty, then rotates COUNT times and keeps the
# last refresh token in the file.
cat >"$D/client.py" <<'PY'
import http.client, json, sys
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def post(url, body):
    c.request("POST", url, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read())
refresh = open(path).read()
if not refresh:
    refresh = post("/api/token/", {"username": "bob", "password": "bob-pass-1234"})[1]["refresh"]
for _ in range(count):
    status, pair = post("/api/token/refresh/", {"refresh": refresh})
    assert status == 200, pair
    refresh = pair["refresh"]
open(path, "w").write(refresh)
PY
: >"$D/token"
python3 "$D/client.py" "$PORT" 200 "$D/token"
callgrind_control -z "$PID" >/dev/null
python3 "$D/client.py" "$PORT" "$N" "$D/token"
callgrind_control -d $PID >/dev/null
kill -INT $PID; wait $PID 2>/dev/null || true
F=$D/cg.out.1
TOTAL=$(callgrind_annotate "$F" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",","",$1); print $1}')
echo "$BIN: $TOTAL instructions over $N rotations, $((TOTAL / N)) per rotation ($F)"
