"""The suspension gate of the browser runtime (runtime/browser/bridge.py), natively: a fake
bridge module stands for web/bridge.js and an event loop that schedules every callback
through `call_later` stands for Pyodide's WebLoop."""

import asyncio

import pytest

from ostracon.crypto.native import NativeCrypto
from ostracon.runtime.browser import bridge
from ostracon.runtime.browser.host import BROADCAST, Host
from ostracon.storage.file import FileStorage
from ostracon.sync.broadcast import BroadcastTransport, LocalBroadcast
from polling import until
from test_browser_host import FFI, call


class FakeBridge:
    def __init__(self) -> None:
        self.depth = {"rpc": 0, "task": 0}

    def gateEnter(self, kind):  # noqa: N802 - web/bridge.js's names
        self.depth[kind] += 1

    def gateExit(self, kind):  # noqa: N802
        self.depth[kind] -= 1

    def gateRpcBusy(self):  # noqa: N802
        return self.depth["rpc"] > 0


class WebLoopLike(asyncio.SelectorEventLoop):
    """Like Pyodide's WebLoop, every callback goes through `call_later`."""

    def call_soon(self, callback, *args, context=None):
        return self.call_later(0, callback, *args, context=context)


class SyncClient:
    """Stands for the sync client: its tasks' coroutines are `SyncClient.*` (what the gate
    recognises)."""

    def __init__(self, log: list | None = None) -> None:
        self.log = log
        self.task: asyncio.Task | None = None
        self.stopped = False

    async def reader(self, wait: asyncio.Future) -> None:
        with bridge.gate():          # a blocking wait on a JS promise, e.g. a WebCrypto verify
            self.log.append("reader waits")
            await wait               # the JS event loop runs meanwhile
            self.log.append("reader resumes")

    async def ticker(self) -> None:
        self.log.append("ticker step")

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Like the sync client's: cancel the running task and wait for it to finish."""
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task          # the cancelled task must take a step to finish
        self.stopped = True


class FakeClock:
    """The gate's clock (seconds), moved by the test only."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake_bridge(monkeypatch):
    fake = FakeBridge()
    bridge.install(fake)
    monkeypatch.setattr(bridge, "_gate_installed", False)
    monkeypatch.setattr(bridge, "_sync_codes", frozenset())
    monkeypatch.setattr(bridge, "clock", FakeClock())
    monkeypatch.setattr(bridge, "_suspended_tasks", [])  # a failed test's leftovers hold nothing
    monkeypatch.setattr(bridge, "_waiters", [])
    monkeypatch.setattr(bridge, "_loop", None)
    bridge.reset_gate_stats()
    yield fake
    bridge.uninstall()
    bridge.reset_gate_stats()


def run_on_webloop(main):
    loop = WebLoopLike()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_no_other_sync_task_steps_while_a_task_is_suspended_in_a_blocking_wait(fake_bridge):
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        wait = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(client.reader(wait))
        while "reader waits" not in log:
            await asyncio.sleep(0)
        assert fake_bridge.depth == {"rpc": 0, "task": 1}
        ticker = asyncio.create_task(client.ticker())
        for _ in range(20):          # many loop turns: the ticker is held back all along
            await asyncio.sleep(0.001)
        log.append("promise settles")
        wait.set_result(None)
        await asyncio.gather(reader, ticker)

    run_on_webloop(main)
    assert log == ["reader waits", "promise settles", "reader resumes", "ticker step"]
    assert fake_bridge.depth == {"rpc": 0, "task": 0} and bridge._suspended_tasks == []


def test_the_gate_is_left_when_the_wait_fails(fake_bridge):
    async def main():
        with pytest.raises(ValueError), bridge.gate():
            raise ValueError("the promise rejected")

    run_on_webloop(main)
    assert fake_bridge.depth == {"rpc": 0, "task": 0} and bridge._suspended_tasks == []


def test_outside_a_task_the_gate_counts_as_an_rpc(fake_bridge):
    with bridge.gate():
        assert fake_bridge.depth == {"rpc": 1, "task": 0} and bridge._suspended_tasks == []
    assert fake_bridge.depth == {"rpc": 0, "task": 0}


@pytest.mark.parametrize("allowed", [True, False])
def test_closing_lets_the_sync_client_stop_while_the_close_call_waits(fake_bridge, allowed):
    # Host.close waits (as an RPC, in the gate) for the client to stop: its steps must run.
    client = SyncClient()

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client.task = asyncio.create_task(client.run())
        await asyncio.sleep(0)
        fake_bridge.gateEnter("rpc")          # the close RPC's stack, suspended in its wait
        try:
            if allowed:
                with bridge.sync_tasks_may_run():
                    await asyncio.wait_for(client.stop(), 30)
            else:   # held back, the cancelled task never finishes while the close call waits
                client.task.cancel()
                for _ in range(20):
                    await asyncio.sleep(0.001)
                assert not client.task.done()
        finally:
            fake_bridge.gateExit("rpc")
        if not allowed:
            with pytest.raises(asyncio.CancelledError):
                await client.task                     # after the wait, its step runs

    run_on_webloop(main)
    assert client.stopped is allowed and client.task.cancelled()


def test_held_back_steps_and_the_longest_hold_are_counted(fake_bridge):
    log: list[str] = []
    clock = bridge.clock

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        wait = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(client.reader(wait))
        while "reader waits" not in log:
            await asyncio.sleep(0)
        ticker = asyncio.create_task(client.ticker())
        while not bridge.STATS.holding:
            await asyncio.sleep(0)
        assert bridge.gate_stats()["heldNow"] == 1
        clock.t += 0.75                      # the reader's wait takes 750 ms
        wait.set_result(None)
        await asyncio.gather(reader, ticker)

    run_on_webloop(main)
    assert bridge.gate_stats() == {"heldSteps": 1, "longestHoldMs": 750.0, "heldNow": 0,
                                   "yields": 0, "yieldTimeouts": 0}


async def _back_to_back_rpcs(fake_bridge, batches: int, log: list, *, yield_first: bool) -> None:
    """RPC batches one after another, each suspended in a blocking wait (an IndexedDB commit)
    for three loop turns, the next starting right as the last ends (calls queued in the
    worker): the gate's RPC side is busy whenever the loop runs a callback."""
    for n in range(batches):
        if yield_first and bridge.steps_starved():   # what Host.run does (yield_to_held_steps)
            await bridge.let_held_steps_run()
        fake_bridge.gateEnter("rpc")
        try:
            for _ in range(3):
                await asyncio.sleep(0.001)
            bridge.clock.t += 0.05           # each batch takes 50 ms
        finally:
            fake_bridge.gateExit("rpc")
        log.append(f"batch {n}")


@pytest.mark.parametrize("yield_first", [False, True])
def test_back_to_back_rpc_batches_do_not_starve_the_sync_client(fake_bridge, yield_first):
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        fake_bridge.gateEnter("rpc")         # the ticker is scheduled while a batch waits
        ticker = asyncio.create_task(client.ticker())
        await asyncio.sleep(0.001)
        fake_bridge.gateExit("rpc")
        await _back_to_back_rpcs(fake_bridge, 40, log, yield_first=yield_first)
        await ticker

    run_on_webloop(main)
    held_for = log.index("ticker step")
    if yield_first:   # held GATE_MAX_HOLD_S (5 batches of 50 ms), then the next batch yields
        assert held_for == round(bridge.GATE_MAX_HOLD_S / 0.05)
        assert bridge.gate_stats()["yields"] == 1 and bridge.gate_stats()["yieldTimeouts"] == 0
    else:             # held for as long as the calls keep coming
        assert held_for == 40
    assert bridge.gate_stats()["heldSteps"] == 1


def test_a_yield_is_bounded_but_never_lets_a_batch_into_a_suspended_tasks_operation(fake_bridge, monkeypatch):
    # The reader is suspended in a long wait: the ticker stays held (it must, the reader's
    # operation is half done). The yield gives up on the held ticker after
    # GATE_YIELD_TIMEOUT_S but the batch still waits until the reader left the gate.
    monkeypatch.setattr(bridge, "GATE_YIELD_TIMEOUT_S", 0.01)
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        loop = asyncio.get_running_loop()
        wait = loop.create_future()
        reader = asyncio.create_task(client.reader(wait))
        while "reader waits" not in log:
            await asyncio.sleep(0)
        ticker = asyncio.create_task(client.ticker())
        while not bridge.STATS.holding:
            await asyncio.sleep(0)
        bridge.clock.t += bridge.GATE_MAX_HOLD_S
        assert bridge.steps_starved()
        # the JS promise settles well after the yield's timeout
        loop.call_later(0.01 + 20 * bridge.GATE_RETRY_S, wait.set_result, None)
        assert await bridge.let_held_steps_run() is False
        log.append("batch runs")
        await asyncio.gather(reader, ticker)

    run_on_webloop(main)
    assert log[:2] == ["reader waits", "reader resumes"] and "batch runs" in log[2:]
    assert bridge.gate_stats()["yieldTimeouts"] == 1 and bridge._waiters == []


def test_letting_sync_steps_run_still_holds_them_while_another_task_is_suspended(fake_bridge):
    # Close (or a yield) lifts the RPC side only: a task suspended inside the engine still
    # keeps the other task out.
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        wait = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(client.reader(wait))
        while "reader waits" not in log:
            await asyncio.sleep(0)
        with bridge.sync_tasks_may_run():
            ticker = asyncio.create_task(client.ticker())
            for _ in range(20):
                await asyncio.sleep(0.001)
            log.append("promise settles")
            wait.set_result(None)
            await asyncio.gather(reader, ticker)

    run_on_webloop(main)
    assert log == ["reader waits", "promise settles", "reader resumes", "ticker step"]


def test_a_held_back_task_waiting_on_the_suspended_one_is_no_deadlock(fake_bridge):
    # The ticker, held back, waits for what the suspended reader produces after its wait; the
    # reader's own steps are never held, so both finish (a deadlock would hang here).
    log: list[str] = []

    class Client(SyncClient):
        async def reader(self, wait, done):
            await super().reader(wait)
            done.set()

        async def ticker(self, done):
            await done.wait()
            self.log.append("ticker saw the reader")

    async def main():
        bridge.install_asyncio_gate(Client)
        client = Client(log)
        wait = asyncio.get_running_loop().create_future()
        done = asyncio.Event()
        ticker = asyncio.create_task(client.ticker(done))
        await asyncio.sleep(0)
        reader = asyncio.create_task(client.reader(wait, done))
        while "reader waits" not in log:
            await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.005, wait.set_result, None)  # the JS promise
        await asyncio.wait_for(asyncio.gather(reader, ticker), 30)

    run_on_webloop(main)
    assert log == ["reader waits", "reader resumes", "ticker saw the reader"]


def test_a_yield_waits_for_a_released_step_that_suspends_in_a_blocking_wait(fake_bridge):
    # The held reader runs during the yield and suspends (an IndexedDB write): the batch
    # must not go on into the engine before it left the gate.
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate(SyncClient)
        client = SyncClient(log)
        loop = asyncio.get_running_loop()
        wait = loop.create_future()
        fake_bridge.gateEnter("rpc")                 # a batch waits: the reader is held
        reader = asyncio.create_task(client.reader(wait))
        while not bridge.STATS.holding:
            await asyncio.sleep(0)
        bridge.clock.t += bridge.GATE_MAX_HOLD_S
        assert bridge.steps_starved()
        loop.call_later(20 * bridge.GATE_RETRY_S, wait.set_result, None)   # the JS promise
        assert await bridge.let_held_steps_run() is True   # the next batch's start
        log.append("batch runs")
        fake_bridge.gateExit("rpc")
        await reader

    run_on_webloop(main)
    assert log == ["reader waits", "reader resumes", "batch runs"]


def test_no_task_of_the_real_sync_client_enters_the_engine_while_an_rpc_batch_is_suspended(fake_bridge, tmp_path):
    # The real client, started by the worker's host, syncing over the in-process broadcast
    # medium; the gate as the host installs it (no classes given). Each of its tasks must be
    # held: the reader (SyncClient.run) and the ticker, whose coroutine is defined on the
    # SessionDriver mixin (sync/driving.py). The ticker enters the engine at every pass
    # (db.tick: the sink's time trigger and due text bursts; db.flush for peers): a pass
    # inside a batch suspended in an IndexedDB commit would wait for the sink's io_lock that
    # batch holds, on the worker's only thread, and the worker would never answer again.
    medium, crypto = LocalBroadcast(), NativeCrypto()
    entered: list[str] = []   # the client's engine entries while an RPC batch was suspended

    def host() -> Host:
        return Host(open_storage=lambda name: FileStorage(str(tmp_path / name)), make_crypto=NativeCrypto,
                    broadcast_factory=lambda: BroadcastTransport(medium.open, crypto.random_bytes), ffi=FFI)

    def spy(db, name: str) -> None:
        real = getattr(db, name)

        def entry(*args):
            if fake_bridge.depth["rpc"]:
                entered.append(name)
            return real(*args)

        setattr(db, name, entry)

    async def main():
        bridge.install_asyncio_gate()
        a, b = host(), host()
        sync = {"tick_interval_s": 0.005, "settle_s": 0.05, "flush_debounce_s": 0.0}
        key = {"key": bytes(range(32)), "name": "gate"}
        try:
            call(a, "open", {"name": "a", "space": key, "relay": BROADCAST, "sync": sync})
            call(b, "open", {"name": "b", "space": key, "relay": BROADCAST, "sync": sync})
            await until(lambda: a.sync.status.peers == 1 and b.sync.status.peers == 1, "both members online")
            for name in ("tick", "flush"):
                spy(a.db, name)
            call(a, "create", "notes", {"t": "from a"}, "n1")   # for the ticker to flush and push
            fake_bridge.gateEnter("rpc")      # the next batch, suspended in an IndexedDB commit
            try:
                for _ in range(40):           # many ticker intervals pass meanwhile
                    await asyncio.sleep(0.002)
            finally:
                fake_bridge.gateExit("rpc")
            await until(lambda: b.db.collection("notes").count() == 1, "the write reaches b after the batch")
        finally:
            for h in (a, b):
                if h.sync is not None:
                    await h.sync.stop()
                    h.sync = None
                h.close()

    run_on_webloop(main)
    assert entered == []
    assert bridge.gate_stats()["heldSteps"] >= 1


def test_sync_task_codes_cover_the_coroutines_of_the_class_and_its_mixins():
    class Driver:
        async def tick(self):
            pass

        def plain(self):
            pass

    class Client(Driver):
        async def run(self):
            pass

    codes = bridge.sync_task_codes(Client)
    assert codes == {Driver.tick.__code__, Client.run.__code__}
