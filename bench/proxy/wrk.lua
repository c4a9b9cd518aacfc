-- wrk script of the proxy benchmark (tools/bench_proxy.sh): counts the responses per status on
-- every wrk thread and, when the run is done, prints one line
--   PROXY_BENCH_JSON {...}
-- with wrk's summary (requests, errors), the responses per status and the latency percentiles
-- in microseconds, p99.9 included (wrk's own --latency table stops at p99).
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local merged = {}
   for _, t in ipairs(threads) do
      for status, n in pairs(t:get("statuses")) do
         merged[status] = (merged[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(merged) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   table.sort(parts)
   local e = summary.errors
   io.write(string.format(
      'PROXY_BENCH_JSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"statuses": {%s}, "latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, ' ..
      '"p75": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", "),
      latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(75),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
