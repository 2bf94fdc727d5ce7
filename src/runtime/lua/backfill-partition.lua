--[[
  Puts a key the machine's index holds into its partition's (see
  StateIndex.backfill): when its record is in that state, into the
  partition's set of it with the machine's score, out of the others; into the
  partition's outbox when it owes actions, else out.

  Input:
    KEYS[1]     record hash
    KEYS[2]     the machine's set of the state
    KEYS[3]     the machine's outbox
    KEYS[4]     the key's partition's outbox
    KEYS[5 ..]  the partition's set of each state (n of them)

    ARGV[1] that state
    ARGV[2] key
    ARGV[3] the state's place among the n (1-based)

  Output:
    1 placed, 0 the record is not in that state (or not in its set)
]]
if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score then return 0 end
for j = 5, #KEYS do
  if j - 4 == tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[j], score, ARGV[2])
  else
    redis.call('ZREM', KEYS[j], ARGV[2])
  end
end
local owed = redis.call('ZSCORE', KEYS[3], ARGV[2])
if owed and redis.call('HEXISTS', KEYS[1], 'o') == 1 then
  redis.call('ZADD', KEYS[4], 'NX', owed, ARGV[2])
else
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
