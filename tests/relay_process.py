"""``python -m ostracon.relay`` as a child process for tests (any flags), plus a tiny raw client.

The bound port is read from the relay's first stdout line (docs/RELAY.md, "Running").
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ostracon.core.protocol import relay as P
from room_keys import answer

TIMEOUT = 30.0
REPO_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "py")
LISTEN_RE = re.compile(r"^ostracon relay listening on http://127\.0\.0\.1:(\d+) ")


class RelayProcess:
    """The relay in a child process. ``start()`` after ``kill()``/``terminate()`` restarts it on the
    same port, so clients reconnect to the URL they know."""

    def __init__(self, args: list[str], log_path: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = env or {}
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RelayProcess:
        assert self.proc is None, "already running"
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = REPO_PY + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ostracon.relay", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning", *self.args], stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=TIMEOUT).decode()
        except queue.Empty:
            self.kill()
            raise AssertionError("relay process printed nothing") from None
        m = LISTEN_RE.match(first)
        if m is None:
            self.kill()
            with open(self.log_path, "rb") as f:
                raise AssertionError(f"unexpected first line {first!r}; stderr: {f.read()[-2000:]!r}")
        port = int(m.group(1))
        assert self.port in (0, port), f"restarted on port {port}, not {self.port}"
        self.port = port
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful close, no flush."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self.proc.stdout.close()
        self.proc = None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(TIMEOUT)
        self.proc.stdout.close()
        self.proc = None
        return code

    def rss_bytes(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def get(self, path: str) -> tuple[int, dict]:
        """GET a JSON endpoint (``/healthz``, ``/metrics.json``): (status, body)."""
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=TIMEOUT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def metrics(self) -> dict:
        return self.get("/metrics.json")[1]


def sqlite_relay(tmp_path) -> RelayProcess:
    """A relay whose mailbox is a SQLite file under ``tmp_path`` (survives kill and restart)."""
    return RelayProcess(["--mailbox", f"sqlite:{tmp_path / 'relay' / 'mailbox.sqlite'}"], str(tmp_path / "relay.log"))


class RawClient:
    """A relay client speaking the wire protocol directly (no sync session)."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def join(cls, base_url: str, room: str, since: int | None = 0, epoch: str | None = None, **kw):
        """Connect and answer the admission challenge (a refusal before it shows in next())."""
        ws = await connect(base_url + P.room_path(room, since, epoch), max_size=None, open_timeout=TIMEOUT, **kw)
        try:
            await answer(ws, room, TIMEOUT)
        except ConnectionClosed:
            pass
        return cls(ws)

    async def next(self):
        return P.decode_server_message(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def until(self, pred):
        seen = []
        while True:
            m = await self.next()
            seen.append(m)
            if pred(m):
                return seen

    async def publish(self, payload: bytes) -> None:
        await self.ws.send(P.encode_publish(payload))

    async def close_code(self):
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self):
        await self.ws.close()
