-- wrk script for bench_http.py and bench_postgres.py: POST one canonical
-- decision-like record (about 650 bytes, the shape of bench/common.py's) per
-- request to /v1/entries, with the bearer token from AGENTGATE_WRITE_TOKEN.
-- Records are numbered by AGENTGATE_BENCH_RUN, the wrk thread and a counter,
-- so every body of every run is distinct.

local token = os.getenv("AGENTGATE_WRITE_TOKEN")
local run = tonumber(os.getenv("AGENTGATE_BENCH_RUN") or "0")
local threads = 0
local counter = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

local function hex64(n)
  return string.format("%016x%016x%016x%016x", n, n * 3 + 1, n * 7 + 5, n * 11 + 9)
end

request = function()
  counter = counter + 1
  local n = run * 1000000000000 + thread_id * 100000000 + counter
  -- Members in RFC 8785 order (sorted by UTF-16 code units): the bytes are
  -- canonical JCS, as the log requires.
  local body = string.format(
    '{"agent":"agent.example/worker","arguments":{"amount":"commit:%s",' ..
    '"recipient":"commit:%s"},"chain":["c-%032x","c-%032x"],' ..
    '"id":"d-%032x","policy":"p-%s","reasons":[{"rule":"amount_threshold",' ..
    '"text":"amount below 100 EUR"}],"score":0.93,"session":"s-%032x",' ..
    '"time":"2026-12-04T10:00:00.000000Z","tool":"send_payment",' ..
    '"type":"decision","verdict":"allow","version":1}',
    hex64(n), hex64(n + 1), n, n + 1, n, hex64(n + 2), thread_id)
  return wrk.format("POST", "/v1/entries", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

local failures = 0
response = function(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if failures <= 3 then
      io.stderr:write("status " .. status .. ": " .. body .. "\n")
    end
  end
end
