--[[
  Takes a key out of the timer dues when its record has no live timers (or
  is gone): an entry left by a record deleted by other means.

  Input:
    KEYS[1] record hash
    KEYS[2] the timer dues
    KEYS[3] the key's partition's timer dues (KEYS[2] again for none)

    ARGV[1] key

  Output:
    1 the key left the dues, 0 it still has timers (or was not there)
]]
if redis.call('HEXISTS', KEYS[1], 't') == 1 then return 0 end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
