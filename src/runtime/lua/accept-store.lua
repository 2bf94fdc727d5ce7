--[[
  An operator's acceptance of the store as it is now: marks its identity
  accepted (processes that lost their store adopt it).

  Input:
    KEYS[1] store identity hash
    ARGV[1] a new id (used if the store has none)

  Output:
    { id, created (1|0) }
]]
local t = redis.call('TIME')
local ms = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local id = redis.call('HGET', KEYS[1], 'id')
local created = 0
if not id then
  id = ARGV[1]
  created = 1
  redis.call('HSET', KEYS[1], 'id', id, 'createdAt', ms)
end
redis.call('HSET', KEYS[1], 'acceptedAt', ms)
return { id, created }
