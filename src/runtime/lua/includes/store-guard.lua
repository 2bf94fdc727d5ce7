--[[
  Refuses a write to a store other than the one this process knows (see
  redis/store-identity.ts): in an emptied or replaced store the records and
  operation ids are gone, and work would be done again.

  storeGuard(identityKey, storeId)
    identityKey  the store identity hash
    storeId      the id the process knows
  Returns an error reply `STORE_LOST ...` (return it at once), or nil.
]]
local function storeGuard(identityKey, storeId)
  if redis.call('HGET', identityKey, 'id') ~= storeId then
    return redis.error_reply('STORE_LOST the store identity changed')
  end
end
