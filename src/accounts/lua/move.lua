--[[
  Moves money on an account once per operation id, in one currency, and
  records it in the account's ledger. The movements (ARGV[2]) and what they
  do to that currency's (available, held):
    withdrawal  a charge captured at once: available - amount, declined if short
    hold        an authorization: available - amount, held + amount, declined if short
    capture     held - authorized, available + (authorized - amount): the amount
                is captured, the rest of the hold released
    release     a void: held - amount, available + amount
    deposit     a refund: available + amount

  Each new operation id is recorded with Redis's time; the ids older than the
  retention (a bound longer than any retry of them, see docs/guarantees.md)
  are forgotten, a batch of at most 100 per call (more than one comes in per
  call, so the backlog shrinks), and the ledger keeps its newest entries up
  to the limit. Balances are their own fields: trimming either changes no
  balance. An account written before currencies has one field, `balance`
  (the default currency's available funds): the first movement renames it.

  Input:
    KEYS[1] balances hash (available:CUR, held:CUR)
    KEYS[2] operations hash (operation id -> outcome)
    KEYS[3] ledger list
    KEYS[4] store identity hash
    KEYS[5] operations by time (sorted set, scored by when each was recorded)

    ARGV[1] operation id
    ARGV[2] kind: 'withdrawal' | 'hold' | 'capture' | 'release' | 'deposit'
    ARGV[3] currency (ISO 4217)
    ARGV[4] amount, minor units
    ARGV[5] authorized amount (capture: the hold it settles)
    ARGV[6] initial balance, minor units (of a currency not seen yet)
    ARGV[7] token
    ARGV[8] store id
    ARGV[9] ledger limit: entries kept per account
    ARGV[10] operation retention, ms
    ARGV[11] when the movement was first asked for, epoch ms
    ARGV[12] the default currency (of a `balance` field written before currencies)

  Output:
    { outcome, available, held, repeated (1|0) }; outcome 'applied',
    'declined', or 'too_old' (an unknown id first asked for longer ago than
    the retention: it may have been applied and forgotten, so nothing moves
    and nothing is recorded)
    error STORE_LOST when the store is not the one the process knows: in an
    emptied store the operation ids are gone, and the money would move again
    error HOLD_SHORT when a capture or release finds less held than it
    settles (nothing moves: funds never go negative)
]]
--- @include "../../runtime/lua/includes/store-guard"
local lost = storeGuard(KEYS[4], ARGV[8])
if lost then return lost end
local FORGET_BATCH = 100
local availableField = 'available:' .. ARGV[3]
local heldField = 'held:' .. ARGV[3]
local f = redis.call('HMGET', KEYS[1], availableField, heldField, 'balance')
local availableRaw = f[1]
if f[3] then
  local legacyField = 'available:' .. ARGV[12]
  if redis.call('HSETNX', KEYS[1], legacyField, f[3]) == 1 and legacyField == availableField then
    availableRaw = f[3]
  end
  redis.call('HDEL', KEYS[1], 'balance')
end
local available = tonumber(availableRaw or ARGV[6])
local held = tonumber(f[2] or '0')
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then return {seen, string.format('%d', available), string.format('%d', held), 1} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local retention = tonumber(ARGV[10])
if now - tonumber(ARGV[11]) > retention then
  return {'too_old', string.format('%d', available), string.format('%d', held), 0}
end
local kind = ARGV[2]
local amount = tonumber(ARGV[4])
local released = 0
local outcome = 'applied'
if kind == 'withdrawal' or kind == 'hold' then
  if available < amount then
    outcome = 'declined'
  else
    available = available - amount
    if kind == 'hold' then held = held + amount end
  end
elseif kind == 'capture' then
  local authorized = tonumber(ARGV[5])
  if held < authorized then return redis.error_reply('HOLD_SHORT ' .. held .. ' held, capture settles ' .. authorized) end
  released = authorized - amount
  held = held - authorized
  available = available + released
elseif kind == 'release' then
  if held < amount then return redis.error_reply('HOLD_SHORT ' .. held .. ' held, release of ' .. amount) end
  held = held - amount
  available = available + amount
else
  available = available + amount
end
if outcome == 'applied' then
  redis.call('HSET', KEYS[1], availableField, string.format('%d', available), heldField, string.format('%d', held))
  redis.call('RPUSH', KEYS[3], cjson.encode({
    operationId = ARGV[1], kind = kind, currency = ARGV[3], amountCents = amount,
    releasedCents = released, balanceCents = available, heldCents = held,
    token = ARGV[7], at = now
  }))
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[9]), -1)
end
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', string.format('%d', now - retention), 'LIMIT', 0, FORGET_BATCH)
if #old > 0 then
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[5], unpack(old))
end
redis.call('HSET', KEYS[2], ARGV[1], outcome)
redis.call('ZADD', KEYS[5], string.format('%d', now), ARGV[1])
return {outcome, string.format('%d', available), string.format('%d', held), 0}
