--[[
  Clears what a write owed once it ran, only if nobody wrote since: a writer
  whose lease ran out must not clear what the new lock holder owes.

  Input:
    KEYS[1] record hash
    KEYS[2] outbox
    KEYS[3] the key's partition's outbox (KEYS[2] again for none)

    ARGV[1] the version whose owed actions ran
    ARGV[2] key

  Output:
    1 cleared, 0 the record was written since (or is gone)
]]
if (redis.call('HGET', KEYS[1], 'v') or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'o')
redis.call('ZREM', KEYS[2], ARGV[2])
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[2]) end
return 1
