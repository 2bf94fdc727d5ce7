--[[
  Takes a key out of the outboxes when its record owes nothing (or is gone):
  an entry left by a record that expired or was cleared by another process.

  Input:
    KEYS[1] record hash
    KEYS[2] outbox
    KEYS[3] the key's partition's outbox (KEYS[2] again for none)

    ARGV[1] key

  Output:
    1 the key left the outbox, 0 it still owes (or was not there)
]]
if redis.call('HEXISTS', KEYS[1], 'o') == 1 then return 0 end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
