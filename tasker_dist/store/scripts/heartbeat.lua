#!lua flags=allow-oom
-- Publish one worker's stats, trim old rate buckets, read requests, find stale workers.
-- KEYS[1] workers zset    KEYS[2] this worker's stats hash    KEYS[3] control hash
-- KEYS[4] rates hash      KEYS[5] pending list       KEYS[6] priority list
-- KEYS[7] this worker's tombstone (see recover.lua)
-- ARGV[1] worker id    ARGV[2] stats TTL (ms)    ARGV[3] rate window (s)
-- ARGV[4..] field, value pairs of the stats hash
-- Returns {now_ms, ms of a stop request for all (or false), ms of one for this worker
--          (or false), length of pending, length of priority, 1 if this worker had been
--          taken for dead (its tasks handed to others) since its last beat else 0,
--          stale worker ids...}
-- The workers zset scores each worker by the Redis time at which its heartbeat goes
-- stale (now + its own TTL); a worker past it is dead, and the caller hands its held
-- tasks back with recover.lua, which checks that again.
local now, second = now_ms()
local ttl = tonumber(ARGV[2])
local was_dead = redis.call('DEL', KEYS[7])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if #ARGV > 3 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
end
redis.call('PEXPIRE', KEYS[2], ttl)
local oldest = tonumber(second) - tonumber(ARGV[3])
for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
  if tonumber(string.sub(field, 3)) < oldest then
    redis.call('HDEL', KEYS[4], field)
  end
end
local out = {now, redis.call('HGET', KEYS[3], 'stop'), redis.call('HGET', KEYS[3], 'stop:' .. ARGV[1]),
             redis.call('LLEN', KEYS[5]), redis.call('LLEN', KEYS[6]), was_dead}
for _, wid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
  out[#out + 1] = wid
end
return out
