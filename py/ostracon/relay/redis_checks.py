"""What the Redis mailbox checks in every value it reads back from Redis.

Redis is input like any other: whoever can write to the server (a shared Redis, another
tenant, a second application using the same prefix) can leave keys of another type under the
relay's prefix, counters that are not numbers, stream entries with missing fields, sizes that
lie, timestamps that never age out, frames of a room without a record, scores of +inf, or
PUBLISH forged frames on a room's channel. Left alone those reach the relay as a ``KeyError``
in ``read()``, a ``ValueError`` in ``info()``, a Lua error that stops appends and pruning for
every room, or an eviction loop that never ends and keeps the Redis server busy for all.

Unlike a SQLite file the data can change while the relay runs, so the checks run inside every
Lua script, on the values that script uses (``LUA_LIB``), and :meth:`RedisMailbox.sweep` runs
them over every room once at open. The rules are the SQLite mailbox's (relay/sqlite_checks.py)
where they are the same rules:

* room record (hash ``r:<room>:m``): epoch 1..32 lower-case hex; head, pruned, bytes, frames
  canonical decimal integers with ``pruned <= head`` and ``frames <= head``; ``last_ts`` and
  ``last_active`` finite and no later than the clock plus
  :data:`~ostracon.relay.sqlite_checks.DEFAULT_MAX_TIMESTAMP_SKEW_S`.
* frame (entry of stream ``r:<room>:s``): id ``<cursor>-1`` with ``1 <= cursor <= head``;
  fields exactly ``d, t, n[, q[, w]]`` in that order (older entries lack ``q``/``w``);
  non-empty data with ``n == len(d) + FRAME_OVERHEAD_BYTES <= max_room_bytes``; a timestamp as
  above; ``q`` a positive integer; a writer of at most ``4 * MAX_WRITER_CHARS`` bytes (UTF-8).
* every key has the Redis type the backend gives it; room ids met in the indexes are room ids.

What breaks them is moved aside under the prefix, never deleted: a stream entry into the stream
``q:frames`` (fields ``reason``, ``room``, ``id``, then its own fields), a whole key (a room
record, a key of the wrong type, the frames of a room without a record) renamed to ``q:k:<id>``
where ``<id>`` is the ``q:frames`` entry that records its original name and reason; such a key
expires after :data:`DEFAULT_QUARANTINE_TTL_S`, as its record leaves the trimmed ``q:frames``
stream in time. Frames
moved count as ``dropped["quarantined"]`` (``mailbox_dropped_total{reason="quarantined"}``).
Counters (a room's bytes/frames/writer bytes, the global totals) that disagree with the frames
are counted again from the frames; drop counts that are not counts are removed.

Integers are limited to :data:`REDIS_MAX_INT_DIGITS` digits: Lua numbers are doubles and Lua
prints ``1e+14`` and up in exponent form, so larger values could not be used as stream ids.
"""

from __future__ import annotations

import string
import struct
from typing import Any

from ..core.errors import MailboxError
from ..core.protocol.relay import ROOM_ID_MAX_HEX, ROOM_ID_MIN_HEX, valid_room_id
from .mailbox import FRAME_OVERHEAD_BYTES, MAX_WRITER_CHARS
from .sqlite_checks import DEFAULT_MAX_TIMESTAMP_SKEW_S, EPOCH_MAX_HEX, MAX_FINITE_TIMESTAMP

#: Longest integer (decimal digits) accepted in Redis: cursors, counters, sizes, sequence
#: numbers. 10**14 frames is beyond any relay's life; beyond it Lua loses exact formatting.
REDIS_MAX_INT_DIGITS = 14
#: Entries kept in the ``q:frames`` stream (older ones are trimmed, approximately): the record
#: of what was moved aside must not grow without bound when someone keeps planting values.
DEFAULT_QUARANTINE_MAX_ENTRIES = 10_000
#: Seconds a whole key moved aside (``q:k:<id>``) is kept for an operator to look at before it
#: expires: a week covers a weekend's incident, and keys planted again and again must not grow
#: the store without bound (a renamed key keeps no TTL of its original).
DEFAULT_QUARANTINE_TTL_S = 7 * 24 * 3600
#: A rate bucket never owes more than this many seconds of refill: a planted ``tok`` of -1e300
#: would otherwise hold a client back for ever.
MAX_THROTTLE_DEBT_S = 3600.0
#: Bus header: origin process id, cursor (0: ephemeral).
BUS_HEADER = struct.Struct(">16sQ")

#: Drop reasons the backend counts in its ``dropped`` hash; other fields there are removed.
DROP_REASONS = ("room_bytes", "total_bytes", "age", "quarantined")

# Common ARGV of every mailbox script (see mailbox_args), then the script's own.
_LUA_LIB = string.Template(r"""
local PFX, NOW_S = ARGV[1], ARGV[2]
local NOW, NOT_AFTER = tonumber(ARGV[2]), tonumber(ARGV[3])
local MAX_ROOM, MAX_TOTAL, MAX_AGE = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local QMAX, QTTL = ARGV[7], ARGV[8]
local NARGS = 8
local OVERHEAD, MAX_WRITER, DIGITS = $overhead, $max_writer, $digits
local ROOM_MIN, ROOM_MAX = $room_min, $room_max
local REASONS = {$reasons}
local QLOG = PFX .. 'q:frames'
local DIRTY = false  -- the global totals need counting again before the script ends
local recount_globals

local function kind(k) return redis.call('TYPE', k)['ok'] end
local function uint(s)
  if type(s) ~= 'string' or #s == 0 or #s > DIGITS then return nil end
  if s ~= '0' and string.match(s, '^[1-9]%d*$') == nil then return nil end
  return tonumber(s)
end
local function stamp(s)
  if type(s) ~= 'string' or #s == 0 or #s > 40 or string.match(s, '^[-+.%deE]+$') == nil then return nil end
  local v = tonumber(s)
  if v == nil or v ~= v or v < -$finite or v > NOT_AFTER then return nil end
  return v
end
local function hex(s, lo, hi)
  return type(s) == 'string' and #s >= lo and #s <= hi and string.match(s, '^[0-9a-f]+$') ~= nil
end
local function is_room(s) return hex(s, ROOM_MIN, ROOM_MAX) end
local function rkey(room, part) return PFX .. 'r:' .. room .. ':' .. part end
local function field(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
-- Add d to an integer hash field (a value that is not one counts as 0); never below 0.
local function hadd(k, f, d, drop_zero)
  local v = (uint(redis.call('HGET', k, f)) or 0) + d
  if v < 0 then v = 0 DIRTY = true end
  if v == 0 and drop_zero then redis.call('HDEL', k, f) else redis.call('HSET', k, f, v) end
  return v
end
local function sadd(k, d)
  local v = (uint(redis.call('GET', k)) or 0) + d
  if v < 0 then v = 0 DIRTY = true end
  redis.call('SET', k, v)
  return v
end

-- Quarantine ------------------------------------------------------------------------------
local function qlog(args)
  local t = kind(QLOG)
  if t ~= 'none' and t ~= 'stream' then redis.call('RENAME', QLOG, QLOG .. ':wrong-type') end
  local cmd = {'XADD', QLOG, 'MAXLEN', '~', QMAX, '*'}
  for _, v in ipairs(args) do cmd[#cmd + 1] = v end
  return redis.call(unpack(cmd))
end
local function quarantined(n) if n > 0 then hadd(PFX .. 'dropped', 'quarantined', n, false) end end
local function quarantine_entry(room, e, why)
  local args = {'reason', why, 'room', room, 'id', e[1]}
  for i = 1, math.min(#e[2], 32) do args[#args + 1] = e[2][i] end
  qlog(args)
  redis.call('XDEL', rkey(room, 's'), e[1])
  quarantined(1)
end
local function move_aside(k, why)
  local t = kind(k)
  if t == 'none' then return end
  local n = 0
  if t == 'stream' then n = redis.call('XLEN', k) end
  local aside = PFX .. 'q:k:' .. qlog({'reason', why, 'key', k, 'type', t})
  redis.call('RENAME', k, aside)
  redis.call('EXPIRE', aside, QTTL)
  quarantined(n)
end

-- Rules -----------------------------------------------------------------------------------
local NAMES = {'d', 't', 'n', 'q', 'w'}
-- nil and the parsed entry, or the reason it breaks the rules.
local function entry_problem(e, head)
  local c = string.match(e[1], '^([1-9]%d*)%-1$')
  if c == nil or #c > DIGITS or tonumber(c) > head then return 'malformed frame: cursor' end
  local f = e[2]
  if #f ~= 6 and #f ~= 8 and #f ~= 10 then return 'malformed frame: fields' end
  for i = 1, #f / 2 do if f[2 * i - 1] ~= NAMES[i] then return 'malformed frame: fields' end end
  local n = uint(f[6])
  if #f[2] == 0 or n == nil or n ~= #f[2] + OVERHEAD or n > MAX_ROOM then return 'malformed frame: size' end
  local t = stamp(f[4])
  if t == nil then return 'malformed frame: timestamp' end
  local q = 0
  if #f >= 8 then
    q = uint(f[8])
    if q == nil or q == 0 then return 'malformed frame: sequence' end
  end
  local w = f[10] or ''
  if #w > MAX_WRITER then return 'malformed frame: writer' end
  return nil, {c = tonumber(c), n = n, q = q, w = w, t = t, d = f[2]}
end
local function room_record(v)  -- HMGET epoch head pruned bytes frames last_ts last_active
  local m = {epoch = v[1], head = uint(v[2]), pruned = uint(v[3]), bytes = uint(v[4]), frames = uint(v[5]),
             last_ts = stamp(v[6]), last_active = stamp(v[7])}
  if not hex(v[1], 1, $epoch_max) or not (m.head and m.pruned and m.bytes and m.frames and m.last_ts and m.last_active)
      or m.pruned > m.head or m.frames > m.head then return nil end
  return m
end

-- Rooms -----------------------------------------------------------------------------------
local function set_oldest(room)
  local nx = redis.call('XRANGE', rkey(room, 's'), '-', '+', 'COUNT', 1)
  if #nx == 0 then redis.call('ZREM', PFX .. 'oldest', room) return end
  local q = uint(field(nx[1][2], 'q'))
  if q then redis.call('ZADD', PFX .. 'oldest', q, room) end
end
-- Count a room's frames, bytes and writer bytes again from its stream, moving aside what
-- breaks the rules; the global totals are counted again at the end of the script.
local function recount_room(room, m)
  local mk, sk = rkey(room, 'm'), rkey(room, 's')
  local bytes, frames, writers, start = 0, 0, {}, '-'
  while kind(sk) == 'stream' do
    local page = redis.call('XRANGE', sk, start, '+', 'COUNT', 256)
    if #page == 0 then break end
    for _, e in ipairs(page) do
      local why, f = entry_problem(e, m.head)
      if why then quarantine_entry(room, e, why) else
        bytes, frames = bytes + f.n, frames + 1
        writers[f.w] = (writers[f.w] or 0) + f.n
      end
    end
    start = '(' .. page[#page][1]
  end
  local h = redis.call('HGETALL', mk)
  for i = 1, #h, 2 do if string.sub(h[i], 1, 2) == 'w:' then redis.call('HDEL', mk, h[i]) end end
  for w, b in pairs(writers) do redis.call('HSET', mk, 'w:' .. w, b) end
  redis.call('HSET', mk, 'bytes', bytes, 'frames', frames)
  m.bytes, m.frames = bytes, frames
  set_oldest(room)
  DIRTY = true
end
-- The room's record after the checks, or nil when it has none (any malformed one was moved).
local function check_room(room)
  local mk, sk = rkey(room, 'm'), rkey(room, 's')
  local mt, st = kind(mk), kind(sk)
  if st ~= 'none' and st ~= 'stream' then move_aside(sk, 'wrong type') st = 'none' DIRTY = true end
  if mt ~= 'none' and mt ~= 'hash' then move_aside(mk, 'wrong type') mt = 'none' DIRTY = true end
  local m = nil
  if mt == 'hash' then
    m = room_record(redis.call('HMGET', mk, 'epoch', 'head', 'pruned', 'bytes', 'frames', 'last_ts', 'last_active'))
    if m == nil then move_aside(mk, 'malformed room record') DIRTY = true end
  end
  if m == nil then
    if st == 'stream' then
      move_aside(sk, mt == 'hash' and 'malformed room record' or 'no room record')
      DIRTY = true
    end
    redis.call('ZREM', PFX .. 'active', room)
    redis.call('ZREM', PFX .. 'oldest', room)
    return nil
  end
  local n = 0
  if st == 'stream' then n = redis.call('XLEN', sk) end
  if n ~= m.frames or m.bytes < m.frames * (OVERHEAD + 1) or m.bytes > m.frames * MAX_ROOM then
    recount_room(room, m)
  end
  if tonumber(redis.call('ZSCORE', PFX .. 'active', room)) ~= m.last_active then
    redis.call('ZADD', PFX .. 'active', m.last_active, room)
  end
  return m
end
local function create(room, epoch)
  redis.call('HSET', rkey(room, 'm'), 'epoch', epoch, 'head', 0, 'pruned', 0, 'bytes', 0, 'frames', 0,
             'last_ts', NOW_S, 'last_active', NOW_S)
  redis.call('ZADD', PFX .. 'active', NOW, room)
end
-- The room's first frame that keeps the rules (id, parsed), moving aside those before it.
local function first_entry(room, m)
  local moved = false
  while true do
    local e = redis.call('XRANGE', rkey(room, 's'), '-', '+', 'COUNT', 1)
    local why, f = nil, nil
    if #e > 0 then why, f = entry_problem(e[1], m.head) end
    if #e == 0 or not why then
      if moved then recount_room(room, m) end
      if #e == 0 then return nil end
      return e[1][1], f
    end
    quarantine_entry(room, e[1], why)
    moved = true
  end
end
-- Writers over all rooms: 'wb' (zset writer -> bytes held), 'wf:<writer>' (zset
-- '<room>:<cursor>' -> append sequence number). Both are indexes: 'wb' is counted again with the
-- totals; a 'wf' member whose frame is gone or not that writer's is removed when met.
local function writer_gained(w, n, room, c, q)
  redis.call('ZINCRBY', PFX .. 'wb', n, w)
  local fk = PFX .. 'wf:' .. w
  local t = kind(fk)
  if t ~= 'none' and t ~= 'zset' then move_aside(fk, 'wrong type') end
  redis.call('ZADD', fk, q, room .. ':' .. c)
end
local function writer_lost(w, n, room, c)
  local k = PFX .. 'wb'
  if redis.call('ZSCORE', k, w) then
    local left = tonumber(redis.call('ZINCRBY', k, -n, w))
    if not (left > 0) then redis.call('ZREM', k, w) end
  end
  local fk = PFX .. 'wf:' .. w
  if kind(fk) == 'zset' then redis.call('ZREM', fk, room .. ':' .. c) end
end
local function drop_entry(room, id, f, reason, m)
  local mk = rkey(room, 'm')
  redis.call('XDEL', rkey(room, 's'), id)
  writer_lost(f.w, f.n, room, f.c)
  if f.c > m.pruned then m.pruned = f.c redis.call('HSET', mk, 'pruned', f.c) end
  hadd(mk, 'w:' .. f.w, -f.n, true)
  m.bytes = hadd(mk, 'bytes', -f.n, false)
  m.frames = hadd(mk, 'frames', -1, false)
  sadd(PFX .. 'total', -f.n)
  sadd(PFX .. 'frames', -1)
  hadd(PFX .. 'dropped', reason, 1, false)
  set_oldest(room)
end
local function drop_first(room, reason, m)
  local id, f = first_entry(room, m)
  if id == nil then return false end
  drop_entry(room, id, f, reason, m)
  return true
end
-- Drop the oldest frame of the writer holding the most bytes in the room; ties go to the
-- writer whose oldest frame is oldest, i.e. the first tied writer met in cursor order.
-- Writer counts that are not numbers or match no frame are counted again instead.
local function drop_heaviest(room, m)
  local h = redis.call('HGETALL', rkey(room, 'm'))
  local most, heavy = -1, {}
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'w:' then
      local b = uint(h[i + 1])
      if b == nil then recount_room(room, m) return end
      if b > most then most, heavy = b, {} end
      if b == most then heavy[string.sub(h[i], 3)] = true end
    end
  end
  local start = '-'
  while true do
    local page = redis.call('XRANGE', rkey(room, 's'), start, '+', 'COUNT', 128)
    if #page == 0 then break end
    for _, e in ipairs(page) do
      local why, f = entry_problem(e, m.head)
      if why then recount_room(room, m) return end
      if heavy[f.w] then drop_entry(room, e[1], f, 'room_bytes', m) return end
    end
    start = '(' .. page[#page][1]
  end
  recount_room(room, m)
end
-- Drop the oldest frame of the writer holding the most bytes over all rooms (ties: the
-- writer whose oldest frame is oldest); false when no writer's frames can be found.
local function drop_heaviest_writer()
  local wk = PFX .. 'wb'
  for _ = 1, 64 do
    local top = redis.call('ZREVRANGE', wk, 0, 0, 'WITHSCORES')
    if #top == 0 then return false end
    local best, bq, bm = nil, nil, nil
    for _, w in ipairs(redis.call('ZRANGEBYSCORE', wk, top[2], top[2], 'LIMIT', 0, 16)) do
      local fk = PFX .. 'wf:' .. w
      local t = kind(fk)
      if t ~= 'none' and t ~= 'zset' then move_aside(fk, 'wrong type') t = 'none' end
      local o = {}
      if t == 'zset' then o = redis.call('ZRANGE', fk, 0, 0, 'WITHSCORES') end
      -- No frame of it indexed (stored before the index existed): not counted here any more.
      if #o == 0 then redis.call('ZREM', wk, w)
      elseif bq == nil or tonumber(o[2]) < bq then best, bq, bm = w, tonumber(o[2]), o[1] end
    end
    if best then
      local room, c = string.match(bm, '^([0-9a-f]+):([1-9]%d*)$')
      local m = room and is_room(room) and #c <= DIGITS and check_room(room)
      local e = m and redis.call('XRANGE', rkey(room, 's'), c .. '-1', c .. '-1') or {}
      local why, f = 'gone', nil
      if #e == 1 then why, f = entry_problem(e[1], m.head) end
      if not why and f.w == best then drop_entry(room, e[1][1], f, 'total_bytes', m) return true end
      redis.call('ZREM', PFX .. 'wf:' .. best, bm)
    end
  end
  return false
end
local function expire(room, limit, m)
  local n = 0
  while true do
    local id, f = first_entry(room, m)
    if id == nil or f.t >= limit then return n end
    drop_entry(room, id, f, 'age', m)
    n = n + 1
  end
end

-- Global keys -----------------------------------------------------------------------------
local function reindex()
  local pat = string.gsub(PFX, '([%*%?%[%]\\])', '\\%1') .. 'r:*:m'
  local cursor = '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', pat, 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
      local room = string.sub(k, #PFX + 3, -3)
      if is_room(room) and check_room(room) then set_oldest(room) end
    end
  until cursor == '0'
  DIRTY = true
end
recount_globals = function()
  local total, frames, seq = 0, 0, uint(redis.call('GET', PFX .. 'seq')) or 0
  local held = {}
  for _, room in ipairs(redis.call('ZRANGE', PFX .. 'active', 0, -1)) do
    local m = nil
    if is_room(room) then m = check_room(room) else redis.call('ZREM', PFX .. 'active', room) end
    if m then
      total, frames = total + m.bytes, frames + m.frames
      local h = redis.call('HGETALL', rkey(room, 'm'))
      for i = 1, #h, 2 do
        local b = string.sub(h[i], 1, 2) == 'w:' and uint(h[i + 1])
        if b and b > 0 then held[string.sub(h[i], 3)] = (held[string.sub(h[i], 3)] or 0) + b end
      end
      local last = redis.call('XREVRANGE', rkey(room, 's'), '+', '-', 'COUNT', 1)
      local q = #last > 0 and uint(field(last[1][2], 'q'))
      if q and q > seq then seq = q end
    end
  end
  redis.call('DEL', PFX .. 'wb')
  for w, b in pairs(held) do redis.call('ZADD', PFX .. 'wb', b, w) end
  redis.call('SET', PFX .. 'total', total)
  redis.call('SET', PFX .. 'frames', frames)
  redis.call('SET', PFX .. 'seq', seq)
  DIRTY = false
end
local function check_globals()
  local dk = PFX .. 'dropped'
  local t = kind(dk)
  if t == 'hash' and redis.call('HLEN', dk) > 64 then move_aside(dk, 'too many fields') t = 'none' end
  if t ~= 'none' and t ~= 'hash' then move_aside(dk, 'wrong type') end
  if t == 'hash' then
    local h = redis.call('HGETALL', dk)
    for i = 1, #h, 2 do
      if not REASONS[h[i]] or uint(h[i + 1]) == nil then redis.call('HDEL', dk, h[i]) end
    end
  end
  local reindexed = false
  t = kind(PFX .. 'wb')
  if t ~= 'none' and t ~= 'zset' then move_aside(PFX .. 'wb', 'wrong type') DIRTY = true end
  for _, name in ipairs({'active', 'oldest'}) do
    t = kind(PFX .. name)
    if t ~= 'none' and t ~= 'zset' then move_aside(PFX .. name, 'wrong type') reindexed = true end
  end
  for _, name in ipairs({'total', 'frames', 'seq'}) do
    t = kind(PFX .. name)
    if t ~= 'none' and t ~= 'string' then move_aside(PFX .. name, 'wrong type') DIRTY = true
    elseif t == 'string' and uint(redis.call('GET', PFX .. name)) == nil then DIRTY = true end
  end
  if reindexed then reindex() end
  -- Counted again now, not at the end: the script is about to use seq and total.
  if DIRTY then recount_globals() end
end
local function finish() if DIRTY then recount_globals() end end
""")

LUA_LIB = _LUA_LIB.safe_substitute(  # safe: Lua patterns end in "$"
    overhead=FRAME_OVERHEAD_BYTES, max_writer=4 * MAX_WRITER_CHARS, digits=REDIS_MAX_INT_DIGITS,
    room_min=ROOM_ID_MIN_HEX, room_max=ROOM_ID_MAX_HEX, finite=repr(MAX_FINITE_TIMESTAMP), epoch_max=EPOCH_MAX_HEX,
    reasons=", ".join(f"{r} = true" for r in DROP_REASONS))


# Caps and rate buckets are soft state: a key of the wrong type is deleted, a count that is
# not one (or of a process id that is not one) is removed, a bucket value that is not a finite
# number starts the bucket again.
_LIMITS_LIB = f"""
local DIGITS = {REDIS_MAX_INT_DIGITS}
local function hash_key(k)
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= 'hash' then redis.call('DEL', k) end
end
local function count(s)
  if type(s) ~= 'string' or #s == 0 or #s > DIGITS or string.match(s, '^[1-9]%d*$') == nil then return nil end
  return tonumber(s)
end
"""

# KEYS: the hash lim:<kind>:<key>. ARGV: prefix, process id, cap (0: only count).
LIMITS_ACQUIRE = _LIMITS_LIB + """
hash_key(KEYS[1])
local total = 0
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  local n = count(f[i + 1])
  if n and string.match(f[i], '^[0-9a-f]+$') and redis.call('EXISTS', ARGV[1] .. 'proc:' .. f[i]) == 1 then
    total = total + n
  else redis.call('HDEL', KEYS[1], f[i]) end
end
local cap = tonumber(ARGV[3])
if cap == 0 then return total end
if total >= cap then return -1 end
redis.call('HSET', KEYS[1], ARGV[2], (count(redis.call('HGET', KEYS[1], ARGV[2])) or 0) + 1)
return total + 1
"""

LIMITS_RELEASE = _LIMITS_LIB + """
hash_key(KEYS[1])
local n = (count(redis.call('HGET', KEYS[1], ARGV[1])) or 0) - 1
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], n) end
return 0
"""

# KEYS: rate:<key>. ARGV: rate, burst, amount, longest debt (s), strict (0/1). Redis's own clock: one time
# base for all processes.
LIMITS_THROTTLE = _LIMITS_LIB + """
hash_key(KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tok', 't')
local function finite(s, lo, hi)
  local x = type(s) == 'string' and #s <= 40 and string.match(s, '^[-+.%deE]+$') and tonumber(s)
  if not x or x ~= x or x < lo or x > hi then return nil end
  return x
end
local tok = finite(v[1], -rate * tonumber(ARGV[4]), burst) or burst
local last = finite(v[2], 0, now) or now
local dt = now - last
tok = math.min(burst, tok + dt * rate)
local short = amount - tok
-- ARGV[5] '1' (strict): charge only what the bucket holds; the wait says when it will.
if ARGV[5] ~= '1' or short <= 0 then tok = tok - amount short = 0 end
redis.call('HSET', KEYS[1], 'tok', tostring(tok), 't', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tok) / rate) + 1)
if short > 0 then return tostring(short / rate) end
if tok >= 0 then return '0' end
return tostring(-tok / rate)
"""


def mailbox_args(prefix: str, now: float, max_room_bytes: int, max_total_bytes: int, max_age_s: float,
                 max_skew_s: float = DEFAULT_MAX_TIMESTAMP_SKEW_S,
                 quarantine_max: int = DEFAULT_QUARANTINE_MAX_ENTRIES,
                 quarantine_ttl_s: int = DEFAULT_QUARANTINE_TTL_S) -> list[Any]:
    """The common ARGV of the mailbox scripts: ``now`` is the mailbox clock (seconds); stored
    timestamps later than ``now + max_skew_s`` break the rules."""
    return [prefix, repr(float(now)), repr(float(now) + max_skew_s), max_room_bytes, max_total_bytes,
            repr(float(max_age_s)), quarantine_max, quarantine_ttl_s]


def as_int(value: Any, what: str) -> int:
    """A script's integer reply (already checked in Lua) as an int; anything else is a
    :class:`MailboxError` rather than a ``ValueError`` deep in the relay."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, bytes) and 0 < len(value) <= REDIS_MAX_INT_DIGITS and value.isdigit():
        return int(value)
    raise MailboxError(f"redis returned a malformed {what}")


def bus_message(prefix: str, channel: Any, data: Any) -> tuple[str, bytes, int, bytes] | None:
    """``(room, origin, cursor, payload)`` of a pub/sub message on a room channel, or None
    when it is not one the relay publishes (a foreign channel, a short or empty message)."""
    if not isinstance(channel, bytes) or not isinstance(data, bytes) or len(data) <= BUS_HEADER.size:
        return None
    head = (prefix + "c:").encode()
    if not channel.startswith(head):
        return None
    try:
        room = channel[len(head):].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not valid_room_id(room):
        return None
    origin, cursor = BUS_HEADER.unpack_from(data)
    return room, origin, cursor, data[BUS_HEADER.size:]
