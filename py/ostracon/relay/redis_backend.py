"""Redis backend: several relay processes serve the same rooms and catch-up.

Topology: every relay process talks to one Redis. The mailbox is one Redis Stream per room
(entry id ``<cursor>-1``, so cursors stay the contiguous 1, 2, 3 ... of the mailbox contract)
plus a hash of room metadata; appends, pruning and eviction run as Lua scripts, so they are
atomic across processes. Fan-out is Redis pub/sub, one channel per room, subscribed only by the
processes that have members in it. Caps (connections per address, members per room) are
per-process counts in Redis hashes that are summed over live processes (each process keeps a
heartbeat key; a killed process's counts expire with it); rate buckets are Lua token buckets on
Redis's clock, so a client that reconnects to another process finds its bucket still empty.

Key layout under ``prefix`` (default ``ostracon:relay:``): ``r:<room>:m`` (hash: epoch, head,
pruned, bytes, frames, last_ts, last_active, ``w:<writer>`` bytes), ``r:<room>:s`` (stream:
d=frame, t=timestamp, n=accounted bytes, q=append sequence number, w=writer), ``seq`` (global
append counter), ``oldest`` (zset room → sequence number of its oldest frame: global eviction
of frames no writer index knows drops the earliest appended frame first), ``active`` (zset
room → last activity), ``total`` (bytes), ``frames``, ``dropped`` (hash reason → frames),
``q:frames`` and ``q:k:<id>`` (what was moved aside, see relay/redis_checks.py),
``lim:<kind>:<key>`` (hash process → count),
``rate:<key>`` (hash tok, t), ``proc:<id>`` (heartbeat), ``wb`` (zset writer → bytes held
over all rooms) and ``wf:<writer>`` (zset ``<room>:<cursor>`` → sequence number: that writer's
frames, oldest first), which eviction under the total budget uses, ``wfv`` (set once every
frame was indexed: :meth:`RedisMailbox.sweep` indexes older mailboxes), channel ``c:<room>``.

Whoever can write to the Redis server can plant values under the prefix: every value read back
is checked by the scripts themselves (relay/redis_checks.py), and a frame arriving on the bus
reaches members only when the mailbox holds exactly that frame at that cursor.

Redis calls are synchronous (``redis`` client with a socket timeout) like the SQLite backend:
the relay's replay-then-live switch relies on "no await between the empty read and going
live". On loopback one call costs tens of microseconds. Any Redis failure is a
:class:`MailboxError`, which the relay turns into close code 1011 for that member only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Collection
from typing import Any

from ..core.errors import MailboxError, OstraconError, ValidationError
from ..core.protocol.relay import MAX_CURSOR, valid_room_id
from .backend import Backend, Bus, Deliver
from .limits import Limits
from .mailbox import DEFAULT_READ_LIMIT, Mailbox, MailboxStats, RoomInfo, _check_room
from .redis_checks import (
    BUS_HEADER,
    DROP_REASONS,
    LIMITS_ACQUIRE,
    LIMITS_RELEASE,
    LIMITS_THROTTLE,
    LUA_LIB,
    MAX_THROTTLE_DEBT_S,
    as_int,
    bus_message,
    mailbox_args,
)
from .sqlite_checks import DEFAULT_MAX_TIMESTAMP_SKEW_S

log = logging.getLogger("ostracon.relay.redis")

#: Socket timeout of every Redis call. A relay whose Redis stops answering fails calls with
#: MailboxError after this long instead of freezing its event loop.
DEFAULT_REDIS_TIMEOUT_S = 5.0
#: A process refreshes its heartbeat key this often; its caps count while the key lives
#: (three periods), so a SIGKILLed process's connections stop counting within ~15 s.
HEARTBEAT_S = 5.0
DEFAULT_PREFIX = "ostracon:relay:"

# Mailbox scripts: common ARGV (redis_checks.mailbox_args), then their own from ARGV[9].
# Every script first checks the global keys and the room records it uses (redis_checks.LUA_LIB).

# ARGV[9..]: room, frame, new_epoch, writer.
_APPEND = LUA_LIB + """
check_globals()
local room, frame, writer = ARGV[NARGS + 1], ARGV[NARGS + 2], ARGV[NARGS + 4]
local m = check_room(room)
if m == nil then create(room, ARGV[NARGS + 3]) m = check_room(room) end
local mk, sk = rkey(room, 'm'), rkey(room, 's')
local last_ts = m.last_ts
if NOW > last_ts then last_ts = NOW end
local head = hadd(mk, 'head', 1, false)
m.head = head
local size = string.len(frame) + OVERHEAD
local seq = sadd(PFX .. 'seq', 1)
local entry = {'XADD', sk, head .. '-1', 'd', frame, 't', tostring(last_ts), 'n', size, 'q', seq, 'w', writer}
if type(redis.pcall(unpack(entry))) ~= 'string' then
  -- The stream's last id lies beyond head (entries planted and removed): frames beyond head
  -- are moved aside and the id set back, so the room keeps its cursors.
  m.head = head - 1
  recount_room(room, m)
  m.head = head
  redis.pcall('XSETID', sk, (head - 1) .. '-1', 'MAXDELETEDID', (head - 1) .. '-1')
  redis.call(unpack(entry))
end
hadd(mk, 'w:' .. writer, size, true)
writer_gained(writer, size, room, head, seq)
redis.call('HSET', mk, 'last_ts', tostring(last_ts), 'last_active', NOW_S)
redis.call('ZADD', PFX .. 'active', NOW, room)
m.bytes = hadd(mk, 'bytes', size, false)
m.frames = hadd(mk, 'frames', 1, false)
if m.frames == 1 then redis.call('ZADD', PFX .. 'oldest', seq, room) end
local total = sadd(PFX .. 'total', size)
sadd(PFX .. 'frames', 1)
expire(room, NOW - MAX_AGE, m)
-- Each round drops a frame or counts the room again; the bound only guards against a loop.
for _ = 1, m.frames + 3 do
  if m.bytes <= MAX_ROOM then break end
  drop_heaviest(room, m)
end
finish()
-- A total beyond what one append can add was changed by someone else: count it again first.
total = uint(redis.call('GET', PFX .. 'total')) or 0
if total > MAX_TOTAL + size then recount_globals() total = uint(redis.call('GET', PFX .. 'total')) or 0 end
-- The heaviest writer over all rooms loses its oldest frames first; frames no writer index
-- knows (stored by an older relay) go globally oldest first.
while total > MAX_TOTAL do
  if not drop_heaviest_writer() then
    local o = redis.call('ZRANGE', PFX .. 'oldest', 0, 0)
    if #o == 0 then break end
    local other = is_room(o[1]) and check_room(o[1])
    if not other or not drop_first(o[1], 'total_bytes', other) then redis.call('ZREM', PFX .. 'oldest', o[1]) end
  end
  total = uint(redis.call('GET', PFX .. 'total')) or 0
end
finish()
return head
"""

# ARGV[9..]: room, new_epoch, create(0/1)
_INFO = LUA_LIB + """
check_globals()
local room = ARGV[NARGS + 1]
local m = check_room(room)
if m == nil and ARGV[NARGS + 3] == '1' then create(room, ARGV[NARGS + 2]) m = check_room(room) end
local out = {}
if m then
  local first = first_entry(room, m)
  out = {m.epoch, m.head, m.pruned, m.frames, m.bytes, first and string.match(first, '^(%d+)') or 0}
end
finish()
return out
"""

# ARGV[9..]: room, after, limit, max_bytes (0: no limit). Reply: cursor, data, cursor, data ...
_READ = LUA_LIB + """
check_globals()
local room, after, limit, max_bytes = ARGV[NARGS + 1], ARGV[NARGS + 2], tonumber(ARGV[NARGS + 3]),
  tonumber(ARGV[NARGS + 4])
local m = check_room(room)
local out, size, moved, start = {}, 0, false, after .. '-1'
if m and uint(after) then start = '(' .. start else m = nil end
while m do
  local page = redis.call('XRANGE', rkey(room, 's'), start, '+', 'COUNT', limit)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local why, f = entry_problem(e, m.head)
    if why then quarantine_entry(room, e, why) moved = true else
      if #out > 0 and max_bytes > 0 and size + #f.d > max_bytes then m = nil break end
      out[#out + 1] = f.c
      out[#out + 1] = f.d
      size = size + #f.d
      if #out >= 2 * limit then m = nil break end
    end
  end
  start = '(' .. page[#page][1]
end
-- Frames that were counted leave the counts short of the stream: check_room counts again.
if moved then check_room(room) end
finish()
return out
"""

# ARGV[9..]: rooms to keep. Every room in the index is checked; the totals are counted again.
_PRUNE = LUA_LIB + """
check_globals()
local keep = {}
for i = NARGS + 1, #ARGV do keep[ARGV[i]] = true end
local n = 0
for _, room in ipairs(redis.call('ZRANGE', PFX .. 'active', 0, -1)) do
  local m = nil
  if is_room(room) then m = check_room(room) else redis.call('ZREM', PFX .. 'active', room) end
  if m then
    n = n + expire(room, NOW - MAX_AGE, m)
    if not keep[room] and m.frames == 0 and m.last_active < NOW - MAX_AGE then
      redis.call('DEL', rkey(room, 'm'), rkey(room, 's'))
      redis.call('ZREM', PFX .. 'active', room)
      redis.call('ZREM', PFX .. 'oldest', room)
    end
  end
end
for _, room in ipairs(redis.call('ZRANGE', PFX .. 'oldest', 0, -1)) do
  if not is_room(room) or redis.call('ZSCORE', PFX .. 'active', room) == false then
    redis.call('ZREM', PFX .. 'oldest', room)
  end
end
recount_globals()
return n
"""

# ARGV[9]: room
_DISCARD = LUA_LIB + """
check_globals()
local room = ARGV[NARGS + 1]
local m = check_room(room)
local gone = 0
if m and m.head == 0 then
  redis.call('DEL', rkey(room, 'm'), rkey(room, 's'))
  redis.call('ZREM', PFX .. 'active', room)
  gone = 1
end
finish()
return gone
"""

# ARGV[9..]: last batch (0/1), index writers (0/1), then rooms found by the sweep. The totals
# are counted again once, after the last batch. Indexing puts every frame into its writer's
# 'wf' set (frames stored before the writer indexes existed); 'wfv' records that it was done.
_CHECK = LUA_LIB + """
check_globals()
for i = NARGS + 3, #ARGV do
  local room = ARGV[i]
  local m = check_room(room)
  if m then set_oldest(room) end
  local start = '-'
  while m and ARGV[NARGS + 2] == '1' do
    local page = redis.call('XRANGE', rkey(room, 's'), start, '+', 'COUNT', 256)
    if #page == 0 then break end
    for _, e in ipairs(page) do
      local why, f = entry_problem(e, m.head)
      if not why then
        local fk = PFX .. 'wf:' .. f.w
        local t = kind(fk)
        if t ~= 'none' and t ~= 'zset' then move_aside(fk, 'wrong type') end
        redis.call('ZADD', fk, 'NX', f.q, room .. ':' .. f.c)
      end
    end
    start = '(' .. page[#page][1]
  end
end
if ARGV[NARGS + 1] == '1' then
  recount_globals()
  if ARGV[NARGS + 2] == '1' then redis.call('SET', PFX .. 'wfv', '1') end
end
return 0
"""

_STATS = LUA_LIB + """
check_globals()
finish()
return {redis.call('ZCARD', PFX .. 'active'), redis.call('GET', PFX .. 'frames') or '0',
        redis.call('GET', PFX .. 'total') or '0', redis.call('HGETALL', PFX .. 'dropped')}
"""

def _connect(url: str, timeout_s: float) -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the relay extra installs it
        raise MailboxError("the Redis backend needs the 'redis' package (pip install 'ostracon[relay]')") from exc
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    except ValueError as exc:
        raise ValidationError(f"bad Redis URL: {exc}") from exc


class _Scripts:
    def __init__(self, client: Any):
        self.client = client
        self._scripts = {name: client.register_script(src) for name, src in (
            ("append", _APPEND), ("info", _INFO), ("read", _READ), ("prune", _PRUNE), ("discard", _DISCARD),
            ("check", _CHECK), ("stats", _STATS), ("acquire", LIMITS_ACQUIRE), ("release", LIMITS_RELEASE),
            ("throttle", LIMITS_THROTTLE))}

    def __call__(self, name: str, keys: list[str], args: list[Any]) -> Any:
        import redis
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.RedisError as exc:
            raise MailboxError(f"redis {name} failed: {exc}") from exc


class RedisMailbox(Mailbox):
    """The mailbox contract (mailbox.py) on Redis Streams; see the module docstring.

    Every value read back from Redis is checked first (relay/redis_checks.py): what breaks the
    rules is moved aside under ``prefix`` and counted as ``dropped["quarantined"]``, never
    served. :meth:`sweep` checks every room once when the mailbox is made.
    ``max_skew_s``: how far a stored timestamp may lie ahead of ``clock()``."""

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX,
                 max_skew_s: float = DEFAULT_MAX_TIMESTAMP_SKEW_S, **limits: Any):
        super().__init__(**limits)
        if not isinstance(max_skew_s, (int, float)) or not 0 <= max_skew_s < float("inf"):
            raise ValidationError("max_skew_s must be a finite number >= 0")
        self._client = client
        self._run = _Scripts(client)
        self.prefix = prefix
        self.max_skew_s = float(max_skew_s)
        self.bus_refused = 0  # pub/sub messages that did not match the stored frame (RedisBus)
        self._closed = False
        self.sweep()

    def _script(self, name: str, *args: Any) -> Any:
        if self._closed:
            raise MailboxError("mailbox is closed")
        return self._run(name, [], [*mailbox_args(self.prefix, self.clock(), self.max_room_bytes,
                                                  self.max_total_bytes, self.max_age_s, self.max_skew_s), *args])

    def _call(self, fn: Any, *args: Any) -> Any:
        import redis
        if self._closed:
            raise MailboxError("mailbox is closed")
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise MailboxError(f"redis call failed: {exc}") from exc

    def sweep(self, batch: int = 256) -> None:
        """Check every room found under the prefix (records and streams, also those missing
        from the room index) and count the totals again; a few Lua calls per ``batch`` rooms."""
        n = len(self.prefix.encode()) + 2
        rooms = set()
        for key in self._call(lambda: list(self._client.scan_iter(match=_glob(self.prefix) + "r:*", count=1000))):
            name = key[n:-2].decode("ascii", "replace") if key.endswith((b":m", b":s")) else ""
            if valid_room_id(name):
                rooms.add(name)
        ordered = sorted(rooms)
        starts = range(0, len(ordered), batch)
        index = "0" if self._call(lambda: self._client.get(self.prefix + "wfv")) == b"1" else "1"
        for i in starts:
            self._script("check", "1" if i == starts[-1] else "0", index, *ordered[i:i + batch])
        if not ordered:
            self._script("check", "1", index)
        before = self.stats().dropped.get("quarantined", 0)
        if before:
            log.warning("redis mailbox %s: %d malformed frames moved to %sq:frames so far", self.prefix, before,
                        self.prefix)

    def append(self, room: str, frame: bytes, writer: str = "") -> int:
        self._check_frame(room, frame, writer)
        return as_int(self._script("append", room, bytes(frame), secrets.token_hex(8), writer), "cursor")

    def read(self, room: str, after: int, limit: int = DEFAULT_READ_LIMIT,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        self._check_read(room, after, limit, max_bytes)
        flat = self._script("read", room, after, limit, max_bytes or 0)
        if not isinstance(flat, list) or len(flat) % 2:
            raise MailboxError("redis returned a malformed page")
        out: list[tuple[int, bytes]] = []
        for i in range(0, len(flat), 2):
            data = flat[i + 1]
            if not isinstance(data, bytes):
                raise MailboxError("redis returned a malformed frame")
            out.append((as_int(flat[i], "cursor"), data))
        return out

    def info(self, room: str, *, create: bool = False) -> RoomInfo:
        _check_room(room)
        r = self._script("info", room, secrets.token_hex(8), "1" if create else "0")
        if not r:
            return RoomInfo(room, None, 0, 0, 0, 0)
        if not isinstance(r, list) or len(r) != 6 or not isinstance(r[0], bytes):
            raise MailboxError("redis returned a malformed room record")
        head, pruned, frames, size, first = (as_int(v, "room counter") for v in r[1:])
        return RoomInfo(room, r[0].decode("ascii"), head, pruned, frames, size, first)

    def discard_if_empty(self, room: str) -> bool:
        _check_room(room)
        return bool(self._script("discard", room))

    def prune(self, keep: Collection[str] = ()) -> int:
        return as_int(self._script("prune", *sorted(keep)), "count")

    def stats(self) -> MailboxStats:
        r = self._script("stats")
        if not isinstance(r, list) or len(r) != 4 or not isinstance(r[3], list):
            raise MailboxError("redis returned malformed totals")
        dropped = {reason: 0 for reason in DROP_REASONS}
        for i in range(0, len(r[3]) - 1, 2):
            reason = r[3][i].decode("ascii", "replace")
            if reason in dropped:
                dropped[reason] = as_int(r[3][i + 1], "drop count")
        dropped["bus_refused"] = self.bus_refused
        return MailboxStats(as_int(r[0], "room count"), as_int(r[1], "frame count"), as_int(r[2], "byte count"),
                            dropped)

    def close(self) -> None:
        self._closed = True


def _glob(prefix: str) -> str:
    """``prefix`` with Redis glob characters escaped, for SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


class RedisLimits(Limits):
    """Caps and rate buckets shared by every relay process on one Redis."""

    def __init__(self, client: Any, process_id: str, *, prefix: str = DEFAULT_PREFIX):
        self._client = client
        self._run = _Scripts(client)
        self.prefix = prefix
        self.process_id = process_id
        self.heartbeat()

    def heartbeat(self) -> None:
        import redis
        try:
            self._client.set(f"{self.prefix}proc:{self.process_id}", b"1", ex=int(3 * HEARTBEAT_S))
        except redis.RedisError as exc:
            raise MailboxError(f"redis heartbeat failed: {exc}") from exc

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}lim:{kind}:{key}"

    def acquire(self, kind: str, key: str, cap: int) -> bool:
        got = self._run("acquire", [self._key(kind, key)], [self.prefix, self.process_id, cap])
        if not isinstance(got, int):
            raise MailboxError("redis returned a malformed count")
        return got > 0

    def release(self, kind: str, key: str) -> None:
        self._run("release", [self._key(kind, key)], [self.process_id])

    def held(self, kind: str, key: str) -> int:
        return as_int(self._run("acquire", [self._key(kind, key)], [self.prefix, self.process_id, 0]), "count")

    def throttle(self, key: str, rate: float, burst: float, amount: float, *, strict: bool = False) -> float:
        wait = self._run("throttle", [f"{self.prefix}rate:{key}"],
                         [repr(float(rate)), repr(float(burst)), repr(float(amount)), repr(MAX_THROTTLE_DEBT_S),
                          "1" if strict else "0"])
        try:
            return float(wait)
        except (TypeError, ValueError) as exc:
            raise MailboxError("redis returned a malformed wait") from exc

    def close(self) -> None:
        import redis
        try:
            self._client.delete(f"{self.prefix}proc:{self.process_id}")
        except redis.RedisError:
            pass  # the heartbeat key expires on its own


class RedisBus(Bus):
    """Pub/sub fan-out; also keeps this process's heartbeat alive."""

    def __init__(self, url: str, client: Any, limits: RedisLimits, mailbox: RedisMailbox, *,
                 prefix: str = DEFAULT_PREFIX, timeout_s: float = DEFAULT_REDIS_TIMEOUT_S):
        self._url = url
        self._mailbox = mailbox
        self._client = client
        self._limits = limits
        self.prefix = prefix
        self.origin = bytes.fromhex(limits.process_id)
        self._timeout_s = timeout_s
        self._aclient: Any = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.dropped = 0

    def _channel(self, room: str) -> str:
        return f"{self.prefix}c:{room}"

    async def start(self, deliver: Deliver) -> None:
        import redis.asyncio as aredis
        self._aclient = aredis.Redis.from_url(self._url, socket_connect_timeout=self._timeout_s)
        self._pubsub = self._aclient.pubsub(ignore_subscribe_messages=True)
        # A channel of our own keeps the pub/sub connection open while no room is subscribed.
        await self._pubsub.subscribe(f"{self.prefix}proc:{self._limits.process_id}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read(deliver)), loop.create_task(self._beat())]

    async def _read(self, deliver: Deliver) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus: read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            found = bus_message(self.prefix, msg.get("channel"), msg.get("data"))
            if found is None:
                continue
            room, origin, cursor, payload = found
            if origin == self.origin or not self._genuine(room, cursor, payload):
                continue
            try:
                deliver(room, cursor, payload)
            except Exception:
                log.exception("redis bus: delivery failed")

    def _genuine(self, room: str, cursor: int, payload: bytes) -> bool:
        """Whether a bus message may reach members: anyone who can write to Redis can PUBLISH
        on a room's channel, so a stored frame is delivered only when the mailbox holds exactly
        it at that cursor (a forged cursor far ahead would make members skip every later
        frame); an ephemeral one only when it is not larger than a room's mailbox."""
        mb = self._mailbox
        if cursor == 0:
            ok = len(payload) <= mb.max_room_bytes
        else:
            try:
                stored = mb.read(room, cursor - 1, 1) if cursor <= MAX_CURSOR else []
            except OstraconError:
                log.exception("redis bus: mailbox check failed")
                stored = []
            ok = stored == [(cursor, payload)]
        if not ok:
            mb.bus_refused += 1
        return ok

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                self._limits.heartbeat()
            except MailboxError:
                log.exception("redis heartbeat failed")

    async def subscribe(self, room: str) -> None:
        async with self._lock:
            await self._pubsub.subscribe(self._channel(room))

    async def unsubscribe(self, room: str) -> None:
        async with self._lock:
            await self._pubsub.unsubscribe(self._channel(room))

    def publish(self, room: str, cursor: int, payload: bytes) -> None:
        import redis
        try:
            self._client.publish(self._channel(room), BUS_HEADER.pack(self.origin, cursor) + payload)
        except redis.RedisError as exc:
            self.dropped += 1
            raise MailboxError(f"redis publish failed: {exc}") from exc

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass
        if self._aclient is not None:
            try:
                await self._aclient.aclose()
            except Exception:
                pass


def redis_backend(url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = DEFAULT_REDIS_TIMEOUT_S,
                  **mailbox_limits: Any) -> Backend:
    """``redis://host:port/db`` → a :class:`Backend` (mailbox, shared limits, pub/sub bus).

    Raises :class:`MailboxError` when Redis cannot be reached (checked with one PING)."""
    import redis
    client = _connect(url, timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise MailboxError(f"cannot reach Redis at {url}: {exc}") from exc
    process_id = secrets.token_hex(16)
    limits = RedisLimits(client, process_id, prefix=prefix)
    mailbox = RedisMailbox(client, prefix=prefix, **mailbox_limits)
    bus = RedisBus(url, client, limits, mailbox, prefix=prefix, timeout_s=timeout_s)
    return Backend(mailbox, bus, limits, name="redis")
