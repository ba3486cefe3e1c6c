#!/usr/bin/env bash
# Which B-trees a rotation's commits write: a release server (CPU 0) with rotation + blacklist
# on a fresh SQLite file, wrk spending 64 sessions' refresh tokens (CPU 1, bench/wrk.lua); after
# 5 s the server is stopped (SIGSTOP), its database and WAL copied, and the WAL read frame by
# frame: each frame names its page, each commit frame ends a transaction, and SQLite's `dbstat`
# names the B-tree of each page. Prints, per commit, how many distinct pages of each B-tree it
# wrote. Needs the sqlite3 module of python3 with dbstat (Debian's has it).
#
#   bash bench/wal-pages.sh [BIN]   (default: target/release/restjwt)
#
# A WAL that a checkpoint has just restarted holds no frames yet: run it again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/target/release/restjwt}")"
D="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-wal.XXXXXX")"
command -v wrk >/dev/null || { echo "bench/wal-pages.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
run() { (cd "$D" && exec env -i PATH="$PATH" DATABASE_URL="sqlite://$D/db.sqlite3" "$@"); }
run RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$BIN" createsuperuser --noinput --username bob \
  --email bob@example.com >/dev/null
run RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true \
  RESTJWT_THROTTLE_ENABLED=false taskset -c 0 "$BIN" serve --bind 127.0.0.1:0 >/dev/null 2>"$D/log" &
PID=$!
trap 'kill -CONT $PID 2>/dev/null; kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
BASE=""
for _ in $(seq 200); do
  BASE="$(grep -o 'listening on http://[0-9.:]*' "$D/log" | sed 's/listening on //' || true)"
  [ -n "$BASE" ] && break
  sleep 0.05
done
[ -n "$BASE" ] || { cat "$D/log" >&2; exit 1; }
seq 64 | xargs -P 2 -I{} curl -s -X POST -d 'username=bob&password=bob-pass-1234' "$BASE/api/token/" \
  | grep -o '"refresh":"[^"]*"' | cut -d'"' -f4 >"$D/tokens"
(cd "$ROOT" && BENCH_REFRESH_TOKENS="$D/tokens" BENCH_THREADS=1 taskset -c 1 wrk -t1 -c64 -d7s \
  -s bench/wrk.lua "$BASE/api/token/refresh/" >"$D/wrk.txt") &
LOAD=$!
sleep 5
kill -STOP "$PID"
mkdir "$D/copy"
cp "$D/db.sqlite3" "$D/db.sqlite3-wal" "$D/copy/"
kill -CONT "$PID"
wait "$LOAD" || true
python3 - "$D/copy" <<'PY'
import collections, sqlite3, struct, sys
d = sys.argv[1]
wal = open(d + "/db.sqlite3-wal", "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">8I", wal[:32])
commits, current, offset = [], [], 32
# Frames of the WAL's current generation carry its salts; what follows is left from before.
while offset + 24 + page_size <= len(wal):
    page, commit, s1, s2 = struct.unpack(">4I", wal[offset:offset + 16])
    if (s1, s2) != (salt1, salt2):
        break
    current.append(page)
    if commit:
        commits.append(set(current))
        current = []
    offset += 24 + page_size
if not commits:
    sys.exit("the WAL had just been restarted by a checkpoint: run the script again")
owner = dict((page, name) for name, page in sqlite3.connect(d + "/db.sqlite3").execute("SELECT name, pageno FROM dbstat"))
pages = collections.Counter(owner.get(p, "?") for c in commits for p in c)
print(f"{len(commits)} commits, {sum(map(len, commits)) / len(commits):.1f} distinct pages per commit")
for name, n in pages.most_common(12):
    print(f"{n / len(commits):8.1f}  {name}")
PY
