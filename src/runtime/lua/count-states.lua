--[[
  Counts the members of each state's sets and finds removal members whose
  deadline has passed on Redis's clock. A slots script (redis/cluster.ts): it
  declares no KEYS and walks the copies of the index named by suffixes (''
  on one Redis, `:{tag}` for each slot of the node on a Cluster).

  Input:
    ARGV[1]           removals
    ARGV[2]           at most this many due members
    ARGV[3]           the number n of states
    ARGV[4 .. 3 + n]  each state's set
    ARGV[4 + n ..]    the suffixes

  Output:
    { { count of each state }, { due removal members } }
]]
local n = tonumber(ARGV[3])
local limit = tonumber(ARGV[2])
local counts = {}
for j = 1, n do counts[j] = 0 end
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local due = {}
for i = 4 + n, #ARGV do
  for j = 1, n do counts[j] = counts[j] + redis.call('ZCARD', ARGV[3 + j] .. ARGV[i]) end
  if #due < limit then
    local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', now, 'LIMIT', 0, limit - #due)
    for _, member in ipairs(found) do due[#due + 1] = member end
  end
end
return { counts, due }
