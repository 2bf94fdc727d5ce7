--[[
  Writes a key's record: snapshot, owed actions, timers, its place in the
  state index and the outbox, in one step, if the record is still the one
  the command read (compare-and-set on version and life id).

  Input:
    KEYS[1] record hash
    KEYS[2] outbox
    KEYS[3] store identity hash
    KEYS[4] state index: the new state's set
    KEYS[5] state index: the previous state's set
    KEYS[6] state index: removals
    KEYS[7] partition's set of the new state (KEYS[4] again for none)
    KEYS[8] partition's set of the previous state (KEYS[5] again for none)
    KEYS[9] partition's outbox (KEYS[2] again for none)
    KEYS[10] timer dues: the machine's (keys with live timers, by earliest due time)
    KEYS[11] timer dues: the partition's (KEYS[10] again for none)

    ARGV[1]  expected version ('0': no record)
    ARGV[2]  expected life id ('' : no record)
    ARGV[3]  life id
    ARGV[4]  machine name
    ARGV[5]  machine version
    ARGV[6]  snapshot JSON
    ARGV[7]  owed actions JSON ('' for none)
    ARGV[8]  timers JSON ('' for none)
    ARGV[9]  retention ms ('' unless the snapshot is final)
    ARGV[10] key
    ARGV[11] store id
    ARGV[12] the new state (state index)
    ARGV[13] '1' when the key has a partition, else ''
    ARGV[14] the earliest due time of the live timers ('' for none)

  Output:
    { new version, TIME seconds, TIME microseconds }
    { -1 } when the stored (version, life id) differ
    error STORE_LOST when the store is not the one the process knows

  A final snapshot gets a removal deadline on Redis's clock, once (a later
  write keeps the first deadline).
]]
--- @include "includes/store-guard"
local lost = storeGuard(KEYS[3], ARGV[11])
if lost then return lost end
local cur = redis.call('HMGET', KEYS[1], 'v', 'l')
if (cur[1] or '0') ~= ARGV[1] or (cur[2] or '') ~= ARGV[2] then return { -1 } end
local was = redis.call('HGET', KEYS[1], 'i') -- state index
local nv = tonumber(cur[1] or '0') + 1
local part = ARGV[13] == '1'
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'v', nv, 'l', ARGV[3], 'n', ARGV[4], 'm', ARGV[5], 's', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'o', ARGV[7])
  redis.call('ZADD', KEYS[2], 'NX', string.format('%d', now), ARGV[10])
  if part then redis.call('ZADD', KEYS[9], 'NX', string.format('%d', now), ARGV[10]) end
elseif redis.call('HDEL', KEYS[1], 'o') == 1 then
  redis.call('ZREM', KEYS[2], ARGV[10])
  if part then redis.call('ZREM', KEYS[9], ARGV[10]) end
end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 't', ARGV[8]) else redis.call('HDEL', KEYS[1], 't') end
if ARGV[14] ~= '' then
  redis.call('ZADD', KEYS[10], ARGV[14], ARGV[10])
  if part then redis.call('ZADD', KEYS[11], ARGV[14], ARGV[10]) end
elseif redis.call('ZREM', KEYS[10], ARGV[10]) == 1 and part then
  redis.call('ZREM', KEYS[11], ARGV[10])
end
-- state index: begin
if was and was ~= ARGV[12] then
  redis.call('ZREM', KEYS[5], ARGV[10])
  if part then redis.call('ZREM', KEYS[8], ARGV[10]) end
end
redis.call('ZADD', KEYS[4], string.format('%d', now), ARGV[10])
if part then redis.call('ZADD', KEYS[7], string.format('%d', now), ARGV[10]) end
if was ~= ARGV[12] then redis.call('HSET', KEYS[1], 'i', ARGV[12]) end
-- state index: end
if ARGV[9] ~= '' and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', now + tonumber(ARGV[9])))
  redis.call('ZADD', KEYS[6], string.format('%d', now + tonumber(ARGV[9])), ARGV[12] .. '\n' .. ARGV[10]) -- state index
end
return { nv, t[1], t[2] }
