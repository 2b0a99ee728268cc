#!lua flags=allow-oom
-- Record the outcomes of a batch of tasks held by the caller, and their metrics.
-- KEYS[1] tasks hash   KEYS[2] retries hash   KEYS[3] deliveries hash
-- KEYS[4] the caller's held hash   KEYS[5] counters hash   KEYS[6] histogram hash
-- KEYS[7] rates hash   KEYS[8] priority list   KEYS[9] signal list
-- KEYS[10] failed hash   KEYS[11] failed index zset   KEYS[12] cancelled hash
-- KEYS[13] watched hash (task id -> processes waiting on its done channel)
-- KEYS[12 + 2i] result key of task i   KEYS[13 + 2i] the finished set it goes in
-- ARGV[1] result TTL (ms)   ARGV[2] failed store cap (entries)
-- ARGV[3] done channel prefix (a task's done channel is the prefix and its id)
-- ARGV[4] how long (ms) a finished set is kept after its last addition
-- ARGV[5] the publish command: SPUBLISH on a cluster (only the queue's shard hears it),
--   else PUBLISH; '' to publish nothing here (the caller first waits for replicas)
-- then per task a group of 9:
--   task id, delivery (fencing token), status, result envelope ('' for none),
--   reply channel ('' for none), execution time (us, -1 if it never ran),
--   wait time (us), histogram bucket, failed-store record ('' for none)
-- status 'retried': the id goes to the head of the priority lane, its retries + 1.
-- status 'completed' or 'failed': the result is stored with the TTL and the id added to
--   its finished set (which outlives the result), and published on the reply channel
--   and, if some process watches the task, on its done channel; the envelope and the task's
--   bookkeeping are deleted; a failed-store record, if any, is kept (the oldest records
--   beyond the cap are dropped).
-- Only the delivery the caller holds may finish a task: any other (handed back, or
-- recovered from a worker taken for dead) is skipped and counts in no metric, so a
-- result is written once and every task is counted once.
-- A task cancelled while it ran (see cancel.lua) already has its result: the caller's
-- outcome is dropped with the task's bookkeeping, and counts in no metric either.
-- Returns the number of tasks skipped; with ARGV[5] '', a list instead: the number
-- skipped, then for each result to publish its task's place in the batch (1-based) and
-- what to publish it on (1 its reply channel, 2 its done channel, 3 both).
local ttl = ARGV[1]
local count = {completed = 0, failed = 0, retried = 0}
local executions, exec_sum, wait_sum, lo, hi = 0, 0, 0, nil, nil
local buckets = {}
local skipped = 0
local now, second = now_ms()
local stored_failed = false
local ids = {}
for o = 6, #ARGV, 9 do ids[#ids + 1] = ARGV[o] end
local held = hmget(KEYS[4], ids)
local cancelled, watched = {}, {}
if redis.call('HLEN', KEYS[12]) > 0 then cancelled = hmget(KEYS[12], ids) end
local watching = redis.call('HLEN', KEYS[13]) > 0
if watching then watched = hmget(KEYS[13], ids) end
local publish = ARGV[5]
local deferred = {}
local done, finished, seen, sets = {}, {}, {}, {}
for i, id in ipairs(ids) do
  local o = 6 + (i - 1) * 9
  local status = ARGV[o + 2]
  if held[i] == ARGV[o + 1] and not seen[id] and cancelled[i] then
    seen[id] = true
    done[#done + 1] = id
    finished[#finished + 1] = id
    redis.call('HDEL', KEYS[12], id)
  elseif held[i] == ARGV[o + 1] and not seen[id] then
    seen[id] = true
    done[#done + 1] = id
    if status == 'retried' then
      redis.call('HINCRBY', KEYS[2], id, 1)
      redis.call('HSET', KEYS[3], id, ARGV[o + 1]) -- its delivery count, off the held hash
      redis.call('RPUSH', KEYS[8], id)
    else
      finished[#finished + 1] = id
      if ARGV[o + 3] ~= '' then
        redis.call('SET', KEYS[12 + 2 * i], ARGV[o + 3], 'PX', ttl)
        note_finished(sets, KEYS[13 + 2 * i], id)
        local on = (ARGV[o + 4] ~= '' and 1 or 0) + (watched[i] and 2 or 0)
        if publish == '' then
          if on > 0 then
            deferred[#deferred + 1] = i
            deferred[#deferred + 1] = on
          end
        else
          if on % 2 == 1 then redis.call(publish, ARGV[o + 4], ARGV[o + 3]) end
          if on >= 2 then redis.call(publish, ARGV[3] .. id, ARGV[o + 3]) end
        end
      end
      if ARGV[o + 8] ~= '' then
        redis.call('HSET', KEYS[10], id, ARGV[o + 8])
        redis.call('ZADD', KEYS[11], now, id)
        stored_failed = true
      end
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
call_chunked('HDEL', KEYS[4], done)
for k = 1, 3 do call_chunked('HDEL', KEYS[k], finished) end
if watching then call_chunked('HDEL', KEYS[13], finished) end
add_finished(sets, ARGV[4])
if stored_failed then
  local excess = redis.call('ZCARD', KEYS[11]) - tonumber(ARGV[2])
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[11], excess)
    local oldest = {}
    for j = 1, #popped, 2 do oldest[#oldest + 1] = popped[j] end
    call_chunked('HDEL', KEYS[10], oldest)
  end
end
if count.retried > 0 then wake(KEYS[9]) end
for _, name in ipairs({'completed', 'failed', 'retried'}) do
  if count[name] > 0 then redis.call('HINCRBY', KEYS[5], name, count[name]) end
end
if executions > 0 then
  redis.call('HINCRBY', KEYS[5], 'executions', executions)
  redis.call('HINCRBY', KEYS[5], 'exec_sum_us', exec_sum)
  redis.call('HINCRBY', KEYS[5], 'wait_sum_us', wait_sum)
  local cur = redis.call('HGET', KEYS[5], 'exec_min_us')
  if not cur or lo < tonumber(cur) then redis.call('HSET', KEYS[5], 'exec_min_us', lo) end
  cur = redis.call('HGET', KEYS[5], 'exec_max_us')
  if not cur or hi > tonumber(cur) then redis.call('HSET', KEYS[5], 'exec_max_us', hi) end
  for b, n in pairs(buckets) do
    redis.call('HINCRBY', KEYS[6], b, n)
  end
end
local finished = count.completed + count.failed
if finished > 0 then
  redis.call('HINCRBY', KEYS[7], 'c:' .. second, finished)
end
if publish == '' then
  table.insert(deferred, 1, skipped)
  return deferred
end
return skipped
