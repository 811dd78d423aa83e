-- Configuration D: every request carries a Host never sent before,
-- <prefix>-<n>.tenants.saas.example, so that neither the cache nor the
-- per-worker coalescing of lookups can spare a lookup (the demo registry
-- allows any *.tenants.saas.example). BENCH_HOST_PREFIX is set per run by
-- scripts/bench.py so that runs never repeat a host.
local prefix = os.getenv("BENCH_HOST_PREFIX") or string.format("u%x", os.time())
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/", { ["Host"] = prefix .. "-" .. n .. ".tenants.saas.example" })
end
