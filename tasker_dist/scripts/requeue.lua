-- Hand tasks the caller holds back to the head of the priority lane (stop or kill).
-- KEYS[1] the caller's held set    KEYS[2] priority list    KEYS[3] signal list
-- ARGV    the task ids
-- Only ids the caller still holds are pushed, so a task is never queued twice. They
-- are pushed last first, so the first id given is served first.
-- Returns the number of tasks handed back.
local n = 0
for i = #ARGV, 1, -1 do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[1], id) == 1 then
    redis.call('RPUSH', KEYS[2], id)
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('LPUSH', KEYS[3], '1')
end
return n
