-- wrk script for the `beacons` scenario of benches/load.rs: analytics beacons at a steady
-- rate (each connection waits `delay` ms between requests), every one a valid beacon.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local events = { "page_opened", "catalog_shown", "slot_picked" }
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"event":"%s","visitor":"bench-visitor-%d"}', events[n % 3 + 1], n % 5000)
  return wrk.format(nil, nil, nil, body)
end
delay = function()
  return 9
end
