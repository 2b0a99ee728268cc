-- Queue failed-store tasks again, as new arrivals (tasker failed retry).
-- KEYS[1] failed hash    KEYS[2] failed index zset    KEYS[3] tasks hash
-- KEYS[4] retries hash   KEYS[5] deliveries hash      KEYS[6] pending list
-- KEYS[7] signal list    KEYS[7 + i] result key of task i
-- ARGV    pairs of task id, the (checked) frame to queue
-- A task no longer in the failed store (retried or purged meanwhile) is skipped. Its old
-- result is deleted, so a caller waits for the new one.
-- Returns the number of tasks queued.
local n = 0
for o = 1, #ARGV, 2 do
  local id = ARGV[o]
  if redis.call('HDEL', KEYS[1], id) == 1 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HSET', KEYS[3], id, ARGV[o + 1])
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('DEL', KEYS[7 + (o + 1) / 2])
    redis.call('LPUSH', KEYS[6], id)
    n = n + 1
  end
end
if n > 0 then wake(KEYS[7]) end
return n
