-- Cancel tasks that have not finished, storing a result for each.
-- KEYS[1] tasks hash    KEYS[2] retries hash    KEYS[3] deliveries hash
-- KEYS[4] cancelled hash    KEYS[4 + i] result key of task i
-- ARGV[1] result TTL (ms), then per task: id, result envelope, done channel
-- Each task costs O(1), wherever it stands: its envelope and bookkeeping are deleted and
-- its id is marked in the cancelled hash, which the fetch that later pops the id from its
-- lane (or the completion of the worker running it) reads to drop it. Taking the id off
-- its lane here would cost a scan of the list per task (LREM), quadratic for a queue.
-- A task already finished (no envelope) is left alone.
-- Returns the ids cancelled.
local out = {}
local i = 0
for o = 2, #ARGV, 3 do
  i = i + 1
  local id = ARGV[o]
  if redis.call('HDEL', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HSET', KEYS[4], id, '1')
    redis.call('SET', KEYS[4 + i], ARGV[o + 1], 'PX', ARGV[1])
    redis.call('PUBLISH', ARGV[o + 2], '1')
    out[#out + 1] = id
  end
end
return out
