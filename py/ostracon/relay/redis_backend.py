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
pruned, bytes, frames, last_ts, last_active), ``r:<room>:s`` (stream: d=frame, t=timestamp,
n=accounted bytes), ``seq`` (global append counter), ``oldest`` (zset room → append sequence number of its
oldest frame: global eviction drops the earliest appended frame first),
``active`` (zset room → last activity: forgetting silent rooms), ``total`` (bytes),
``dropped`` (hash reason → frames), ``lim:<kind>:<key>`` (hash process → count),
``rate:<key>`` (hash tok, t), ``proc:<id>`` (heartbeat), channel ``c:<room>``.

Redis calls are synchronous (``redis`` client with a socket timeout) like the SQLite backend:
the relay's replay-then-live switch relies on "no await between the empty read and going
live". On loopback one call costs tens of microseconds. Any Redis failure is a
:class:`MailboxError`, which the relay turns into close code 1011 for that member only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import Collection
from typing import Any

from ..core.errors import MailboxError, ValidationError
from .backend import Backend, Bus, Deliver
from .limits import Limits
from .mailbox import DEFAULT_READ_LIMIT, FRAME_OVERHEAD_BYTES, Mailbox, MailboxStats, RoomInfo, _check_room

log = logging.getLogger("ostracon.relay.redis")

#: Socket timeout of every Redis call. A relay whose Redis stops answering fails calls with
#: MailboxError after this long instead of freezing its event loop.
DEFAULT_REDIS_TIMEOUT_S = 5.0
#: A process refreshes its heartbeat key this often; its caps count while the key lives
#: (three periods), so a SIGKILLed process's connections stop counting within ~15 s.
HEARTBEAT_S = 5.0
DEFAULT_PREFIX = "ostracon:relay:"

_HDR = struct.Struct(">16sQ")  # origin process id, cursor (0: ephemeral)

_DROP_FIRST = """
local function drop_first(prefix, room, reason)
  local mk, sk = prefix .. 'r:' .. room .. ':m', prefix .. 'r:' .. room .. ':s'
  local e = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)
  if #e == 0 then redis.call('ZREM', prefix .. 'oldest', room) return false end
  local id, f = e[1][1], e[1][2]
  local n = 0
  for i = 1, #f, 2 do if f[i] == 'n' then n = tonumber(f[i + 1]) end end
  redis.call('XDEL', sk, id)
  redis.call('HSET', mk, 'pruned', string.match(id, '^(%d+)'))
  redis.call('HINCRBY', mk, 'bytes', -n)
  redis.call('HINCRBY', mk, 'frames', -1)
  redis.call('INCRBY', prefix .. 'total', -n)
  redis.call('DECR', prefix .. 'frames')
  redis.call('HINCRBY', prefix .. 'dropped', reason, 1)
  local nx = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)
  if #nx == 0 then
    redis.call('ZREM', prefix .. 'oldest', room)
  else
    local g = nx[1][2]
    for i = 1, #g, 2 do if g[i] == 'q' then redis.call('ZADD', prefix .. 'oldest', g[i + 1], room) end end
  end
  return true
end
local function expire(prefix, room, limit)
  local n = 0
  while true do
    local e = redis.call('XRANGE', prefix .. 'r:' .. room .. ':s', '-', '+', 'COUNT', 1)
    if #e == 0 then return n end
    local f, ts = e[1][2], nil
    for i = 1, #f, 2 do if f[i] == 't' then ts = tonumber(f[i + 1]) end end
    if ts >= limit then return n end
    drop_first(prefix, room, 'age')
    n = n + 1
  end
end
local function create(prefix, room, epoch, now)
  local mk = prefix .. 'r:' .. room .. ':m'
  if redis.call('EXISTS', mk) == 0 then
    redis.call('HSET', mk, 'epoch', epoch, 'head', 0, 'pruned', 0, 'bytes', 0, 'frames', 0,
               'last_ts', now, 'last_active', now)
    redis.call('ZADD', prefix .. 'active', now, room)
  end
  return mk
end
"""

# KEYS: none (single Redis; keys derive from the room). ARGV: prefix, room, frame, now,
# max_room_bytes, max_total_bytes, max_age_s, overhead, new_epoch.
_APPEND = _DROP_FIRST + """
local prefix, room, frame, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_room, max_total, max_age = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local mk = create(prefix, room, ARGV[9], ARGV[4])
local sk = prefix .. 'r:' .. room .. ':s'
local last_ts = tonumber(redis.call('HGET', mk, 'last_ts'))
if now > last_ts then last_ts = now end
local head = redis.call('HINCRBY', mk, 'head', 1)
local size = string.len(frame) + tonumber(ARGV[8])
local seq = redis.call('INCR', prefix .. 'seq')
redis.call('XADD', sk, head .. '-1', 'd', frame, 't', tostring(last_ts), 'n', size, 'q', seq)
redis.call('HSET', mk, 'last_ts', tostring(last_ts), 'last_active', ARGV[4])
redis.call('ZADD', prefix .. 'active', now, room)
redis.call('HINCRBY', mk, 'bytes', size)
if redis.call('HINCRBY', mk, 'frames', 1) == 1 then redis.call('ZADD', prefix .. 'oldest', seq, room) end
redis.call('INCRBY', prefix .. 'total', size)
redis.call('INCR', prefix .. 'frames')
expire(prefix, room, now - max_age)
while tonumber(redis.call('HGET', mk, 'bytes')) > max_room do drop_first(prefix, room, 'room_bytes') end
while tonumber(redis.call('GET', prefix .. 'total')) > max_total do
  local o = redis.call('ZRANGE', prefix .. 'oldest', 0, 0)
  if #o == 0 then break end
  drop_first(prefix, o[1], 'total_bytes')
end
return head
"""

# ARGV: prefix, room, new_epoch, now, create(0/1)
_INFO = _DROP_FIRST + """
local mk = ARGV[1] .. 'r:' .. ARGV[2] .. ':m'
if ARGV[5] == '1' then create(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) end
return redis.call('HMGET', mk, 'epoch', 'head', 'pruned', 'frames', 'bytes')
"""

# ARGV: prefix, now, max_age_s, keep...
_PRUNE = _DROP_FIRST + """
local prefix, now, max_age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local n = 0
for _, room in ipairs(redis.call('ZRANGE', prefix .. 'active', 0, -1)) do
  n = n + expire(prefix, room, now - max_age)
end
for _, room in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'active', '-inf', now - max_age)) do
  local mk = prefix .. 'r:' .. room .. ':m'
  if not keep[room] and tonumber(redis.call('HGET', mk, 'frames') or '0') == 0 then
    redis.call('DEL', mk, prefix .. 'r:' .. room .. ':s')
    redis.call('ZREM', prefix .. 'active', room)
  end
end
return n
"""

# ARGV: prefix, room
_DISCARD = """
local mk = ARGV[1] .. 'r:' .. ARGV[2] .. ':m'
if redis.call('HGET', mk, 'head') == '0' then
  redis.call('DEL', mk)
  redis.call('ZREM', ARGV[1] .. 'active', ARGV[2])
  return 1
end
return 0
"""

# KEYS: the hash lim:<kind>:<key>. ARGV: prefix, process id, cap (0: only count).
_ACQUIRE = """
local total = 0
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'proc:' .. f[i]) == 1 then total = total + tonumber(f[i + 1])
  else redis.call('HDEL', KEYS[1], f[i]) end
end
local cap = tonumber(ARGV[3])
if cap == 0 then return total end
if total >= cap then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return total + 1
"""

_RELEASE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

# KEYS: rate:<key>. ARGV: rate, burst, amount. Redis's own clock: one time base for all processes.
_THROTTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tok', 't')
local tok, last = tonumber(v[1]) or burst, tonumber(v[2]) or now
local dt = now - last
if dt < 0 then dt = 0 end
tok = math.min(burst, tok + dt * rate) - amount
redis.call('HSET', KEYS[1], 'tok', tostring(tok), 't', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tok) / rate) + 1)
if tok >= 0 then return '0' end
return tostring(-tok / rate)
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
            ("append", _APPEND), ("info", _INFO), ("prune", _PRUNE), ("discard", _DISCARD),
            ("acquire", _ACQUIRE), ("release", _RELEASE), ("throttle", _THROTTLE))}

    def __call__(self, name: str, keys: list[str], args: list[Any]) -> Any:
        import redis
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.RedisError as exc:
            raise MailboxError(f"redis {name} failed: {exc}") from exc


class RedisMailbox(Mailbox):
    """The mailbox contract (mailbox.py) on Redis Streams; see the module docstring."""

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX, **limits: Any):
        super().__init__(**limits)
        self._client = client
        self._run = _Scripts(client)
        self.prefix = prefix
        self._closed = False

    def _call(self, fn: Any, *args: Any) -> Any:
        import redis
        if self._closed:
            raise MailboxError("mailbox is closed")
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise MailboxError(f"redis call failed: {exc}") from exc

    def append(self, room: str, frame: bytes) -> int:
        self._check_frame(room, frame)
        if self._closed:
            raise MailboxError("mailbox is closed")
        return int(self._run("append", [], [self.prefix, room, bytes(frame), repr(float(self.clock())),
                                             self.max_room_bytes, self.max_total_bytes, repr(self.max_age_s),
                                             FRAME_OVERHEAD_BYTES, secrets.token_hex(8)]))

    def read(self, room: str, after: int, limit: int = DEFAULT_READ_LIMIT,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        self._check_read(room, after, limit, max_bytes)
        entries = self._call(self._client.xrange, f"{self.prefix}r:{room}:s", f"{after + 1}-0", "+", limit)
        out: list[tuple[int, bytes]] = []
        size = 0
        for entry_id, fields in entries:
            data = bytes(fields[b"d"])
            if out and max_bytes is not None and size + len(data) > max_bytes:
                break
            out.append((int(entry_id.split(b"-", 1)[0]), data))
            size += len(data)
        return out

    def info(self, room: str, *, create: bool = False) -> RoomInfo:
        _check_room(room)
        if self._closed:
            raise MailboxError("mailbox is closed")
        epoch, head, pruned, frames, size = self._run(
            "info", [], [self.prefix, room, secrets.token_hex(8), repr(float(self.clock())), "1" if create else "0"])
        if epoch is None:
            return RoomInfo(room, None, 0, 0, 0, 0)
        return RoomInfo(room, epoch.decode(), int(head), int(pruned), int(frames), int(size))

    def discard_if_empty(self, room: str) -> bool:
        _check_room(room)
        return bool(self._run("discard", [], [self.prefix, room]))

    def prune(self, keep: Collection[str] = ()) -> int:
        return int(self._run("prune", [], [self.prefix, repr(float(self.clock())), repr(self.max_age_s),
                                            *sorted(keep)]))

    def stats(self) -> MailboxStats:
        p = self.prefix
        rooms = self._call(self._client.zcard, p + "active")
        frames = int(self._call(self._client.get, p + "frames") or 0)
        size = int(self._call(self._client.get, p + "total") or 0)
        dropped = {k.decode(): int(v) for k, v in self._call(self._client.hgetall, p + "dropped").items()}
        for reason in ("room_bytes", "total_bytes", "age"):
            dropped.setdefault(reason, 0)
        return MailboxStats(int(rooms), frames, size, dropped)

    def close(self) -> None:
        self._closed = True


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
        return int(self._run("acquire", [self._key(kind, key)], [self.prefix, self.process_id, cap])) > 0

    def release(self, kind: str, key: str) -> None:
        self._run("release", [self._key(kind, key)], [self.process_id])

    def held(self, kind: str, key: str) -> int:
        return int(self._run("acquire", [self._key(kind, key)], [self.prefix, self.process_id, 0]))

    def throttle(self, key: str, rate: float, burst: float, amount: float) -> float:
        return float(self._run("throttle", [f"{self.prefix}rate:{key}"], [repr(float(rate)), repr(float(burst)),
                                                                           repr(float(amount))]))

    def close(self) -> None:
        import redis
        try:
            self._client.delete(f"{self.prefix}proc:{self.process_id}")
        except redis.RedisError:
            pass  # the heartbeat key expires on its own


class RedisBus(Bus):
    """Pub/sub fan-out; also keeps this process's heartbeat alive."""

    def __init__(self, url: str, client: Any, limits: RedisLimits, *, prefix: str = DEFAULT_PREFIX,
                 timeout_s: float = DEFAULT_REDIS_TIMEOUT_S):
        self._url = url
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
        n = len(self.prefix) + 2
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
            data = msg["data"]
            if len(data) <= _HDR.size:
                continue
            origin, cursor = _HDR.unpack_from(data)
            if origin == self.origin:
                continue
            room = msg["channel"].decode()[n:]
            try:
                deliver(room, cursor, bytes(data[_HDR.size:]))
            except Exception:
                log.exception("redis bus: delivery failed")

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
            self._client.publish(self._channel(room), _HDR.pack(self.origin, cursor) + payload)
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
    bus = RedisBus(url, client, limits, prefix=prefix, timeout_s=timeout_s)
    return Backend(mailbox, bus, limits, name="redis")
