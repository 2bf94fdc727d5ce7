--[[
  The removal of a key whose removal deadline has passed (on Redis's clock):
  its record (Redis's expiry may have dropped it already), its members of the
  state's sets, of the outboxes and of the removal schedule, in one step. A
  key with a record and no deadline lives again (a new life): only what is
  left of the old life is taken, its member of the state's sets unless its
  record is in that state.

  Input:
    KEYS[1] record hash
    KEYS[2] the state's set
    KEYS[3] removals
    KEYS[4] the key's partition's set of the state (KEYS[2] again for none)
    KEYS[5] outbox
    KEYS[6] the key's partition's outbox (KEYS[5] again for none)

    ARGV[1] state
    ARGV[2] key
    ARGV[3] removal member (`state\nkey`)

  Output:
    1 the member was due and is gone, 0 it is not due (or gone)
]]
local due = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not due then return 0 end
local t = redis.call('TIME')
if tonumber(due) > t[1] * 1000 + math.floor(t[2] / 1000) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then
    redis.call('ZREM', KEYS[2], ARGV[2])
    if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
  end
elseif ttl >= 0 then
  -- a deadline still ahead: the schedule follows the record's
  redis.call('ZADD', KEYS[3], string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000) + ttl), ARGV[3])
  return 0
else
  redis.call('ZREM', KEYS[2], ARGV[2])
  if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
  redis.call('ZREM', KEYS[5], ARGV[2])
  if KEYS[6] ~= KEYS[5] then redis.call('ZREM', KEYS[6], ARGV[2]) end
end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
