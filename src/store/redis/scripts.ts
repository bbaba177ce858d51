/**
 * The Lua scripts behind ownership and the fenced append. Each runs atomically on the
 * session's shard, so "check the lease, then write" can never interleave with another
 * node's takeover.
 */

/**
 * Acquire: KEYS lease, epoch; ARGV node, nonce, ttl ms. Only when nobody holds the lease:
 * the next epoch and the lease `<epoch>:<node>:<nonce>` with its TTL. Returns the token,
 * or false when the lease is held.
 *
 * The next epoch is one more than the last, and at least Redis's clock in ms: a failover to
 * a replica that had not received the last acquisitions rolls the counter back, and the
 * clock (of the promoted replica, later in time) still puts the next epoch above every one
 * given out before, so an epoch is never given out twice (with clocks apart by less than
 * the time a failover takes). Resume tokens of (seq, epoch) rely on that.
 */
export const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, now)
redis.call('SET', KEYS[2], string.format('%d', epoch))
local token = string.format('%d', epoch) .. ':' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return token
`;

/** Renew: KEYS lease; ARGV token, ttl ms. 1 when the caller still holds it, 0 when not. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** Release: KEYS lease; ARGV token. 1 when it was the caller's and is gone, 0 when not. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * The fenced commit: KEYS lease, log, meta, bytes; ARGV token, epoch, first seq, the
 * session's registry entry ("" to leave it as it is), then one event's bytes per argument
 * (seqs first, first + 1, …). Checked before anything is written:
 * - the lease is the caller's, else error FENCED (another node owns the session now);
 * - the log's last id: the whole batch already there (a retry after an unknown outcome)
 *   returns 0 and writes nothing, not even the entry (a newer one may be there); the first
 *   seq right after it appends; anything else is error SEQ (a gap or an overlap: the
 *   caller's idea of the log is wrong). A log starts at seq 1: one that is gone (a Redis
 *   that lost its data) refuses a writer that remembers more, rather than leave a gap.
 * Then the events and the entry are written together, and the log's byte count grows by
 * the events' sizes. Returns the number of events appended. Each log entry holds the
 * event (e) and the epoch (ep) of the owner that wrote it.
 */
export const FENCED_COMMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED the session is owned by another node') end
local first = tonumber(ARGV[3])
local count = #ARGV - 4
if count > 0 then
  local top = 0
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last > 0 then top = tonumber(string.match(last[1][1], '^(%d+)')) end
  if top == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[2])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then top = tonumber(string.match(info[i + 1], '^(%d+)')) end
    end
  end
  if top >= first + count - 1 then return 0 end
  if first ~= top + 1 then return redis.error_reply('SEQ the log ends at ' .. top .. ', not ' .. (first - 1)) end
  local size = 0
  for i = 1, count do
    redis.call('XADD', KEYS[2], (first + i - 1) .. '-0', 'e', ARGV[4 + i], 'ep', ARGV[2])
    size = size + string.len(ARGV[4 + i])
  end
  redis.call('INCRBY', KEYS[4], size)
end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
return count
`;

/**
 * Trim: KEYS log, bytes; ARGV first seq kept, most entries dropped by this call. Drops
 * the oldest entries below the first kept seq (at most that many) and takes their sizes
 * off the byte count; the stream and its last id stay (ids never go back). Returns how
 * many entries it dropped: fewer than asked means none below the seq is left.
 */
export const TRIM = `
local entries = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1] .. '-0', 'COUNT', ARGV[2])
if #entries == 0 then return 0 end
local size = 0
for i = 1, #entries do
  local fields = entries[i][2]
  for k = 1, #fields, 2 do
    if fields[k] == 'e' then size = size + string.len(fields[k + 1]) end
  end
end
local top = tonumber(string.match(entries[#entries][1], '^(%d+)'))
redis.call('XTRIM', KEYS[1], 'MINID', (top + 1) .. '-0')
redis.call('DECRBY', KEYS[2], size)
return #entries
`;

/**
 * An audit entry: KEYS the audit stream, its id counter; ARGV the entry, how many are kept
 * at least. The id is the next of the counter (it never goes back); older entries beyond
 * about twice the kept number are dropped. Returns the id.
 */
export const APPEND_AUDIT = `
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id .. '-0', 'j', ARGV[1])
return id
`;

/**
 * A node's heartbeat: KEYS nodes (a sorted set: node → expiry, in Redis's own ms), info
 * (the node's hash); ARGV node, ttl ms, then field/value pairs (address, load, capacity).
 * Redis's clock, not the nodes': their clocks may disagree. Dead nodes' entries are pruned.
 * Returns Redis's time in ms.
 */
export const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return now
`;

/**
 * The live nodes: KEYS nodes; ARGV the info key prefix. For each node whose heartbeat has
 * not expired (by Redis's clock): its id, its expiry, then its hash as field/value pairs.
 */
export const LIVE_NODES = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #live, 2 do
  table.insert(out, live[i])
  table.insert(out, live[i + 1])
  table.insert(out, redis.call('HGETALL', ARGV[1] .. live[i]))
end
return out
`;
