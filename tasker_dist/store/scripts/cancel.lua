-- Cancel queued tasks that no worker has taken yet, storing a result for each.
-- KEYS[1] pending list     KEYS[2] priority list     KEYS[3] tasks hash
-- KEYS[4] retries hash     KEYS[5] deliveries hash
-- KEYS[4 + 2i] result key of task i   KEYS[5 + 2i] the finished set it goes in
-- ARGV[1] result TTL (ms)   ARGV[2] how long (ms) a finished set is kept after its
-- last addition
-- then per task: id, result envelope, done channel (the result is published there)
-- A task found on neither lane (already taken by a worker) is left alone.
-- Returns the ids cancelled.
local out, kept = {}, {}
local i = 0
for o = 3, #ARGV, 3 do
  i = i + 1
  local id = ARGV[o]
  if redis.call('LREM', KEYS[1], 1, id) + redis.call('LREM', KEYS[2], 1, id) > 0 then
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('SET', KEYS[4 + 2 * i], ARGV[o + 1], 'PX', ARGV[1])
    mark_finished(KEYS[5 + 2 * i], id, ARGV[2], kept)
    redis.call('PUBLISH', ARGV[o + 2], ARGV[o + 1])
    out[#out + 1] = id
  end
end
return out
