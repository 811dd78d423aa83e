-- The mix: 90% of requests for a cached host (www.saas.example), 10% for a
-- host never sent before (<prefix>-<n>.tenants.saas.example), i.e. one
-- lookup for every tenth request. BENCH_HOST_PREFIX is set per run by
-- scripts/bench.py so that no run repeats another's new hosts.
local prefix = os.getenv("BENCH_HOST_PREFIX") or string.format("m%x", os.time())
local cached = wrk.format("GET", "/", { ["Host"] = "www.saas.example" })
local n = 0

request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("GET", "/", { ["Host"] = prefix .. "-" .. n .. ".tenants.saas.example" })
  end
  return cached
end
