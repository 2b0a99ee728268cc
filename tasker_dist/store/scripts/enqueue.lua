-- Queue tasks: store each envelope and push its id onto one lane.
-- KEYS[1] tasks hash       KEYS[2] lane list (pending or priority)
-- KEYS[3] signal list      KEYS[4] counters hash      KEYS[5] rates hash
-- KEYS[6] cancelled hash
-- ARGV[1] id of task 1, ARGV[2] envelope of task 1, ARGV[3] id of task 2, ...
-- An id already queued or running (its envelope is stored), or cancelled and still on a
-- lane, is not queued again: so a call sent twice (its first reply lost) queues once,
-- and no id is ever on a lane twice, where two workers would run it at the same time.
-- Returns the number of tasks queued.
local ids = {}
for i = 1, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local stored = hmget(KEYS[1], ids)
local cancelled = {}
if redis.call('HLEN', KEYS[6]) > 0 then cancelled = hmget(KEYS[6], ids) end
local fresh, fields, seen = {}, {}, {}
for i, id in ipairs(ids) do
  if not stored[i] and not cancelled[i] and not seen[id] then
    seen[id] = true
    fresh[#fresh + 1] = id
    fields[#fields + 1] = id
    fields[#fields + 1] = ARGV[2 * i]
  end
end
local n = #fresh
if n == 0 then return 0 end
call_chunked('HSET', KEYS[1], fields)
call_chunked('LPUSH', KEYS[2], fresh)
redis.call('HINCRBY', KEYS[4], 'arrived', n)
local _, second = now_ms()
redis.call('HINCRBY', KEYS[5], 'a:' .. second, n)
wake(KEYS[3])
return n
