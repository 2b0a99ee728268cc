#!lua flags=allow-oom
-- Extend the leases of worker processes that their supervisor sees alive (a task may hold
-- a process's interpreter lock for minutes, starving its own heartbeat thread).
-- KEYS[1] workers zset    KEYS[1 + i] stats hash of worker i
-- ARGV[1] lease TTL (ms)  ARGV[1 + i] id of worker i
-- Only workers still in the zset are extended (XX), and never shortened (GT): one taken
-- for dead meanwhile (its tasks handed to others) is not brought back; its own next
-- heartbeat tells it.
local now = now_ms()
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', 'GT', now + ttl, ARGV[i])
  redis.call('PEXPIRE', KEYS[i], ttl, 'GT')
end
return now
