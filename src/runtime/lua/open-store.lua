--[[
  Reads the store's identity, writing a new one if the store has none.

  Input:
    KEYS[1] store identity hash
    ARGV[1] a new id

  Output:
    { id, created (1|0), TIME seconds, TIME microseconds }
]]
local t = redis.call('TIME')
local id = redis.call('HGET', KEYS[1], 'id')
if id then return { id, 0, t[1], t[2] } end
local ms = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'createdAt', ms)
return { ARGV[1], 1, t[1], t[2] }
