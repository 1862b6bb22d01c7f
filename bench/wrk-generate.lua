-- wrk script for bench/serve-load.sh: POST /generate (8 new tokens), cycling through prompts whose
-- facts the load script's edits change, and one machine-readable summary line at the end.
wrk.method = "POST"
wrk.path = "/generate"
wrk.headers["Content-Type"] = "application/json"

local prompts = {
  "The capital of France is",
  "Germany is located in",
  "The capital of Italy is",
  "Spain is located in",
}
local bodies = {}
for i, p in ipairs(prompts) do
  bodies[i] = '{"prompt": "' .. p .. '", "max_new_tokens": 8}'
end
local next_body = 0

request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
