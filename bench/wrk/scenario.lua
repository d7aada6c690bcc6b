-- One benchmark scenario for wrk (4.x), driven by `devstack bench` (libs/devstack_cli bench.py).
--
--   wrk -t1 -cN -dD --latency -s bench/wrk/scenario.lua URL -- METHOD BODY PATH [PATH ...]
--
-- Each request takes the next PATH in turn (cache keys spread over the three Redis masters,
-- item ids created beforehand); BODY is sent as application/json ("-" for none). Every answer's
-- status is counted per thread, and `done` prints one line, `WRK_JSON {...}`, with the totals,
-- the latency percentiles (microseconds) and the statuses, for the harness to parse.

local method, body, paths, counter = "GET", nil, {}, 0
local headers = {}
counts = {}  -- global: read from each thread by `done`, through thread:get("counts")

function init(args)
  method = args[1]
  if args[2] ~= "-" then
    body = args[2]
    headers["Content-Type"] = "application/json"
  end
  for i = 3, #args do
    paths[#paths + 1] = args[i]
  end
  -- Threads start at different points of the list, so they do not move in step.
  counter = math.random(0, #paths - 1)
end

function request()
  counter = counter + 1
  return wrk.format(method, paths[(counter % #paths) + 1], headers, body)
end

function response(status, _, _)
  counts[status] = (counts[status] or 0) + 1
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

local function json_object(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%s": %s', tostring(k), tostring(v))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, _)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts") or {}) do
      statuses[status] = (statuses[status] or 0) + n
    end
  end
  local percentiles = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    percentiles[string.format('%g', p)] = latency:percentile(p)
  end
  local e = summary.errors
  io.write("WRK_JSON ", json_object({
    duration_us = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    latency_min_us = latency.min,
    latency_max_us = latency.max,
    latency_mean_us = string.format("%.1f", latency.mean),
    latency_stdev_us = string.format("%.1f", latency.stdev),
    percentiles_us = json_object(percentiles),
    statuses = json_object(statuses),
    socket_errors = json_object({
      connect = e.connect, read = e.read, write = e.write, status = e.status,
      timeout = e.timeout,
    }),
  }), "\n")
end
