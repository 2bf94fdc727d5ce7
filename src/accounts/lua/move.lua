--[[
  Moves money on an account once per operation id: a withdrawal (declined
  when funds are short) or a deposit, recorded in the account's ledger.

  Input:
    KEYS[1] balance hash
    KEYS[2] operations hash (operation id -> outcome)
    KEYS[3] ledger list
    KEYS[4] store identity hash

    ARGV[1] operation id
    ARGV[2] amount, cents
    ARGV[3] initial balance, cents (of an account not seen yet)
    ARGV[4] at, epoch ms
    ARGV[5] token
    ARGV[6] kind: 'withdrawal' | 'deposit'
    ARGV[7] store id

  Output:
    { outcome ('applied' | 'declined'), balance, repeated (1|0) }
    error STORE_LOST when the store is not the one the process knows: in an
    emptied store the operation ids are gone, and the money would move again
]]
--- @include "../../runtime/lua/includes/store-guard"
local lost = storeGuard(KEYS[4], ARGV[7])
if lost then return lost end
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
end
redis.call('HSET', KEYS[2], ARGV[1], outcome)
return {outcome, string.format('%d', balance), 0}
