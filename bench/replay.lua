-- wrk script for scripts/bench.py: replay pre-built raw HTTP/1.1 requests.
--
-- Usage: wrk ... -s scripts/bench_replay.lua URL -- PREFIX
-- Thread k (0-based) reads PREFIX.k: complete requests, each followed by one NUL byte, built and
-- signed before the timed window (a signed request carries a nonce the server accepts once).
-- Each thread sends its list in order; past the end it starts over and counts a wrap, which the
-- harness treats as a replay (the list was too short) for scenarios that need unique requests.
-- No response() callback: defining one makes wrk parse every response in Lua.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] .. "." .. tid
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while true do
    local e = string.find(data, "\0", pos, true)
    if not e then break end
    reqs[#reqs + 1] = string.sub(data, pos, e - 1)
    pos = e + 1
  end
  n = #reqs
  i = 0
  wraps = 0
  assert(n > 0, "no requests in " .. path)
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wraps = wraps + 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local generated, wrapped, listed = 0, 0, 0
  for _, t in ipairs(threads) do
    local tn = t:get("n") or 0
    local tw = t:get("wraps") or 0
    generated = generated + tw * tn + (t:get("i") or 0)
    wrapped = wrapped + tw
    listed = listed + tn
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"generated":%d,"wraps":%d,"listed":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    generated, wrapped, listed))
end
