-- wrk script: GET (or POST BODY_FILE) with a bearer key, each connection waiting an exponentially distributed gap (mean
-- MEAN_GAP_MS) before its next request, so requests arrive like independent users (no lock-step bursts).
local key = os.getenv("KEY")
local mean_gap_ms = tonumber(os.getenv("MEAN_GAP_MS"))

function setup(thread)
  thread:set("id", tostring(thread))
end

function init(args)
  math.randomseed(os.time() + tonumber(string.sub(id, -6), 16))
  wrk.headers["Authorization"] = "Bearer " .. key
end

function delay()
  return -mean_gap_ms * math.log(1 - math.random())
end

-- With BODY_FILE set: POST that JSON body instead (the query API).
local body_file = os.getenv("BODY_FILE")
if body_file then
  local file = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
end
