#!/usr/bin/env bash
# Alternating A/B of GET /api/user/ between two restjwt binaries (e.g. main's and a branch's
# release builds): each round starts A, then B (and B again with every ENV_B2 setting), each on
# a fresh SQLite file, warms it for 2 s and loads it with wrk for SECS seconds. Alternating
# spreads a shared machine's noise over both; compare the ratios of the rounds, not the totals.
#
#   bash bench/ab.sh BIN_A BIN_B [BIN_C ...]
#
# With more than two binaries, each round runs them all in order, and each line ends with every
# one's ratios to A (B/A, C/A, ...). At the end, the medians of the rounds' ratios.
#
# Settings (environment): ROUNDS (3), SECS (10), CONN (64), SERVER_CPUS (0), CLIENT_CPUS (1),
# ENV_B2 (e.g. "RESTJWT_METRICS=off": a third variant, B with these settings), ENDPOINT ("user":
# GET /api/user/ with the access token; "refresh": POST /api/token/refresh/ with one refresh
# token, without rotation; "rotate": POST /api/token/refresh/ with rotation + blacklist, CONN
# sessions each spending its own chain of refresh tokens; "healthz": GET /healthz, the
# ceiling; "verify": POST /api/token/verify/ with the access token), ENV (settings given to
# every variant, e.g. "RESTJWT_THROTTLE_RATES={...}"). Only 127.0.0.1 is contacted; every
# wait is bounded.
set -euo pipefail
A="$(realpath "$1")"; B="$(realpath "$2")"
EXTRA=()
for bin in "${@:3}"; do EXTRA+=("$(realpath "$bin")"); done
ROUNDS="${ROUNDS:-3}"; SECS="${SECS:-10}"; CONN="${CONN:-64}"
SERVER_CPUS="${SERVER_CPUS:-0}"; CLIENT_CPUS="${CLIENT_CPUS:-1}"; ENV_B2="${ENV_B2:-}"
ENDPOINT="${ENDPOINT:-user}"; ENV="${ENV:-}"
command -v wrk >/dev/null || { echo "bench/ab.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
WRK_LUA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wrk.lua"

run() { # NAME BIN [SETTING=VALUE...]
  local name=$1 bin=$2; shift 2
  local dir pid base="" pair token rps url out
  local load=()
  dir="$(mktemp -d "${TMPDIR:-/tmp}/restjwt-ab.XXXXXX")"
  (cd "$dir" && env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" \
    RESTJWT_SUPERUSER_PASSWORD=bob-pass-1234 "$bin" createsuperuser --noinput \
    --username bob --email bob@example.com >/dev/null)
  # shellcheck disable=SC2086
  local rotation=()
  [ "$ENDPOINT" = rotate ] && rotation=(RESTJWT_ROTATE_REFRESH_TOKENS=true RESTJWT_BLACKLIST_AFTER_ROTATION=true RESTJWT_THROTTLE_ENABLED=false)
  (cd "$dir" && exec env -i PATH="$PATH" DATABASE_URL="sqlite://$dir/db.sqlite3" "${rotation[@]}" $ENV "$@" \
    taskset -c "$SERVER_CPUS" "$bin" serve --bind 127.0.0.1:0 2>"$dir/log") &
  pid=$!
  for _ in $(seq 1 200); do
    base="$(grep -o 'listening on http://[0-9.:]*' "$dir/log" | sed 's/listening on //' || true)"
    [ -n "$base" ] && break
    sleep 0.05
  done
  [ -n "$base" ] || { echo "$name did not start" >&2; cat "$dir/log" >&2; exit 1; }
  pair="$(curl -s -X POST -d 'username=bob&password=bob-pass-1234' "$base/api/token/")"
  if [ "$ENDPOINT" = rotate ]; then
    # One session per connection (wrk.lua gives each connection its own token).
    seq "$CONN" | xargs -P 2 -I{} curl -s -X POST -d 'username=bob&password=bob-pass-1234' \
      "$base/api/token/" | grep -o '"refresh":"[^"]*"' | cut -d'"' -f4 >"$dir/tokens"
    load=(env BENCH_REFRESH_TOKENS="$dir/tokens" BENCH_THREADS=1 taskset -c "$CLIENT_CPUS"
      wrk -t1 -c"$CONN" -s "$WRK_LUA")
    url="$base/api/token/refresh/"
  elif [ "$ENDPOINT" = healthz ]; then
    load=(taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONN")
    url="$base/healthz"
  elif [ "$ENDPOINT" = verify ]; then
    token="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])' <<<"$pair")"
    load=(env BENCH_BODY="{\"token\":\"$token\"}" taskset -c "$CLIENT_CPUS"
      wrk -t1 -c"$CONN" -s "$WRK_LUA")
    url="$base/api/token/verify/"
  elif [ "$ENDPOINT" = refresh ]; then
    token="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["refresh"])' <<<"$pair")"
    load=(env BENCH_BODY="{\"refresh\":\"$token\"}" taskset -c "$CLIENT_CPUS"
      wrk -t1 -c"$CONN" -s "$WRK_LUA")
    url="$base/api/token/refresh/"
  else
    token="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])' <<<"$pair")"
    load=(taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONN" -H "Authorization: Bearer $token")
    url="$base/api/user/"
  fi
  "${load[@]}" -d2s "$url" >/dev/null
  # The server's CPU time per request too (utime + stime from /proc, after the command name):
  # on a busy machine it moves much less than requests/s.
  local before after requests
  before="$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')"
  out="$("${load[@]}" -d"${SECS}s" "$url")"
  after="$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  cpu_us="$(python3 -c "print(round(($after - $before) * 1e6 / $(getconf CLK_TCK) / max($requests, 1), 1))")"
  # Refused requests are cheap: a figure with any of them compares nothing.
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$name: $(grep "Non-2xx" <<<"$out")" >&2
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  printf '%s %s %s\n' "$name" "$rps" "$cpu_us"
}

# Each variant prints "NAME REQUESTS/S CPU-µs/REQUEST"; the line ends with B's ratios to A:
# requests/s, and CPU per request (below 1: B spends less).
echo "each variant: NAME requests/s CPU-µs/request ($ENDPOINT)"
RATIOS="$(mktemp "${TMPDIR:-/tmp}/restjwt-ab-ratios.XXXXXX")"
for round in $(seq 1 "$ROUNDS"); do
  a="$(run A "$A")"; b="$(run B "$B")"
  line="round $round: $a, $b"
  if [ -n "$ENV_B2" ]; then
    # shellcheck disable=SC2086
    line="$line, $(run "B($ENV_B2)" "$B" $ENV_B2)"
  fi
  read -r _ a_rps a_cpu <<<"$a"; read -r _ b_rps b_cpu <<<"$b"
  ratios="B/A=$(python3 -c "print(round($b_rps / $a_rps, 3))") CPU B/A=$(python3 -c "print(round($b_cpu / $a_cpu, 3))")"
  letter=C
  for bin in "${EXTRA[@]}"; do
    c="$(run "$letter" "$bin")"
    read -r _ c_rps c_cpu <<<"$c"
    line="$line, $c"
    ratios="$ratios $letter/A=$(python3 -c "print(round($c_rps / $a_rps, 3))") CPU $letter/A=$(python3 -c "print(round($c_cpu / $a_cpu, 3))")"
    letter="$(echo "$letter" | tr 'A-Y' 'B-Z')"
  done
  echo "$line  $ratios"
  echo "$ratios" >>"$RATIOS"
done
if [ "$ROUNDS" -gt 1 ]; then
  # "X/A=r" and "CPU X/A=r" columns: the median of each over the rounds.
  python3 - "$RATIOS" <<'PY'
import statistics, sys
columns = {}
for line in open(sys.argv[1]):
    words = line.split()
    i = 0
    while i < len(words):
        name = words[i]
        if name == "CPU":
            i += 1
            name = "CPU " + words[i]
        key, value = name.split("=")
        columns.setdefault(key, []).append(float(value))
        i += 1
print("median over the rounds: " + ", ".join(f"{k}={statistics.median(v):.3f}" for k, v in columns.items()))
PY
fi
rm -f "$RATIOS"
