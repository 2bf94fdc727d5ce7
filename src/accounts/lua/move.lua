--[[
  Moves money on an account once per operation id: a withdrawal (declined
  when funds are short) or a deposit, recorded in the account's ledger.

  Each new operation id is recorded with Redis's time; the ids older than the
  retention (a bound longer than any retry of them, see docs/guarantees.md)
  are forgotten, a batch of at most 100 per call (more than one comes in per
  call, so the backlog shrinks), and the ledger keeps its newest entries up
  to the limit. The balance is its own field: trimming either changes no
  balance.

  Input:
    KEYS[1] balance hash
    KEYS[2] operations hash (operation id -> outcome)
    KEYS[3] ledger list
    KEYS[4] store identity hash
    KEYS[5] operations by time (sorted set, scored by when each was recorded)

    ARGV[1] operation id
    ARGV[2] amount, cents
    ARGV[3] initial balance, cents (of an account not seen yet)
    ARGV[4] at, epoch ms
    ARGV[5] token
    ARGV[6] kind: 'withdrawal' | 'deposit'
    ARGV[7] store id
    ARGV[8] ledger limit: entries kept per account
    ARGV[9] operation retention, ms

  Output:
    { outcome ('applied' | 'declined'), balance, repeated (1|0) }
    error STORE_LOST when the store is not the one the process knows: in an
    emptied store the operation ids are gone, and the money would move again
]]
--- @include "../../runtime/lua/includes/store-guard"
local lost = storeGuard(KEYS[4], ARGV[7])
if lost then return lost end
local FORGET_BATCH = 100
local seen = redis.call('HGET', KEYS[2], ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or ARGV[3])
if seen then return {seen, string.format('%d', balance), 1} end
local amount = tonumber(ARGV[2])
local outcome = 'applied'
if ARGV[6] == 'withdrawal' then
  if balance < amount then outcome = 'declined' else balance = balance - amount end
else
  balance = balance + amount
end
if outcome == 'applied' then
  redis.call('HSET', KEYS[1], 'balance', string.format('%d', balance))
  redis.call('RPUSH', KEYS[3], cjson.encode({
    operationId = ARGV[1], kind = ARGV[6], amountCents = amount,
    balanceCents = balance, token = ARGV[5], at = tonumber(ARGV[4])
  }))
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[8]), -1)
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', string.format('%d', now - tonumber(ARGV[9])), 'LIMIT', 0, FORGET_BATCH)
if #old > 0 then
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[5], unpack(old))
end
redis.call('HSET', KEYS[2], ARGV[1], outcome)
redis.call('ZADD', KEYS[5], string.format('%d', now), ARGV[1])
return {outcome, string.format('%d', balance), 0}
