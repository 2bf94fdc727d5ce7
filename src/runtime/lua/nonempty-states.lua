--[[
  Which copies of which states' sets hold anything. A slots script
  (redis/cluster.ts): no KEYS, the copies are named by suffixes.

  Input:
    ARGV[1]           the number n of states
    ARGV[2 .. 1 + n]  each state's set
    ARGV[2 + n ..]    the suffixes

  Output:
    { { the state's index, the suffix's index } (1-based), ... }
]]
local n = tonumber(ARGV[1])
local out = {}
for i = 2 + n, #ARGV do
  for j = 1, n do
    if redis.call('EXISTS', ARGV[1 + j] .. ARGV[i]) == 1 then out[#out + 1] = { j, i - 1 - n } end
  end
end
return out
