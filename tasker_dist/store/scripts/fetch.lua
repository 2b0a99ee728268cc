#!lua flags=allow-oom
-- Take up to N tasks, the priority lane first, into the caller's held hash.
-- KEYS[1] priority list    KEYS[2] pending list    KEYS[3] tasks hash
-- KEYS[4] retries hash     KEYS[5] deliveries hash   KEYS[6] the caller's held hash
-- KEYS[7] signal list     KEYS[8] workers zset     KEYS[9] cancelled hash
-- ARGV[1] N (max tasks)    ARGV[2] the caller's worker id    ARGV[3] its heartbeat TTL (ms)
-- The caller is put in the workers zset if it is missing (its first heartbeat failed, or
-- it had been taken for dead), so whatever it holds is recovered if it dies.
-- Returns {now_ms, then per task: id, envelope, retries, lane, delivery}
-- lane is 1 for priority, 0 for pending. delivery counts the times the task was taken
-- (hand-backs on stop or kill do not count); it is also the fencing token: the caller's
-- held hash maps the id to it, and only that delivery may finish the task. While a task
-- is held its count lives in the held hash only; the deliveries hash keeps the counts
-- of tasks handed back (recovered, retried, or returned on stop), so a first delivery
-- costs no write there. An id with
-- no envelope (garbage pushed on a lane) is returned with an empty envelope, so the
-- caller can put it in the failed store, unless it was cancelled (see cancel.lua): then
-- it is dropped, and more ids are popped in its place (at most GHOSTS in all per call, so
-- a lane of cancelled ids is drained over several calls, none of them long).
-- If work is left behind, a token is pushed on the signal list so another blocked
-- worker wakes up (each fetcher passes the wake-up on while work remains).
local GHOSTS = 1000
local now = now_ms()
local want = tonumber(ARGV[1])
redis.call('ZADD', KEYS[8], 'NX', now + tonumber(ARGV[3]), ARGV[2])
local out = {now}
local taken = 0
local ghosts = 0
local held, dropped = {}, {}
for lane = 1, 2 do
  while taken < want and ghosts < GHOSTS do
    local asked = math.min(want - taken, GHOSTS - ghosts)
    local ids = redis.call('RPOP', KEYS[lane], asked)
    if not ids then break end
    local envelopes = hmget(KEYS[3], ids)
    local missing = {}
    for i = 1, #ids do
      if not envelopes[i] then missing[#missing + 1] = ids[i] end
    end
    local cancelled = {}
    if #missing > 0 then
      local marks = hmget(KEYS[9], missing)
      for i = 1, #missing do
        if marks[i] then cancelled[missing[i]] = true end
      end
    end
    local retries = hmget(KEYS[4], ids)
    local counts = hmget(KEYS[5], ids)
    for i, id in ipairs(ids) do
      if cancelled[id] then
        ghosts = ghosts + 1
        dropped[#dropped + 1] = id
      else
        local delivery = tonumber(counts[i] or '0') + 1
        held[#held + 1] = id
        held[#held + 1] = delivery
        out[#out + 1] = id
        out[#out + 1] = envelopes[i] or ''
        out[#out + 1] = tonumber(retries[i] or '0')
        out[#out + 1] = 2 - lane
        out[#out + 1] = delivery
        taken = taken + 1
      end
    end
    if #ids < asked then break end -- the lane is empty
  end
end
call_chunked('HSET', KEYS[6], held)
-- A cancelled id handed back (recovered, retried) got bookkeeping again: none is left.
call_chunked('HDEL', KEYS[9], dropped)
call_chunked('HDEL', KEYS[4], dropped)
call_chunked('HDEL', KEYS[5], dropped)
if redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) > 0 then wake(KEYS[7]) end
return out
