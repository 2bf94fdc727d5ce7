--[[
  Takes a key out of a state's sets unless its record is in that state, and
  drops a removal member whose deadline has passed (the index's pruning).

  Input:
    KEYS[1] record hash
    KEYS[2] the state's set
    KEYS[3] removals
    KEYS[4] the key's partition's set of the state (KEYS[2] again for none)

    ARGV[1] state
    ARGV[2] key
    ARGV[3] removal member ('' for none)

  Output:
    1
]]
if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
end
if ARGV[3] ~= '' then
  local due = redis.call('ZSCORE', KEYS[3], ARGV[3])
  local t = redis.call('TIME')
  if due and tonumber(due) <= t[1] * 1000 + math.floor(t[2] / 1000) then
    redis.call('ZREM', KEYS[3], ARGV[3])
  end
end
return 1
