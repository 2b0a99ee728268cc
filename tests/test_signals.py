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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasker_dist import Producer
from tasker_dist.parent_death import spawn
from tasker_dist.store.embedded_server import EmbeddedServer

from . import tasks
from .conftest import (
    ROOT,
    TAG_ENV,
    TASKER_BIN,
    WORKER_BIN,
    ChildProcess,
    catches,
    pending,
    tagged,
    temp_dirs_of,
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
            loading = not caught and (code < 0 or "KeyboardInterrupt" in out)
            if loading:
                # the first came while Python was still loading the program, before the
                # daemon had handlers: the default action (or KeyboardInterrupt) ended it;
                # raised while Python reads the script, before its first line runs, the
                # KeyboardInterrupt comes without a traceback (status 1)
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


@pytest.mark.slow
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


#: How a test ends `tasker demo` / `tasker server`: Ctrl-C in their terminal (SIGINT to
#: the whole foreground process group), ``kill``, the terminal closing, ``kill -9``.
ENDINGS = ("SIGINT to its group", "SIGTERM", "SIGHUP", "SIGKILL")
GONE_S = 10.0  # from the signal to the exit, and to nothing it started being left


class _Command:
    """``tasker <args>`` in a session of its own (so SIGINT to its group is what a
    terminal's Ctrl-C does), its output in a file, everything it starts tagged."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        self.tag = uuid.uuid4().hex
        self.log = tmp_path / "output"
        self.began = time.time()
        with open(self.log, "wb") as log:
            env = {**os.environ, TAG_ENV: self.tag}
            self.proc = spawn([TASKER_BIN, *args], stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env)  # fmt: skip

    def kill_all(self) -> None:
        """SIGKILL to it and everything it started (after a test that failed)."""
        for pid in tagged(self.tag) | {self.proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str) -> None:
        wait_until(lambda: text in self.output() or self.proc.poll() is not None,
                   timeout=60, message=repr(text))  # fmt: skip
        assert text in self.output(), self.output()

    def wait_for_handlers(self) -> None:
        """Until it handles SIGHUP (Python does not): before, a signal's default action
        ends it while Python still loads, before it has started anything."""
        wait_until(lambda: catches(self.proc.pid, signal.SIGHUP), timeout=30,
                   message="its signal handlers")  # fmt: skip

    def end(self, how: str) -> float:
        """End it ``how`` (one of ENDINGS); returns when the signal was sent."""
        if how == "SIGINT to its group":
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.Signals[how])
        return time.monotonic()

    def assert_all_gone(self, how: str, sent: float, status: int) -> float:
        """It exits with ``status`` (-9 for SIGKILL) within GONE_S of the signal, with
        nothing it started still running and its temporary directory removed (after a
        SIGKILL: by the next start of a private server). Returns the seconds from the
        signal until nothing it started was running."""
        pid = self.proc.pid
        try:
            code = self.proc.wait(GONE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GONE_S} s after {how}:\n{self.output()}")
        if how == "SIGKILL":
            assert code == -signal.SIGKILL
            wait_until(lambda: not tagged(self.tag), timeout=GONE_S - (time.monotonic() - sent),
                       interval=0.001, message="what it started to die with it")  # fmt: skip
            took = time.monotonic() - sent
            EmbeddedServer.start().stop()  # removes directories their owners left
        else:
            took = time.monotonic() - sent
            assert code == status, self.output()
            assert not tagged(self.tag), f"left running after {how}:\n{self.output()}"
        assert temp_dirs_of(pid, since=self.began) == []
        return took


@pytest.fixture
def tasker(tmp_path: Path) -> Iterator[Callable[..., _Command]]:
    """Start ``tasker <args>`` as a `_Command`; whatever is left is killed afterwards."""
    started: list[_Command] = []

    def start(*args: str) -> _Command:
        started.append(_Command(list(args), tmp_path))
        return started[-1]

    yield start
    for command in started:
        command.kill_all()


@pytest.mark.parametrize("moment", ["starting", "running"])
@pytest.mark.parametrize("how", ENDINGS)
def test_the_demo_ends_everything_it_started_on_any_ending_signal(
    how: str, moment: str, tasker: Callable[..., _Command]
) -> None:
    """At a random moment of its start-up (server and daemons starting) or of its run:
    everything it started (server, daemons, their worker processes) is gone when it
    exits, within GONE_S, its daemons stopped gracefully, its directory removed."""
    demo = tasker("demo", "--tasks", "1000000")
    if moment == "starting":
        demo.wait_for_handlers()
    else:
        demo.wait_for_output("daemons up")
    time.sleep(random.uniform(0, 1.0))  # the moment is the thing under test
    sent = demo.end(how)
    signum = signal.SIGINT if how == "SIGINT to its group" else signal.Signals[how]
    took = demo.assert_all_gone(how, sent, 128 + signum)
    out = demo.output()
    if how != "SIGKILL" and moment == "running":  # starting, a daemon may be loading yet
        assert "daemons stopped (exit codes [0, 0])" in out, out
    _report({"program": "demo", "how": how, "moment": moment, "seconds": took})


@pytest.mark.parametrize("moment", ["starting", "serving"])
@pytest.mark.parametrize("how", ENDINGS)
def test_tasker_server_ends_its_server_on_any_ending_signal(
    how: str, moment: str, tasker: Callable[..., _Command]
) -> None:
    """At a random moment while its server starts, or while it serves: the server it
    started is gone when it exits 0, within GONE_S, and its directory removed."""
    server = tasker("server")
    if moment == "starting":
        server.wait_for_handlers()
    else:
        server.wait_for_output("redis://")
    time.sleep(random.uniform(0, 0.3))  # the moment is the thing under test
    sent = server.end(how)
    took = server.assert_all_gone(how, sent, 0)
    _report({"program": "server", "how": how, "moment": moment, "seconds": took})
