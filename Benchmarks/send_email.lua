-- wrk script: POST /api/send_email with the body in Benchmarks/send_email.json (BODY_FILE; paths
-- are relative to the repository root, where the Benchmarks scripts run wrk), a bearer token and
-- a UNIQUE Idempotency-Key per request (per-thread random prefix + counter), so every request
-- is a new accepted-and-durable message. Env: BEARER_TOKEN, CONN_CLOSE=1 for a new connection
-- per request, REPLAY_KEY=K to send every request with that one key (the replay path: after the
-- first, each answer is the stored one), API_PATH=/api/send_email/batch for the batch case.
local token = os.getenv("BEARER_TOKEN") or "missing"
local close = os.getenv("CONN_CLOSE") == "1"
local replay = os.getenv("REPLAY_KEY")
local file = assert(io.open(os.getenv("BODY_FILE") or "Benchmarks/send_email.json", "rb"))
local body = file:read("*a")
file:close()
local counter = 0
local prefix

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  prefix = string.format("%08x-%04x-4%03x", math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff))
end

function request()
  counter = counter + 1
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = replay or string.format("%s-%012x", prefix, counter),
  }
  if close then headers["Connection"] = "close" end
  return wrk.format("POST", os.getenv("API_PATH") or "/api/send_email", headers, body)
end
