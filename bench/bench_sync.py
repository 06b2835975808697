"""Sync benchmarks: propagation latency, encrypted vs plaintext exchange, verify+apply
throughput, relay fan-out. `bench/run.py sync` runs this and prints its markdown table.

    .venv/bin/python bench/bench_sync.py             # every measurement, each in a fresh process
    .venv/bin/python bench/bench_sync.py latency     # one measurement, prints one JSON line
    .venv/bin/python bench/bench_sync.py profile     # cProfile of the verify+apply path (top functions)

Definitions:
* latency: wall time from `create()` on device A (then `flush()` + `notify_local_change()`) to
  the change event on device B; both are native SyncClients (default options) in one process,
  the relay is a separate `python -m ostracon.relay` process (SQLite mailbox) on loopback.
* exchange: two replicas holding 5,000 changes each (one change = one block: a document
  created with 4 fields) swap everything through two SyncSessions (hello, need, blocks; verify
  and apply included). "encrypted" seals every message into a frame and opens it on the other
  side (AES-256-GCM, key commitment, replay window); "plaintext" hands the same bytes over
  directly. Everything else is the same code path.
* verify+apply: `apply_blocks` of envelopes (blocks + Ed25519 seals) produced by another
  identity, into a fresh in-memory database, flush included. ops = field sets.
* fan-out: 100 WebSocket members in one room of a relay process (limits: rate limits off);
  one member publishes 1 KiB frames, 99 receive them; the publisher keeps at most WINDOW frames
  ahead of the slowest receiver (no slow-consumer kicks). frames/s = frames delivered to
  members per second of wall time.
Timing numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY_DIR = os.path.join(HERE, "..", "py")
sys.path.insert(0, PY_DIR)

LATENCY_SAMPLES = int(os.environ.get("BENCH_SYNC_LATENCY_SAMPLES", "300"))
EXCHANGE_CHANGES = int(os.environ.get("BENCH_SYNC_EXCHANGE_CHANGES", "10000"))
APPLY_OPS = int(os.environ.get("BENCH_SYNC_APPLY_OPS", "100000"))
FANOUT_CLIENTS = int(os.environ.get("BENCH_SYNC_FANOUT_CLIENTS", "100"))
FANOUT_FRAMES = int(os.environ.get("BENCH_SYNC_FANOUT_FRAMES", "2000"))
FANOUT_FRAME_BYTES = 1024
WINDOW = 128  # frames the publisher may run ahead of the slowest receiver (< send_queue_frames)
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
APPLY_TARGET_OPS = 50_000
EXCHANGE_TARGET = 1.3


def _identity(seed: int):
    from ostracon.crypto.identity import Identity
    return Identity.from_seed(bytes([seed]) * 32)


def _clock():
    t = [1_700_000_000_000]

    def clock():
        t[0] += 1
        return t[0]
    return clock


def _open(seed: int, path=None):
    import ostracon
    from ostracon.crypto import DeterministicRandom
    return ostracon.open(path, identity=_identity(seed), clock=_clock(), random_bytes=DeterministicRandom(seed))


# ------------------------------------------------------------------ relay process

class RelayProcess:
    def __init__(self, *extra: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        env = dict(os.environ)
        env["PYTHONPATH"] = PY_DIR + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ostracon.relay", "--host", "127.0.0.1", "--port", "0", "--mailbox",
             f"sqlite:{os.path.join(self.dir.name, 'mailbox.sqlite')}", "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"ostracon relay listening on http://127\.0\.0\.1:(\d+) ", line)
        if m is None:
            self.close()
            raise RuntimeError(f"relay did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{m.group(1)}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.proc.stdout.close()
        self.dir.cleanup()


# ------------------------------------------------------------------ latency

def latency(storage: str = "memory") -> dict:
    from ostracon.crypto.space import Space
    from ostracon.sync.native import start_sync

    relay = RelayProcess()
    tmp = tempfile.TemporaryDirectory()

    async def main() -> list[float]:
        space = Space.from_key(bytes(range(32)), "bench")
        if storage == "file":
            a, b = _open(1, os.path.join(tmp.name, "a")), _open(2, os.path.join(tmp.name, "b"))
        else:
            a, b = _open(1), _open(2)
        a.clock = b.clock = lambda: time.time_ns() // 1_000_000
        ha = await start_sync(a, relay.url, space)
        hb = await start_sync(b, relay.url, space)
        await ha.wait_synced(30)
        await hb.wait_synced(30)
        arrived: dict[str, float] = {}
        waiting: dict[str, asyncio.Future] = {}

        def on_change(ev) -> None:
            arrived[ev.id] = time.perf_counter()
            fut = waiting.pop(ev.id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

        b.subscribe(on_change, collection="lat")
        loop = asyncio.get_running_loop()
        samples = []
        col = a.collection("lat")
        for i in range(LATENCY_SAMPLES + 20):
            doc_id = f"l{i}"
            fut = loop.create_future()
            waiting[doc_id] = fut
            t0 = time.perf_counter()
            col.create({"i": i, "text": "hello"}, id=doc_id)
            a.flush()
            ha.notify_local_change()
            await asyncio.wait_for(fut, 30)
            if i >= 20:  # warm-up
                samples.append(arrived[doc_id] - t0)
            await asyncio.sleep(0.005)
        await ha.stop()
        await hb.stop()
        a.close()
        b.close()
        return samples

    try:
        samples = sorted(asyncio.run(main()))
    finally:
        relay.close()
        tmp.cleanup()
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "mean_ms": statistics.fmean(samples) * 1000,
            "samples": len(samples)}


# ------------------------------------------------------------------ exchange

def _exchange_once(encrypted: bool) -> dict:
    from ostracon.core.protocol.frames import FrameReceiver, FrameSender
    from ostracon.core.protocol.session import SyncSession
    from ostracon.crypto import DeterministicRandom
    from ostracon.crypto.space import Space
    from ostracon.sync.base import DatabaseReplica

    half = EXCHANGE_CHANGES // 2
    a, b = _open(1), _open(2)
    for i in range(half):
        a.collection("docs").create({"title": f"a {i}", "n": i, "done": False, "tags": ["x", "y"]}, id=f"a{i:06d}")
        b.collection("docs").create({"title": f"b {i}", "n": i, "done": True, "tags": ["z"]}, id=f"b{i:06d}")
    a.flush()
    b.flush()
    space = Space.from_key(bytes(range(32)), "bench")
    keys = space.frame_keys()
    rnd = DeterministicRandom("exchange")
    sides = []
    for db in (a, b):
        sides.append({"s": SyncSession(DatabaseReplica(db), rnd, now_ms=0),
                      "tx": FrameSender(keys, space.crypto, rnd), "rx": FrameReceiver(keys, space.crypto)})
    nbytes = 0
    frames = 0
    t0 = time.perf_counter()
    for side in sides:
        side["s"].start()
    moved = True
    while moved:
        moved = False
        for i, side in enumerate(sides):
            other = sides[1 - i]
            for out in side["s"].outgoing():
                moved = True
                data = out.data
                if encrypted:
                    frame = side["tx"].seal(data)
                    nbytes += len(frame)
                    data = other["rx"].open(frame).payload
                else:
                    nbytes += len(data)
                frames += 1
                other["s"].receive_plaintext(data)
    a.flush()
    b.flush()
    dt = time.perf_counter() - t0
    assert a.state_hash() == b.state_hash() and a.collection("docs").count() == 2 * half
    assert all(side["s"].is_synced for side in sides)
    a.close()
    b.close()
    return {"seconds": dt, "bytes": nbytes, "frames": frames}


def exchange() -> dict:
    enc, plain = [], []
    for _ in range(REPEAT):  # interleaved, so machine noise hits both alike
        plain.append(_exchange_once(False))
        enc.append(_exchange_once(True))
    e = min(enc, key=lambda r: r["seconds"])
    p = min(plain, key=lambda r: r["seconds"])
    return {"encrypted_s": e["seconds"], "plaintext_s": p["seconds"], "ratio": e["seconds"] / p["seconds"],
            "encrypted_bytes": e["bytes"], "plaintext_bytes": p["bytes"], "frames": e["frames"],
            "changes": 2 * (EXCHANGE_CHANGES // 2)}


# ------------------------------------------------------------------ verify + apply

def _apply_source(shape: str) -> tuple[list[bytes], int, int]:
    src = _open(7)
    if shape == "docs":  # APPLY_OPS/10 documents created with 10 fields each
        for i in range(APPLY_OPS // 10):
            src.collection("docs").create({f"f{k}": (i * 31 + k) if k % 3 else f"value {i}-{k}" for k in range(10)},
                                          id=f"doc{i:06d}")
        ops = (APPLY_OPS // 10) * 10
    else:  # APPLY_OPS single-field patches over 1,000 documents
        col = src.collection("docs")
        for i in range(1000):
            col.create({"v": 0}, id=f"doc{i:04d}")
        for i in range(APPLY_OPS - 1000):
            col.patch(f"doc{i % 1000:04d}", {"v": i})
        ops = APPLY_OPS
    src.flush()
    envs = src.blocks_since({})
    seals = sum(1 for e in envs if e[1:2] == b"\x02")
    return envs, ops, seals


def apply(shape: str = "docs") -> dict:
    envs, ops, seals = _apply_source(shape)
    blocks = len(envs) - seals
    best = float("inf")
    for _ in range(REPEAT):
        dst = _open(8)
        t0 = time.perf_counter()
        n = dst.apply_blocks(envs)
        dst.flush()
        dt = time.perf_counter() - t0
        assert n == blocks, (n, blocks)
        best = min(best, dt)
        dst.close()
    return {"seconds": best, "ops": ops, "blocks": blocks, "seals": seals, "ops_per_s": ops / best,
            "blocks_per_s": blocks / best}


def profile(shape: str = "docs", top: int = 15) -> str:
    import cProfile
    import io
    import pstats
    envs, _, _ = _apply_source(shape)
    dst = _open(8)
    prof = cProfile.Profile()
    prof.enable()
    dst.apply_blocks(envs)
    dst.flush()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    return buf.getvalue()


# ------------------------------------------------------------------ relay fan-out

def fanout() -> dict:
    from websockets.asyncio.client import connect

    from ostracon.core.protocol import relay as P

    relay = RelayProcess("--rate-frames-per-s", "off", "--rate-bytes-per-s", "off")
    room = "ab" * 16

    async def main() -> dict:
        counts = [0] * (FANOUT_CLIENTS - 1)
        progress = asyncio.Event()
        done = asyncio.Event()
        conns = []

        async def member(i: int | None) -> None:
            ws = await connect(relay.url + P.room_path(room), max_size=2 ** 21, compression=None, max_queue=64,
                               ping_interval=None)
            conns.append(ws)
            first = P.decode_server_message(await ws.recv())
            assert isinstance(first, P.Welcome)
            while not isinstance(P.decode_server_message(await ws.recv()), P.CaughtUp):
                pass
            if i is None:
                return
            ready.append(i)
            async for msg in ws:
                if msg[0] == P.S_FRAME:
                    counts[i] += 1
                    if counts[i] == FANOUT_FRAMES and all(c == FANOUT_FRAMES for c in counts):
                        done.set()
                    progress.set()

        ready: list[int] = []
        tasks = [asyncio.create_task(member(i)) for i in range(FANOUT_CLIENTS - 1)]
        while len(ready) < FANOUT_CLIENTS - 1:
            await asyncio.sleep(0.01)
        await member(None)
        pub = conns[-1]
        payload = os.urandom(FANOUT_FRAME_BYTES)
        msg = P.encode_publish(payload)

        async def drain_publisher() -> None:
            async for _ in pub:  # acks and peers messages
                pass

        drain = asyncio.create_task(drain_publisher())
        t0 = time.perf_counter()
        for k in range(FANOUT_FRAMES):
            while k - min(counts) >= WINDOW:
                progress.clear()
                await progress.wait()
            await pub.send(msg)
        await asyncio.wait_for(done.wait(), 300)
        dt = time.perf_counter() - t0
        for ws in conns:
            await ws.close()
        for t in tasks + [drain]:
            t.cancel()
        delivered = FANOUT_FRAMES * (FANOUT_CLIENTS - 1)
        return {"seconds": dt, "frames_delivered": delivered, "frames_per_s": delivered / dt,
                "mb_per_s": delivered * (FANOUT_FRAME_BYTES + 9) / dt / 1e6, "published_per_s": FANOUT_FRAMES / dt}

    try:
        return asyncio.run(main())
    finally:
        relay.close()


# ------------------------------------------------------------------ driver

RUNS = {"latency": lambda: latency("memory"), "latency_file": lambda: latency("file"), "exchange": exchange,
        "apply_docs": lambda: apply("docs"), "apply_fields": lambda: apply("fields"), "fanout": fanout}


def _run(name: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), name], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def table() -> None:
    lat, latf = _run("latency"), _run("latency_file")
    ex = _run("exchange")
    ad, af = _run("apply_docs"), _run("apply_fields")
    fo = _run("fanout")
    print("\n### Sync\n")
    print("| workload | metric | ostracon | peer | peer value | ratio (ostracon/peer) | target |")
    print("|---|---|---|---|---|---|---|")
    rows = [
        ("propagation of 1 write, 2 native clients via relay process (loopback), in-memory dbs", "p50 / p99 ms",
         f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}", "-", "-", "-", "-"),
        ("same, durable file dbs (fsync per flush)", "p50 / p99 ms",
         f"{latf['p50_ms']:.2f} / {latf['p99_ms']:.2f}", "-", "-", "-", "-"),
        (f"exchange {ex['changes']:,} changes (sessions, verify+apply)", "seconds", f"{ex['encrypted_s']:.3f}",
         "same path, plaintext passthrough", f"{ex['plaintext_s']:.3f}", f"{ex['ratio']:.2f}×", "≤ 1.3×"),
        ("exchange", "bytes on the wire", fmt(ex["encrypted_bytes"]), "plaintext", fmt(ex["plaintext_bytes"]),
         f"{ex['encrypted_bytes'] / ex['plaintext_bytes']:.3f}×", "-"),
        (f"verify+apply {ad['ops']:,} remote field sets ({ad['blocks']:,} blocks × 10 fields, {ad['seals']} seals)",
         "ops/s", fmt(ad["ops_per_s"]), "-", "-", "-", "≥ 50,000"),
        ("same", "blocks/s", fmt(ad["blocks_per_s"]), "-", "-", "-", "-"),
        (f"verify+apply {af['ops']:,} remote field sets (1 per block, {af['seals']} seals)", "ops/s",
         fmt(af["ops_per_s"]), "-", "-", "-", "≥ 50,000"),
        ("same", "blocks/s", fmt(af["blocks_per_s"]), "-", "-", "-", "-"),
        (f"relay fan-out, {FANOUT_CLIENTS} members, 1 publisher, {FANOUT_FRAME_BYTES} B frames", "frames/s delivered",
         fmt(fo["frames_per_s"]), "-", "-", "-", "-"),
        ("same", "MB/s delivered", f"{fo['mb_per_s']:.1f}", "-", "-", "-", "-"),
    ]
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"\nlatency samples: {lat['samples']} (memory), {latf['samples']} (file); exchange: best of {REPEAT}, "
          f"{ex['frames']} frames; verify+apply: best of {REPEAT}. Machine: {os.cpu_count()} CPUs.")
    slow = [(name, r) for name, r in (("docs", ad), ("fields", af)) if r["ops_per_s"] < APPLY_TARGET_OPS]
    for name, _ in slow:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "profile", name], check=True,
                             capture_output=True, text=True).stdout
        print(f"\nverify+apply below target ({name}): cProfile, top functions by own time\n\n```\n{out.strip()}\n```")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "profile":
        print(profile(sys.argv[2] if len(sys.argv) > 2 else "docs"))
    elif len(sys.argv) > 1:
        print(json.dumps(RUNS[sys.argv[1]]()))
    else:
        table()
