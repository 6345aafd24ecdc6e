//! The Lua scripts of the Redis store: each is one atomic step that several replicas
//! may run at once (claim-and-bind, compare-and-delete, reserve under the cap, values
//! that only move forward, locks).

pub(super) const CLAIM: &str = r#"
local bound = redis.call('HGET', KEYS[1], ARGV[1])
if bound then return {'bound', bound} end
local ws = redis.call('LPOP', KEYS[2])
if not ws then return {'empty', ''} end
redis.call('HSET', KEYS[1], ARGV[1], ws)
return {'claimed', ws}
"#;

pub(super) const COMPARE_HDEL: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"#;

pub(super) const RESERVE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

pub(super) const TOUCH: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"#;

/// Records a sync time, monotonic, only for an existing record.
pub(super) const MARK_SYNCED: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 1
"#;

/// Writes a record; activity and sync times are kept in their own hashes and only move
/// forward, so a writer holding an older copy cannot roll them back.
pub(super) const PUT_RECORD: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local a = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[3]) > a then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
if ARGV[4] ~= '' then
  local s = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if tonumber(ARGV[4]) > s then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
end
return 1
"#;

pub(super) const PUSH_UNIQUE: &str = r#"
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"#;

pub(super) const LOCK: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

pub(super) const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
