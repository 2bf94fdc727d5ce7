--[[
  Takes a key's lock as Redlock does (SET NX PX) and, only then, reads the
  record's fields and Redis's TIME: what is read is read under the lock.

  Input:
    KEYS[1] record hash
    KEYS[2] the key's lock

    ARGV[1] the lock's value
    ARGV[2] its lease, ms

  Output:
    { v, l, n, m, s, o, t, TIME seconds, TIME microseconds } (the record's
    fields, false where absent; see redis/record-store.ts)
    nil when another holds the lock
]]
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local r = redis.call('HMGET', KEYS[1], 'v', 'l', 'n', 'm', 's', 'o', 't')
local t = redis.call('TIME')
r[8] = t[1]
r[9] = t[2]
return r
