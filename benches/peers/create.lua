-- wrk script for benches/peers/wrk.sh: every request places an order as a new user.
-- Environment: TOKENS (prefix of the token files: thread i reads "$TOKENS.i", one bearer token
-- a line, from `pizza-orders token --count N`, split round-robin by the caller), SLOT (the
-- delivery slot, RFC 3339). The threads' token slices are disjoint, so no user orders twice
-- unless a thread runs out of tokens and starts over (then 409 order-exists shows up in wrk's
-- non-2xx count, and done() says so on stderr).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local tokens = {}
local count, i = 0, 0

function init(args)
  local file = os.getenv("TOKENS") .. "." .. id
  for line in io.lines(file) do
    count = count + 1
    tokens[count] = "Bearer " .. line
  end
  if count == 0 then error("no tokens in " .. file) end
  body = '{"address":"1 Main St","size":"small","toppings":[],"delivery_slot":"' .. os.getenv("SLOT") .. '"}'
  used, wrapped, available = 0, 0, count
end

function request()
  i = i + 1
  if i > count then
    i = 1
    wrapped = wrapped + 1
  end
  used = used + 1
  return wrk.format("POST", "/v1/orders",
    { ["Authorization"] = tokens[i], ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local used_all, available_all, wrapped_all = 0, 0, 0
  for _, t in ipairs(threads) do
    used_all = used_all + t:get("used")
    available_all = available_all + t:get("available")
    wrapped_all = wrapped_all + t:get("wrapped")
  end
  io.stderr:write(string.format("tokens: %d requests formatted, %d tokens, %d wrap-arounds\n",
    used_all, available_all, wrapped_all))
end
