#!lua flags=allow-oom
-- Hand every task held by stale (or leaving) workers back, ahead of normal work.
-- KEYS[1] workers zset    KEYS[2] priority list    KEYS[3] signal list
-- KEYS[4] deliveries hash
-- KEYS[2 + 3i] held hash of worker i    KEYS[3 + 3i] stats hash of worker i
-- KEYS[4 + 3i] tombstone of worker i (set when it is taken for dead, for one day, so
--              that it learns of it if it comes back)
-- ARGV[1] 1 to recover only workers whose heartbeat went stale (the workers zset score,
--         Redis time in ms, is in the past), 0 for a worker leaving on purpose
-- ARGV[1 + i] id of worker i
-- The tasks keep their delivery count (moved from the held hash to the deliveries
-- hash), so one that keeps killing its worker is caught.
-- Each worker is checked again here, atomically: one that heartbeated meanwhile is left
-- alone, and one already recovered (by another worker) is no longer in the zset, so each
-- task is handed back exactly once however many workers recover at the same time.
-- Returns the number of tasks handed back.
local now = now_ms()
local only_stale = ARGV[1] == '1'
local moved = 0
for i = 1, #ARGV - 1 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1 + i])
  if score and (not only_stale or tonumber(score) < now) then
    local held = redis.call('HGETALL', KEYS[2 + 3 * i])
    local ids = {}
    for j = 1, #held, 2 do ids[#ids + 1] = held[j] end
    call_chunked('HSET', KEYS[4], held)
    call_chunked('RPUSH', KEYS[2], ids)
    moved = moved + #ids
    redis.call('DEL', KEYS[2 + 3 * i], KEYS[3 + 3 * i])
    redis.call('ZREM', KEYS[1], ARGV[1 + i])
    if only_stale then
      redis.call('SET', KEYS[4 + 3 * i], now, 'PX', 86400000)
    end
  end
end
if moved > 0 then wake(KEYS[3]) end
return moved
