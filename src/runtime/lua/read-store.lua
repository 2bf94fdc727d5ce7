--[[
  Reads the store's identity and Redis's clock.

  Input:
    KEYS[1] store identity hash

  Output:
    { id or false, acceptedAt or false, TIME seconds, TIME microseconds }
]]
local t = redis.call('TIME')
local f = redis.call('HMGET', KEYS[1], 'id', 'acceptedAt')
return { f[1], f[2], t[1], t[2] }
