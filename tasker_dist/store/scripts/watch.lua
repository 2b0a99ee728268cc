#!lua flags=allow-oom
-- Count a process in (ARGV[1] = 1) or out (-1) of those waiting on the done channels of
-- tasks: complete.lua and cancel.lua publish a result on a task's done channel only while
-- some process waits there.
-- KEYS[1] watched hash (task id -> processes waiting on its done channel)
-- ARGV[1] 1 or -1   ARGV[2...] task ids
-- A count that drops to zero is removed in the same step as the decrement (another
-- process counting itself in meanwhile must not have its count deleted). Allowed at the
-- memory limit: a field per waiting process and task is small, and a caller waiting for a
-- result must not be stuck until Redis has room.
local delta = tonumber(ARGV[1])
for i = 2, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], delta) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
