#!lua flags=allow-oom
-- Hand tasks the caller holds back to the head of the priority lane (stop or kill).
-- KEYS[1] the caller's held hash    KEYS[2] priority list    KEYS[3] signal list
-- KEYS[4] deliveries hash
-- ARGV    pairs of task id, delivery (fencing token)
-- Only deliveries the caller still holds are handed back, so a task is never queued
-- twice, and they do not count as deliveries (the task did nothing wrong). They are
-- pushed last first, so the first task given is served first.
-- Returns the number of tasks handed back.
local n = 0
for o = #ARGV - 1, 1, -2 do
  local id = ARGV[o]
  if redis.call('HGET', KEYS[1], id) == ARGV[o + 1] then
    redis.call('HDEL', KEYS[1], id)
    local before = tonumber(ARGV[o + 1]) - 1 -- this delivery does not count
    if before > 0 then
      redis.call('HSET', KEYS[4], id, before)
    else
      redis.call('HDEL', KEYS[4], id)
    end
    redis.call('RPUSH', KEYS[2], id)
    n = n + 1
  end
end
if n > 0 then wake(KEYS[3]) end
return n
