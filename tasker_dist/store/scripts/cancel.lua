#!lua flags=allow-oom
-- Cancel tasks that have not finished, storing a result for each.
-- KEYS[1] tasks hash    KEYS[2] retries hash    KEYS[3] deliveries hash
-- KEYS[4] cancelled hash   KEYS[5] watched hash (task id -> processes waiting on its
-- done channel)
-- KEYS[4 + 2i] result key of task i   KEYS[5 + 2i] the finished set it goes in
-- ARGV[1] result TTL (ms)   ARGV[2] how long (ms) a finished set is kept after its
-- last addition   ARGV[3] the publish command (SPUBLISH on a cluster, else PUBLISH)
-- then per task: id, result envelope, done channel (the result is published there if
-- some process watches the task)
-- Each task costs O(1), wherever it stands: its envelope and bookkeeping are deleted and
-- its id is marked in the cancelled hash, which the fetch that later pops the id from its
-- lane (or the completion of the worker running it) reads to drop it. Taking the id off
-- its lane here would cost a scan of the list per task (LREM), quadratic for a queue.
-- A task already finished (no envelope) is left alone.
-- Returns the ids cancelled.
local ids = {}
for o = 4, #ARGV, 3 do ids[#ids + 1] = ARGV[o] end
local envelopes = hmget(KEYS[1], ids)
local watched = {}
local watching = redis.call('HLEN', KEYS[5]) > 0
if watching then watched = hmget(KEYS[5], ids) end
local out, marks, sets = {}, {}, {}
for i, id in ipairs(ids) do
  if envelopes[i] then
    local o = 4 + (i - 1) * 3
    redis.call('SET', KEYS[4 + 2 * i], ARGV[o + 1], 'PX', ARGV[1])
    note_finished(sets, KEYS[5 + 2 * i], id)
    if watched[i] then redis.call(ARGV[3], ARGV[o + 2], ARGV[o + 1]) end
    out[#out + 1] = id
    marks[#marks + 1] = id
    marks[#marks + 1] = '1'
  end
end
for k = 1, 3 do call_chunked('HDEL', KEYS[k], out) end
if watching then call_chunked('HDEL', KEYS[5], out) end
call_chunked('HSET', KEYS[4], marks)
add_finished(sets, ARGV[2])
return out
