#!/usr/bin/env bash
# Alternating A/B of GET /api/user/ between two restjwt binaries (e.g. main's and a branch's
# release builds): each round starts A, then B (and B again with every ENV_B2 setting), each on
# a fresh SQLite file, warms it for 2 s and loads it with wrk for SECS seconds. Alternating
# spreads a shared machine's noise over both; compare the ratios of the rounds, not the totals.
# Each run also reports the server's CPU time per request (from /proc), which other work on
# the machine disturbs less than requests/s.
#
#   bash bench/ab.sh BIN_A BIN_B
#
# Settings (environment): ROUNDS (3), SECS (10), CONN (64), SERVER_CPUS (0), CLIENT_CPUS (1),
# ENV_B2 (e.g. "RESTJWT_METRICS=off": a third variant, B with these settings). Only 127.0.0.1
# is contacted; every wait is bounded.
set -euo pipefail
A="$(realpath "$1")"; B="$(realpath "$2")"
ROUNDS="${ROUNDS:-3}"; SECS="${SECS:-10}"; CONN="${CONN:-64}"
SERVER_CPUS="${SERVER_CPUS:-0}"; CLIENT_CPUS="${CLIENT_CPUS:-1}"; ENV_B2="${ENV_B2:-}"

run() { # NAME BIN [SETTING=VALUE...]
  local name=$1 bin=$2; shift 2
  local dir pid base="" token rps
  dir="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-ab.XXXXXX")"
  (cd "$dir" && env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" \
    RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$bin" createsuperuser --noinput \
    --username bob --email bob@example.com >/dev/null)
  (cd "$dir" && exec env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" "$@" \
    taskset -c "$SERVER_CPUS" "$bin" serve --bind 127.0.0.1:0 2>"$dir/log") &
  pid=$!
  for _ in $(seq 1 200); do
    base="$(grep -o 'listening on http://[0-9.:]*' "$dir/log" | sed 's/listening on //' || true)"
    [ -n "$base" ] && break
    sleep 0.05
  done
  [ -n "$base" ] || { echo "$name did not start" >&2; cat "$dir/log" >&2; exit 1; }
  token="$(curl -s -X POST -d 'username=bob&password=bob-pass-1234' "$base/api/token/" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])')"
  taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONN" -d2s -H "Authorization: Bearer $token" \
    "$base/api/user/" >/dev/null
  local before after out requests
  before="$(cpu_ticks "$pid")"
  out="$(taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONN" -d"${SECS}s" \
    -H "Authorization: Bearer $token" "$base/api/user/")"
  after="$(cpu_ticks "$pid")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  # The server's CPU time per request (user + system, in microseconds): what the code costs,
  # less disturbed than requests/s by other work on a shared machine.
  printf '%s %s %s\n' "$name" "$rps" \
    "$(python3 -c "print(round(($after - $before) * 1e6 / $CLK_TCK / $requests, 1))")"
}

CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { # PID: its user + system time so far, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

for round in $(seq 1 "$ROUNDS"); do
  read -r _ a_rps a_cpu <<<"$(run A "$A")"; read -r _ b_rps b_cpu <<<"$(run B "$B")"
  line="round $round: A $a_rps/s ${a_cpu}us, B $b_rps/s ${b_cpu}us"
  if [ -n "$ENV_B2" ]; then
    # shellcheck disable=SC2086
    line="$line, $(run "B($ENV_B2)" "$B" $ENV_B2)"
  fi
  echo "$line  B/A=$(python3 -c "print(round($b_rps / $a_rps, 2))") \
CPU B/A=$(python3 -c "print(round($b_cpu / $a_cpu, 2))")"
done
