-- wrk script: POST /api/send_email with a bearer token and a new Idempotency-Key per request, so
-- every 200 is a new accepted-and-durable message. The workload integrators have (issue 21):
--   * a random UUIDv4 Idempotency-Key per request (the seed's `$(uuidgen)`), not a counter that
--     lands at the end of the B-trees;
--   * recipients drawn from 100 000 distinct addresses (RECIPIENTS);
--   * the seed's two example bodies in turn: direct content (Example A) and the template
--     invoice_delivery with its data (Example B; the harness adds that template).
-- Env: BEARER_TOKEN; BODY_FILE=F sends that file's body unchanged (attachments, batch);
-- KEYS=sequential for the old flattering workload (per-thread prefix + counter, one recipient,
-- Example A only: a labelled extra row); CONN_CLOSE=1 for a new connection per request;
-- REPLAY_KEY=K to send every request with that one key; API_PATH for another endpoint.
-- RATE=R (req/s, with CONNS=C connections): each connection pauses a random (exponential) time
-- of mean C/R s before each request, so the load is offered at about R req/s instead of as fast
-- as the server answers. Not a true open loop (a slow answer still delays that connection's
-- next request), close to one while the server keeps up: latency at a load, not at saturation.
local token = os.getenv("BEARER_TOKEN") or "missing"
local close = os.getenv("CONN_CLOSE") == "1"
local replay = os.getenv("REPLAY_KEY")
local sequential = os.getenv("KEYS") == "sequential"
local recipients = tonumber(os.getenv("RECIPIENTS") or "100000")
local fixed
if os.getenv("BODY_FILE") then
  local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
  fixed = file:read("*a")
  file:close()
end
local direct = '{"to_address":"%s","subject":"Your order SP-2412-0489 has shipped","content":"<p>Hi Marcus,</p><p>Tracking: TRACK-XYZ.</p>"}'
local template = '{"to_address":"%s","template_identifier":"invoice_delivery","data":{"invoice_number":"INV-2026-0488","amount":"\\u00a3189.00","due_date":"2026-05-15"}}'
local counter = 0
local prefix

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  prefix = string.format("%08x-%04x-4%03x", math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff))
end

local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%04x%08x", math.random(0, 0xffffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffff), math.random(0, 0xffffffff))
end

local rate = tonumber(os.getenv("RATE") or "0")
if rate > 0 then
  local conns = tonumber(os.getenv("CONNS") or "64")
  function delay()
    return math.floor(-math.log(1 - math.random()) * conns * 1000 / rate)
  end
end

function request()
  counter = counter + 1
  local key, body
  if sequential then
    key = string.format("%s-%012x", prefix, counter)
    body = fixed or string.format(direct, "marcus@trailblazers-club.example")
  else
    key = uuid4()
    body = fixed or string.format(counter % 2 == 0 and template or direct,
      string.format("customer-%d@example.test", math.random(0, recipients - 1)))
  end
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = replay or key,
  }
  if close then headers["Connection"] = "close" end
  return wrk.format("POST", os.getenv("API_PATH") or "/api/send_email", headers, body)
end
