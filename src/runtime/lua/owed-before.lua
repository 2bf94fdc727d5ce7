--[[
  The outbox's members scored at or before a time, oldest first. A slots
  script (redis/cluster.ts): no KEYS, the copies are named by suffixes.

  Input:
    ARGV[1]    the outbox
    ARGV[2]    a time, epoch ms
    ARGV[3]    at most this many per copy
    ARGV[4 ..] the suffixes

  Output:
    { member, score, member, score, ... } of every copy, one flat list
]]
local out = {}
for i = 4, #ARGV do
  local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
  for _, value in ipairs(found) do out[#out + 1] = value end
end
return out
