"""Signals to the programs tasker-dist runs: every one counts, in any order and at any
moment, and nothing is left running. Set $TASKER_SIGNALS_REPORT to a file to get the
figures as JSON (the README's "Guarantees" section quotes them)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasker_dist import Producer

from . import tasks
from .conftest import (
    ROOT,
    TAG_ENV,
    WORKER_BIN,
    ChildProcess,
    catches,
    pending,
    tagged,
    wait_until,
)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAIRS = [(first, second) for first in STOP_SIGNALS for second in STOP_SIGNALS]
KILL_GRACE_S = 0.1
EXIT_BOUND_S = 10.0  # from the second signal to the daemon's exit
#: What the first signal's random offset is counted from: the daemon's exec (Python still
#: loading), its handlers in place (reading its Config, starting), its first worker
#: process forked (that process starting), its task running.
ANCHORS = ("exec", "handlers", "forked", "running")


@dataclass(frozen=True)
class _Outcome:
    ended: str  # "killed", "stopped", or "loading" (ended by a signal's default action)
    seconds: float  # from the second signal to the exit
    task_ran: bool


def _report(figures: dict[str, object]) -> None:
    target = os.environ.get("TASKER_SIGNALS_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(figures) + "\n")


def _send_pair(proc: ChildProcess, first: int, second: int, gap: float) -> bool:
    """Send ``first``, then ``second`` ``gap`` seconds later; False if SIGTERM had no
    handler yet when ``first`` was sent (Python was still loading; it handles SIGINT
    itself from its start, raising KeyboardInterrupt)."""
    caught = catches(proc.pid, signal.SIGTERM)
    proc.signal(first)
    time.sleep(gap)  # the offset is the thing under test
    if second == first:  # the kernel would merge the two: wait until it delivered the first
        wait_until(
            lambda: proc.proc.poll() is not None or not pending(proc.pid, first),
            timeout=5, interval=0.0005, message="the first signal to be delivered",
        )  # fmt: skip
    proc.signal(second)
    return caught


def _reached(anchor: str, daemon: ChildProcess, started: Path) -> bool:
    if daemon.proc.poll() is not None:
        return True
    if anchor == "handlers":
        return catches(daemon.pid, signal.SIGTERM)
    if anchor == "forked":
        return bool(daemon.worker_pids())
    return anchor == "exec" or started.exists()


def _pair_trial(
    redis_url: str, tmp_path: Path, n: int, pair: tuple[int, int], anchor: str, at: float,
    gap: float, processes: int,
) -> _Outcome:  # fmt: skip
    """One daemon, one task that runs an hour deaf to cancellation, queued before the
    daemon starts; a signal pair at ``at`` s after ``anchor``, ``gap`` s apart."""
    first, second = pair
    queue, tag = f"t-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    started = tmp_path / f"started-{n}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), TAG_ENV: tag, "TASKER_TEST_WORKERS": "1",
           "TASKER_TEST_KILL_GRACE": str(KILL_GRACE_S)}  # fmt: skip
    argv = [WORKER_BIN, "tests.tasks:config", "--redis-url", redis_url, "--queue", queue,
            "--processes", str(processes)]  # fmt: skip
    where = f"trial {n}: {signal.Signals(first).name} {at:.3f} s after {anchor}, then "
    where += f"{signal.Signals(second).name} {gap:.3f} s later, --processes {processes}"
    with Producer(redis_url, queue) as producer:
        producer.enqueue(tasks.ledger_task, str(started), n, 3600)
        daemon = ChildProcess(argv, env, tmp_path / f"daemon-{n}.log")
        try:
            wait_until(lambda: _reached(anchor, daemon, started), timeout=30, interval=0.001,
                       message=f"{where}: {anchor}")  # fmt: skip
            time.sleep(at)  # the offset is the thing under test
            caught = _send_pair(daemon, first, second, gap)
            sent = time.monotonic()
            try:
                code = daemon.wait(EXIT_BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{where}: still running {EXIT_BOUND_S} s later\n{daemon.output()}")
            took = time.monotonic() - sent
            out = daemon.output()
            assert not tagged(tag), f"{where}: left running\n{out}"
            ran = started.exists()
            loading = not caught and (code < 0 or "Traceback" in out)
            if loading:
                # the first came while Python was still loading the program, before the
                # daemon had handlers: the default action (or KeyboardInterrupt) ended it
                assert "started worker process" not in out, f"{where}: {out}"
            else:
                assert code in (0, 1), f"{where}: exit {code}\n{out}"
                assert (code == 1) == ("second signal: killing" in out), f"{where}\n{out}"
            if ran:  # the stop waits for it: only the kill ends the daemon
                assert code == 1, f"{where}: the task ran, exit {code}\n{out}"
                assert "handed 1 running task(s) back" in out, f"{where}\n{out}"
            stats = producer.stats()
            assert stats.workers == (), f"{where}: still in the cluster"
            assert stats.running_tasks == 0
            assert stats.queued_tasks + stats.priority_tasks == 1, f"{where}: task lost\n{out}"
        finally:
            for pid in tagged(tag):  # only if an assertion failed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            daemon.wait()
    return _Outcome("loading" if loading else ("killed" if code else "stopped"), took, ran)


@pytest.mark.timeout(600)
def test_every_signal_pair_stops_then_kills_at_any_moment(redis_url: str, tmp_path: Path) -> None:
    """200 pairs of SIGINT/SIGTERM (every order), each to a fresh daemon at a random
    moment of its start-up or its run (50 after each of ANCHORS), the second at a random
    offset from the first (so during the stop, too). Each daemon must exit within
    EXIT_BOUND_S of the second signal with nothing of it left running and its task back
    in the queue; once its task ran, the stop cannot finish (the task runs an hour), so
    the second signal must kill: exit 1, the task handed back."""
    seed = int(os.environ.get("TASKER_SIGNALS_SEED") or random.randrange(2**32))
    print(f"seed {seed} (TASKER_SIGNALS_SEED={seed} runs the same trials)")
    rng = random.Random(seed)
    trials = [(n, PAIRS[n % len(PAIRS)], ANCHORS[n // len(PAIRS) % len(ANCHORS)],
               rng.uniform(0, 0.3), rng.uniform(0, 0.3), rng.choice((1, 2)))
              for n in range(200)]  # fmt: skip
    with ThreadPoolExecutor(4) as pool:  # 4 daemons at a time: 2 cores, mostly waiting
        results = list(pool.map(lambda t: _pair_trial(redis_url, tmp_path, *t), trials))
    seconds = sorted(r.seconds for r in results)
    ended = [r.ended for r in results]
    figures = {
        "seed": seed, "trials": len(results),
        **{name: ended.count(name) for name in ("killed", "stopped", "loading")},
        "task_ran": sum(r.task_ran for r in results),
        "seconds_median": seconds[len(seconds) // 2], "seconds_max": seconds[-1],
    }  # fmt: skip
    _report(figures)
    print(figures)
