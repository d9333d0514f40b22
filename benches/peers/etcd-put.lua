-- wrk script for benches/peers/wrk.sh: every request is an etcd v3 put through the JSON gateway
-- (POST /v3/kv/put) of a new key with a 300-byte value. Keys are distinct across requests,
-- threads and runs: RUN (an integer, 0 … 4095, one per wrk run) and the thread id and a
-- per-thread counter written as base64 digits, which is itself valid base64 (8 characters →
-- 6 key bytes), so no encoding is needed per request.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function digits(n, width)
  local out = {}
  for k = width, 1, -1 do
    local d = n % 64
    out[k] = alphabet:sub(d + 1, d + 1)
    n = (n - d) / 64
  end
  return table.concat(out)
end

local counter = 0

function init(args)
  local run = tonumber(os.getenv("RUN") or "0")
  prefix = digits(run, 2) .. digits(id, 1)
  -- 300 bytes of "xxx…": "eHh4" is base64 for "xxx".
  value = string.rep("eHh4", 100)
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local body = '{"key":"' .. prefix .. digits(counter, 5) .. '","value":"' .. value .. '"}'
  return wrk.format("POST", "/v3/kv/put", headers, body)
end
