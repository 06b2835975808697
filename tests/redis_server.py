"""A throwaway ``redis-server`` for tests: a free loopback port, a temp dir, no persistence.

``make test`` installs Debian's redis-server (mk/redis.mk) and the ``redis`` package (the
``test`` extra). The fixture starts one server per test and stops it afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from polling import stop_process, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path):
        self.dir = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=10)

    def _ping(self) -> bool:
        import redis
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> RedisServer:
        for _attempt in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            log = open(self.dir / "redis.log", "ab")
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--save", "", "--appendonly", "no"], stdout=log, stderr=log)
            log.close()
            try:
                wait_until(self._ping, "redis-server to answer PING", 30.0)
                return self
            except AssertionError:
                self.stop()
        raise AssertionError("could not start redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d).start()
    try:
        yield server
    finally:
        server.stop()
