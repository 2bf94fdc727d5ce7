--[[
  One page of a state's keys, newest first from a cursor on, from each copy
  of the state's set. A slots script (redis/cluster.ts): no KEYS, the copies
  are named by suffixes.

  Input:
    ARGV[1]   a state's set
    ARGV[2]   the cursor's score ('' for none)
    ARGV[3]   floor
    ARGV[4]   cap
    ARGV[5 ..] the suffixes

  Output:
    for each copy with anything to say, { its suffix's index (0-based), ties,
    window, next }: ties, the members of the cursor's score (all: the caller
    keeps those after the cursor's key); window, up to cap members below the
    cursor's score and at least the floor, with scores; next, unless the cap
    was reached, the first member below the floor with its score (where this
    copy goes on).
]]
local cap = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local ties = {}
  local top = '+inf'
  if ARGV[2] ~= '' then
    ties = redis.call('ZREVRANGEBYSCORE', key, ARGV[2], ARGV[2])
    top = '(' .. ARGV[2]
  end
  local window = redis.call('ZREVRANGEBYSCORE', key, top, ARGV[3], 'WITHSCORES', 'LIMIT', 0, cap)
  local next = {}
  if #window < 2 * cap then
    local below = '(' .. ARGV[3]
    if ARGV[3] == '-inf' then below = '-inf' end
    next = redis.call('ZREVRANGEBYSCORE', key, below, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  if #ties > 0 or #window > 0 or #next > 0 then out[#out + 1] = { i - 5, ties, window, next } end
end
return out
