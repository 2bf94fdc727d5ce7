--[[
  Registers a tenant's webhook endpoint, unless the tenant is at its limit.
  The record gets `seq`, the tenant's next registration number, as its first
  member (so two registrations in one millisecond list in the order they
  were made).

  Input:
    KEYS[1] the tenant's endpoints hash
    KEYS[2] its registration counter

    ARGV[1] the new id
    ARGV[2] its record (a JSON object)
    ARGV[3] the most endpoints the tenant may have

  Output:
    1 written, 0 the tenant is at the limit (nothing written)
]]
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2))
return 1
