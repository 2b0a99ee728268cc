-- Queue tasks: store each envelope and push its id onto one lane.
-- KEYS[1] tasks hash       KEYS[2] lane list (pending or priority)
-- KEYS[3] signal list      KEYS[4] counters hash      KEYS[5] rates hash
-- ARGV[1] id of task 1, ARGV[2] envelope of task 1, ARGV[3] id of task 2, ...
-- Returns the number of tasks queued.
local n = #ARGV / 2
local ids = {}
for i = 1, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
call_chunked('HSET', KEYS[1], ARGV)
call_chunked('LPUSH', KEYS[2], ids)
redis.call('HINCRBY', KEYS[4], 'arrived', n)
local _, second = now_ms()
redis.call('HINCRBY', KEYS[5], 'a:' .. second, n)
wake(KEYS[3])
return n
