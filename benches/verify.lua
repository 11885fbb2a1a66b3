-- wrk script for the key benchmark (see docs/bench-keys.md).
-- Environment: GH_KEYS, GH_INVALID (files, one key a line), GH_MODE = verify | forward,
-- GH_DIST = uniform | skewed, GH_DELAY_MS (per-connection pause, for rate-limited runs),
-- GH_INVALID_PCT (default 1): the share of requests that carry a well-formed but unknown key,
-- GH_REQUESTS (default 200000): how many requests are drawn (then replayed in order),
-- GH_SEED: a fixed seed for the draws, so that a second run replays the first one's requests.
local keys, invalid = {}, {}
local mode = os.getenv("GH_MODE") or "verify"
local dist = os.getenv("GH_DIST") or "uniform"
local delay_ms = tonumber(os.getenv("GH_DELAY_MS") or "0")
local invalid_pct = tonumber(os.getenv("GH_INVALID_PCT") or "1")

local function load()
  for l in io.lines(os.getenv("GH_KEYS")) do keys[#keys + 1] = l end
  for l in io.lines(os.getenv("GH_INVALID")) do invalid[#invalid + 1] = l end
  local seed = tonumber(os.getenv("GH_SEED") or "")
  math.randomseed(seed or (os.time() + math.floor(os.clock() * 1e6)))
end

local function pick()
  if math.random(100) <= invalid_pct then
    return invalid[math.random(#invalid)]
  end
  if dist == "skewed" then
    -- Power law: u^4 puts half the traffic on ~6 % of the keys.
    local u = math.random()
    return keys[math.floor(#keys * u ^ 4) + 1]
  end
  return keys[math.random(#keys)]
end

local function build(k)
  if mode == "forward" then
    return wrk.format("GET", "/api/auth/forward", { ["X-API-Key"] = k })
  end
  return wrk.format("POST", "/api/verify", { ["Content-Type"] = "application/json" },
    '{"token":"' .. k .. '"}')
end

-- Requests are drawn and formatted once, in init, and replayed in order: formatting each
-- request in Lua as it is sent made wrk itself the bottleneck on its core.
local reqs, n, i = {}, 0, 0

function init(args)
  load()
  n = tonumber(os.getenv("GH_REQUESTS") or "200000")
  for j = 1, n do reqs[j] = build(pick()) end
end

request = function()
  i = i % n + 1
  return reqs[i]
end

if delay_ms > 0 then
  delay = function() return delay_ms end
end
