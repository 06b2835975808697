"""The suspension gate of the browser runtime (runtime/browser/bridge.py), natively: a fake
bridge module stands for web/bridge.js and an event loop that schedules every callback
through `call_later` stands for Pyodide's WebLoop."""

import asyncio

import pytest

from ostracon.runtime.browser import bridge


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


@pytest.fixture
def fake_bridge(monkeypatch):
    fake = FakeBridge()
    bridge.install(fake)
    monkeypatch.setattr(bridge, "_gate_installed", False)
    yield fake
    bridge.uninstall()


def run_on_webloop(main):
    loop = WebLoopLike()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_no_other_sync_task_steps_while_a_task_is_suspended_in_a_blocking_wait(fake_bridge):
    log: list[str] = []

    async def main():
        bridge.install_asyncio_gate()
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
        bridge.install_asyncio_gate()
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
