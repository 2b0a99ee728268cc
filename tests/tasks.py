"""Tasks and a worker Config for tests that run real `tasker-worker` processes.

Resource lifecycle events are appended to the file named by $TASKER_TEST_EVENTS (one
line each: "create <id>" / "destroy <id>"), so a test can see what a daemon did.
Settings come from environment variables so each test can shape its daemon.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import time
from typing import Any

from tasker_dist import Config, TaskContext

_ids = itertools.count(1)


class Unhealthy(Exception):
    """An error that `check_health` judges unhealthy (the resource must be replaced)."""


class Resource:
    def __init__(self) -> None:
        self.id = f"{os.getpid()}-{next(_ids)}"
        self.used = 0


def _event(line: str) -> None:
    path = os.environ.get("TASKER_TEST_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def create() -> Resource:
    delay = float(os.environ.get("TASKER_TEST_CREATE_DELAY", "0"))
    if delay:
        time.sleep(delay)
    r = Resource()
    _event(f"create {r.id}")
    return r


def destroy(r: Resource) -> None:
    _event(f"destroy {r.id}")


def healthy(exc: BaseException) -> bool:
    return not isinstance(exc, Unhealthy)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


config = Config(
    on_create=create,
    on_destroy=destroy,
    worker_count=_env_int("TASKER_TEST_WORKERS", 2),
    max_worker_count=_env_int("TASKER_TEST_MAX_WORKERS", 0) or None,
    check_health=healthy,
    max_retries=_env_int("TASKER_TEST_MAX_RETRIES", 2),
    burst_interval=float(os.environ.get("TASKER_TEST_BURST_INTERVAL", "0.2")),
    heartbeat_interval=float(os.environ.get("TASKER_TEST_HEARTBEAT", "0.2")),
    hung_after=float(os.environ.get("TASKER_TEST_HUNG_AFTER", "60")),
    connect_timeout=float(os.environ.get("TASKER_TEST_CONNECT_TIMEOUT", "5")),
    wait_replicas=_env_int("TASKER_TEST_WAIT_REPLICAS", 0),
    kill_grace=float(os.environ.get("TASKER_TEST_KILL_GRACE", "1.0")),
    max_deliveries=_env_int("TASKER_TEST_MAX_DELIVERIES", 5),
    result_ttl=float(os.environ.get("TASKER_TEST_RESULT_TTL", "86400")),
)


def resource_id(ctx: TaskContext, r: Resource) -> str:
    return r.id


def sleep_then(ctx: TaskContext, r: Resource, seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def sleep_then_stamp(ctx: TaskContext, r: Resource, seconds: float) -> float:
    """Sleeps, then returns when it ended on the host's monotonic clock (the same in every
    process): a waiter's own clock at delivery, minus this, is how long the result took."""
    time.sleep(seconds)
    return time.monotonic()


def run_until_file(ctx: TaskContext, r: Resource, path: str, value: Any) -> Any:
    """Runs, deaf to cancellation (as code stuck in a C call is), until the file ``path``
    exists, then returns ``value``: the test decides when it ends instead of guessing a
    duration. Gives up after a minute so that a failed test cannot leave it running."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


def unhealthy(ctx: TaskContext, r: Resource) -> None:
    raise Unhealthy(f"resource {r.id} broke")


def exit_now(ctx: TaskContext, r: Resource, code: int) -> None:
    raise SystemExit(code)


def crash_once(ctx: TaskContext, r: Resource, marker: str) -> str:
    """Ends its worker process the first time it runs (as a segfault would)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(13)
    return "survived"


def write_canary(ctx: TaskContext, r: Resource, path: str) -> str:
    """Proof that a task ran: tests that feed workers hostile payloads check it never does."""
    with open(path, "w") as f:
        f.write("ran")
    return "canary"


def always_crash(ctx: TaskContext, r: Resource) -> None:
    """Ends its worker process every time (a segfaulting extension, say)."""
    os._exit(11)


def unhealthy_once(ctx: TaskContext, r: Resource, marker: str) -> str:
    """Unhealthy the first time it ever runs (per marker file), fine afterwards."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise Unhealthy("first run breaks the resource")
    return "fine now"


def ledger_task(ctx: TaskContext, r: Resource, ledger: str, n: int, seconds: float) -> int:
    """Writes "<n> <pid>" to the ledger each time it runs (one atomic append), then works."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{n} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    time.sleep(seconds)
    return n


def padded(ctx: TaskContext, r: Resource, n: int, padding: str) -> int:
    """A task whose arguments are large and whose result is small (filling Redis)."""
    return n


def hold_the_gil(ctx: TaskContext, r: Resource, ledger: str, n: int, seconds: float) -> float:
    """Logs its run to the ledger, then holds the interpreter lock for about ``seconds`` in
    one C call (as a big regex or sort does), starving every other thread of its process;
    returns how long that call took."""
    ledger_task(ctx, r, ledger, n, 0)
    start = time.thread_time()  # CPU time: what the call costs, however busy the host
    sum(range(1_000_000))
    per_item = (time.thread_time() - start) / 1_000_000
    start = time.monotonic()
    sum(range(int(seconds / per_item)))  # one call: no other thread runs until it returns
    return time.monotonic() - start


def hang_once(ctx: TaskContext, r: Resource, ledger: str, n: int, marker: str) -> str:
    """The first run hangs its process: it holds the interpreter lock in a C call that
    sleeps (no CPU used, no other thread runs) for a minute; later runs return at once."""
    ledger_task(ctx, r, ledger, n, 0)
    if os.path.exists(marker):
        return "ran again"
    open(marker, "w").close()
    ctypes.PyDLL(None).sleep(60)  # PyDLL: the lock is not released around the call
    return "woke up"
