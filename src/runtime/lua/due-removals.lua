--[[
  Removal members whose deadline has passed on Redis's clock. A slots script
  (redis/cluster.ts): no KEYS, the copies are named by suffixes.

  Input:
    ARGV[1]    removals
    ARGV[2]    at most this many
    ARGV[3 ..] the suffixes

  Output:
    { member, ... }: up to that many due removal members, one flat list
]]
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local due = {}
for i = 3, #ARGV do
  if #due >= limit then break end
  local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', now, 'LIMIT', 0, limit - #due)
  for _, member in ipairs(found) do due[#due + 1] = member end
end
return due
