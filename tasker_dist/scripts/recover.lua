-- Hand every task held by stale (or leaving) workers back, ahead of normal work.
-- KEYS[1] workers zset    KEYS[2] priority list    KEYS[3] signal list
-- KEYS[2 + 2i] held set of worker i    KEYS[3 + 2i] stats hash of worker i
-- ARGV[1] 1 to recover only workers whose heartbeat went stale (the workers zset score,
--         Redis time in ms, is in the past), 0 for a worker leaving on purpose
-- ARGV[1 + i] id of worker i
-- Each worker is checked again here, atomically: one that heartbeated meanwhile is left
-- alone, and one already recovered (by another worker) is no longer in the zset, so each
-- task is handed back exactly once however many workers recover at the same time.
-- Returns the number of tasks handed back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local only_stale = ARGV[1] == '1'
local moved = 0
for i = 1, #ARGV - 1 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1 + i])
  if score and (not only_stale or tonumber(score) < now) then
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[2 + 2 * i])) do
      redis.call('RPUSH', KEYS[2], id)
      moved = moved + 1
    end
    redis.call('DEL', KEYS[2 + 2 * i], KEYS[3 + 2 * i])
    redis.call('ZREM', KEYS[1], ARGV[1 + i])
  end
end
if moved > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('LPUSH', KEYS[3], '1')
end
return moved
