-- wrk script for bench/load.sh. Configured through the environment:
--   BENCH_BODY            a JSON body: the requests become POSTs with Content-Type: application/json
--   BENCH_REFRESH_TOKENS  a file of refresh tokens, one a line: each request spends one and the
--                         200's new refresh token goes back in the pool (rotation + blacklist,
--                         where every refresh token works once); the tokens are split between
--                         wrk's threads
--   BENCH_REUSE_TOKENS    1: with BENCH_REFRESH_TOKENS and rotation off, each token is sent
--                         again after the others (the pool's tokens in turn), instead of once
--   BENCH_DELAY_MS        wait this long before each request on a connection (a latency probe
--                         at a bounded rate instead of a saturating load)
--   BENCH_ADDRS           "HOST:PORT HOST:PORT ...": wrk's threads are given these servers in
--                         turn (thread 1 the first, thread 2 the second, ...), so the
--                         connections are split evenly between instances (a round-robin client);
--                         use at least as many threads as servers
-- done() prints one machine-readable RESULT line that load.sh parses.

local body = os.getenv("BENCH_BODY")
local tokens_file = os.getenv("BENCH_REFRESH_TOKENS")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local reuse = os.getenv("BENCH_REUSE_TOKENS") == "1"

if body then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

local addrs = {}
for addr in (os.getenv("BENCH_ADDRS") or ""):gmatch("%S+") do
  addrs[#addrs + 1] = addr
end
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  if #addrs > 0 then
    local host, port = addrs[next_id % #addrs + 1]:match("^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
  next_id = next_id + 1
end

if tokens_file then

  function init(args)
    local count = tonumber(os.getenv("BENCH_THREADS") or "1")
    pool = {}
    local i = 0
    for line in io.lines(tokens_file) do
      if line ~= "" and i % count == thread_id then
        pool[#pool + 1] = line
      end
      i = i + 1
    end
    -- wrk calls request() once on the first thread to check the script before any connection
    -- starts (script_verify_request): that request is never sent, so it must not spend a token.
    checking = (thread_id == 0)
  end

  function request()
    local token
    if checking then
      checking = false
      token = pool[#pool] or ""
    else
      -- Each token is sent once: a resent, rotated-out token is a reuse, and reuse detection
      -- rightly ends its whole session. An empty pool means refreshes failed (their errors
      -- are counted): send a request that spends nothing and is refused with a 400.
      token = table.remove(pool) or ""
      if reuse and token ~= "" then
        -- Without rotation a token works again: back to the front of the pool, so the
        -- connections take the tokens in turn.
        table.insert(pool, 1, token)
      end
    end
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
      '{"refresh":"' .. token .. '"}')
  end

  function response(status, headers, response_body)
    if status == 200 then
      local refresh = response_body:match('"refresh"%s*:%s*"([^"]+)"')
      if refresh and not reuse then
        pool[#pool + 1] = refresh
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
