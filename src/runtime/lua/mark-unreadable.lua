--[[
  Adds a key whose record cannot be read to the unreadable set (scored by
  Redis's time, first time only), or takes it out.

  Input:
    KEYS[1] record hash
    KEYS[2] the unreadable set
    KEYS[3] the key's partition's unreadable set (KEYS[2] again for none)

    ARGV[1] key
    ARGV[2] '1' to add (only while the record is there), '' to remove

  Output:
    1 the set changed, 0 it did not (or the record is gone)
]]
if ARGV[2] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  local t = redis.call('TIME')
  local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
  if KEYS[3] ~= KEYS[2] then redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1]) end
  return redis.call('ZADD', KEYS[2], 'NX', now, ARGV[1])
end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
