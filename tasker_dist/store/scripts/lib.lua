-- Helpers put in front of every script (see __init__.py).

-- A command over many fields is one call, not one per field (each redis.call costs about
-- a microsecond), but Redis's Lua unpacks at most about 8,000 values into a call: so in
-- chunks.
local CHUNK = 1000 -- even, so that field/value pairs stay whole

-- `command key values...`, in chunks.
local function call_chunked(command, key, values)
  for i = 1, #values, CHUNK do
    redis.call(command, key, unpack(values, i, math.min(i + CHUNK - 1, #values)))
  end
end

-- HMGET of any number of fields: their values (false where missing), in order.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end


-- Redis's clock, the only one scripts use: milliseconds, and the whole second as
-- Redis gave it (rate buckets are per second).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1]
end

-- Wake one blocked worker: a token on the signal list `key`, unless one is there.
local function wake(key)
  if redis.call('LLEN', key) == 0 then
    redis.call('LPUSH', key, '1')
  end
end

-- Note that task `id` finished, for its finished set `key` (see keys.py); `sets` collects
-- the ids of one call by set, which `add_finished` then records with one SADD per set.
local function note_finished(sets, key, id)
  local ids = sets[key]
  if not ids then
    ids = {}
    sets[key] = ids
  end
  ids[#ids + 1] = id
end

-- Record the ids `note_finished` collected, and keep each set at least `ttl` ms from now
-- (never less: workers may keep results for different times).
local function add_finished(sets, ttl)
  for key, ids in pairs(sets) do
    call_chunked('SADD', key, ids)
    if redis.call('PTTL', key) < tonumber(ttl) then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
