-- Record the outcomes of a batch of tasks held by the caller, and the batch's metrics.
-- KEYS[1] tasks hash   KEYS[2] retries hash   KEYS[3] inflight zset   KEYS[4] counters hash
-- KEYS[5] histogram hash   KEYS[6] rates hash   KEYS[7] priority list   KEYS[8] signal list
-- KEYS[8 + i] result key of task i
-- ARGV[1] result TTL (ms)   ARGV[2] number of tasks T   ARGV[3] number of histogram pairs H
-- ARGV[4..11] completed, failed, retried, exec_sum_us, exec_min_us, exec_max_us,
--             wait_sum_us, executions: the batch's metrics, summed by the caller
-- ARGV[12 .. 11 + 2H] bucket, count pairs for the execution-time histogram
-- then T groups of 5: task id, action, result envelope, reply channel, done channel
--   action 'retry': the id goes to the head of the priority lane, its retries + 1
--   action 'done': the result is stored with the TTL, published on the reply channel
--   (unless ''), and the done channel is told; the task's envelope is deleted.
-- A task no longer in the inflight set (handed back by a kill) is skipped.
-- Returns the number of tasks skipped.
local ttl = ARGV[1]
local ntasks = tonumber(ARGV[2])
local nhist = tonumber(ARGV[3])
local base = 11 + 2 * nhist
local skipped = 0
local retried = false
for i = 1, ntasks do
  local o = base + 5 * (i - 1)
  local id = ARGV[o + 1]
  if redis.call('ZREM', KEYS[3], id) == 1 then
    if ARGV[o + 2] == 'retry' then
      redis.call('HINCRBY', KEYS[2], id, 1)
      redis.call('RPUSH', KEYS[7], id)
      retried = true
    else
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('SET', KEYS[8 + i], ARGV[o + 3], 'PX', ttl)
      if ARGV[o + 4] ~= '' then
        redis.call('PUBLISH', ARGV[o + 4], ARGV[o + 3])
      end
      redis.call('PUBLISH', ARGV[o + 5], '1')
    end
  else
    skipped = skipped + 1
  end
end
if retried and redis.call('LLEN', KEYS[8]) == 0 then
  redis.call('LPUSH', KEYS[8], '1')
end
local names = {'completed', 'failed', 'retried', 'exec_sum_us'}
for k = 1, 4 do
  local v = tonumber(ARGV[3 + k])
  if v ~= 0 then redis.call('HINCRBY', KEYS[4], names[k], v) end
end
local executions = tonumber(ARGV[11])
if executions > 0 then
  redis.call('HINCRBY', KEYS[4], 'executions', executions)
  redis.call('HINCRBY', KEYS[4], 'wait_sum_us', ARGV[10])
  local lo = tonumber(ARGV[8])
  local cur = redis.call('HGET', KEYS[4], 'exec_min_us')
  if not cur or lo < tonumber(cur) then redis.call('HSET', KEYS[4], 'exec_min_us', lo) end
  local hi = tonumber(ARGV[9])
  cur = redis.call('HGET', KEYS[4], 'exec_max_us')
  if not cur or hi > tonumber(cur) then redis.call('HSET', KEYS[4], 'exec_max_us', hi) end
end
for k = 1, nhist do
  redis.call('HINCRBY', KEYS[5], ARGV[10 + 2 * k], ARGV[11 + 2 * k])
end
local finished = tonumber(ARGV[4]) + tonumber(ARGV[5])
if finished > 0 then
  redis.call('HINCRBY', KEYS[6], 'c:' .. redis.call('TIME')[1], finished)
end
return skipped
