-- Record the outcomes of a batch of tasks held by the caller, and their metrics.
-- KEYS[1] tasks hash   KEYS[2] retries hash   KEYS[3] the caller's held set
-- KEYS[4] counters hash
-- KEYS[5] histogram hash   KEYS[6] rates hash   KEYS[7] priority list   KEYS[8] signal list
-- KEYS[8 + i] result key of task i
-- ARGV[1] result TTL (ms), then per task a group of 8:
--   task id, status, result envelope, reply channel, done channel,
--   execution time (us, -1 if it never ran), wait time (us), histogram bucket
-- status 'retried': the id goes to the head of the priority lane, its retries + 1.
-- status 'completed' or 'failed': the result is stored with the TTL, published on the
--   reply channel (unless ''), the done channel is told, and the envelope is deleted.
-- A task the caller no longer holds (handed back, or recovered from it) is skipped and
-- counts in no metric, so every task is counted once whoever finishes it.
-- Returns the number of tasks skipped.
local ttl = ARGV[1]
local count = {completed = 0, failed = 0, retried = 0}
local executions, exec_sum, wait_sum, lo, hi = 0, 0, 0, nil, nil
local buckets = {}
local skipped = 0
for o = 2, #ARGV, 8 do
  local i = (o - 2) / 8 + 1
  local id = ARGV[o]
  local status = ARGV[o + 1]
  if redis.call('SREM', KEYS[3], id) == 1 then
    if status == 'retried' then
      redis.call('HINCRBY', KEYS[2], id, 1)
      redis.call('RPUSH', KEYS[7], id)
    else
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('SET', KEYS[8 + i], ARGV[o + 2], 'PX', ttl)
      if ARGV[o + 3] ~= '' then
        redis.call('PUBLISH', ARGV[o + 3], ARGV[o + 2])
      end
      redis.call('PUBLISH', ARGV[o + 4], '1')
    end
    count[status] = count[status] + 1
    local us = tonumber(ARGV[o + 5])
    if us >= 0 then
      executions = executions + 1
      exec_sum = exec_sum + us
      wait_sum = wait_sum + tonumber(ARGV[o + 6])
      if lo == nil or us < lo then lo = us end
      if hi == nil or us > hi then hi = us end
      local b = ARGV[o + 7]
      buckets[b] = (buckets[b] or 0) + 1
    end
  else
    skipped = skipped + 1
  end
end
if count.retried > 0 and redis.call('LLEN', KEYS[8]) == 0 then
  redis.call('LPUSH', KEYS[8], '1')
end
for _, name in ipairs({'completed', 'failed', 'retried'}) do
  if count[name] > 0 then redis.call('HINCRBY', KEYS[4], name, count[name]) end
end
if executions > 0 then
  redis.call('HINCRBY', KEYS[4], 'executions', executions)
  redis.call('HINCRBY', KEYS[4], 'exec_sum_us', exec_sum)
  redis.call('HINCRBY', KEYS[4], 'wait_sum_us', wait_sum)
  local cur = redis.call('HGET', KEYS[4], 'exec_min_us')
  if not cur or lo < tonumber(cur) then redis.call('HSET', KEYS[4], 'exec_min_us', lo) end
  cur = redis.call('HGET', KEYS[4], 'exec_max_us')
  if not cur or hi > tonumber(cur) then redis.call('HSET', KEYS[4], 'exec_max_us', hi) end
  for b, n in pairs(buckets) do
    redis.call('HINCRBY', KEYS[5], b, n)
  end
end
local finished = count.completed + count.failed
if finished > 0 then
  redis.call('HINCRBY', KEYS[6], 'c:' .. redis.call('TIME')[1], finished)
end
return skipped
