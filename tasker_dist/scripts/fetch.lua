-- Take up to N tasks, the priority lane first, into the caller's held set.
-- KEYS[1] priority list    KEYS[2] pending list    KEYS[3] tasks hash
-- KEYS[4] retries hash     KEYS[5] the caller's held set   KEYS[6] signal list
-- ARGV[1] N (max tasks)
-- Returns {now_ms, id, envelope, retries, lane, id, envelope, retries, lane, ...}
-- where lane is 1 for priority, 0 for pending. An id whose envelope is gone is dropped.
-- If work is left behind, a token is pushed on the signal list so another blocked
-- worker wakes up (each fetcher passes the wake-up on while work remains).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[1])
local out = {now}
local taken = 0
for lane = 1, 2 do
  if taken < want then
    local ids = redis.call('RPOP', KEYS[lane], want - taken)
    if ids then
      for _, id in ipairs(ids) do
        local env = redis.call('HGET', KEYS[3], id)
        if env then
          redis.call('SADD', KEYS[5], id)
          out[#out + 1] = id
          out[#out + 1] = env
          out[#out + 1] = tonumber(redis.call('HGET', KEYS[4], id) or '0')
          out[#out + 1] = 2 - lane
          taken = taken + 1
        end
      end
    end
  end
end
if redis.call('LLEN', KEYS[6]) == 0
    and (redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])) > 0 then
  redis.call('LPUSH', KEYS[6], '1')
end
return out
