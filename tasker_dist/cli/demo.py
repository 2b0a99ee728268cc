"""``tasker demo``: the whole system on one machine, in one command.

Starts a private Redis-compatible server, several ``tasker-worker`` daemons, and producer
threads that queue a few thousand tasks; shows a live progress bar with cluster stats;
then stops the daemons with SIGTERM, stops the server and removes every temp file.
`SIGNALS` (which ``tasker demo --help`` prints) says what ends it early, and how.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..client import Producer
from ..metrics import Metrics, Stats
from ..parent_death import spawn
from ..signals import ENDING_SIGNALS, SignalInbox
from ..store import EmbeddedServer
from .demo_tasks import price_order

__all__ = ["SIGNALS", "DemoOptions", "run_demo"]

QUEUE = "demo"
_STOP_S = 15.0  # how long the daemons get to stop before they are killed

SIGNALS = """\
SIGINT (Ctrl-C), SIGTERM or SIGHUP ends the demo early the same way: the producers
stop, the daemons get SIGTERM (a graceful stop), then the server stops and the
temporary directory is removed; exit status 128 + the signal. Another of them
meanwhile kills the daemons at once. If the demo itself is killed (SIGKILL), every
process it started dies with it; its temporary directory (the server's, holding the
daemons' logs) is then removed by the next start of a private server.
"""


@dataclass(frozen=True)
class DemoOptions:
    tasks: int = 4000
    workers: int = 2
    producers: int = 2
    slots: int = 4


def _start_workers(
    url: str, secret: str, options: DemoOptions, logdir: str
) -> list[subprocess.Popen[bytes]]:
    env = {
        "TASKER_SECRET": secret,
        **os.environ,
        "TASKER_DEMO_SLOTS": str(options.slots),
        "TASKER_DEMO_MAX_SLOTS": str(options.slots * 2),
    }
    procs = []
    for i in range(options.workers):
        log = open(os.path.join(logdir, f"worker-{i}.log"), "wb")  # noqa: SIM115
        # A terminal's Ctrl-C reaches the demo only, which stops them before the server
        # they use; they die with the demo (and their worker processes with them).
        procs.append(spawn(
            [sys.executable, "-m", "tasker_dist.worker", "tasker_dist.cli.demo_tasks:config",
             "--redis-url", url, "--queue", QUEUE], signal.SIGKILL,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        ))  # fmt: skip
        log.close()  # the child keeps its own descriptor
    return procs


def _stop_workers(workers: list[subprocess.Popen[bytes]], signals: SignalInbox) -> list[int]:
    """SIGTERM to each daemon (a graceful stop); SIGKILL to those still running if a
    signal comes meanwhile, or after ``_STOP_S``. Returns their exit codes."""
    seen = signals.count
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_S
    while any(w.poll() is None for w in workers):
        if signals.count > seen or time.monotonic() > deadline:
            for w in workers:
                w.kill()
        signals.wait(0.05)
    return [w.wait() for w in workers]


def _produce(
    url: str, secret: str, first: int, count: int, errors: list[BaseException],
    stop: threading.Event,
) -> None:  # fmt: skip
    """One producer: queue ``count`` orders in small batches, a few on the priority lane."""
    try:
        with Producer(url, QUEUE, secret=secret) as producer:
            batch = 100
            for start in range(first, first + count, batch):
                size = min(batch, first + count - start)
                orders = [(n,) for n in range(start, start + size)]
                producer.enqueue_many(price_order, orders, priority=start % 1000 == 0)
                if stop.wait(0.02):  # a steady stream, as from a web app, not one burst
                    return
    except BaseException as exc:
        errors.append(exc)


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return "#" * filled + "." * (width - filled)


def _line(total: int, stats: Stats, m: Metrics) -> str:
    done = m.total_tasks_completed + m.total_tasks_failed
    return (
        f"[{_bar(done, total)}] {done:>5}/{total} {100 * done // max(total, 1):>3}%  "
        f"daemons {len(stats.workers)} slots {stats.active_workers:>2}  "
        f"queued {stats.queued_tasks + stats.priority_tasks:>5}  "
        f"running {stats.running_tasks:>2}  ok {m.total_tasks_completed:>5}  "
        f"failed {m.total_tasks_failed:>3}  p95 {m.p95_execution_time * 1000:5.1f} ms  "
        f"{m.task_completion_rate:6.0f}/s"
    )


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Returns the exit status: 0, 1 if something failed, 128 + the signal that ended
    it early."""
    with SignalInbox(ENDING_SIGNALS) as signals:
        with EmbeddedServer.start() as server:
            code = _run(options, server, signals, out)
        # also a signal that came during the clean-up: the user cut the demo short
        return 128 + signals.received[0] if signals.count else code


def _run(options: DemoOptions, server: EmbeddedServer, signals: SignalInbox, out: TextIO) -> int:
    tty = out.isatty()
    secret = secrets.token_hex(32)  # a private cluster: its own signing secret
    print(f"Redis-compatible server on {server.url}", file=out)
    workers: list[subprocess.Popen[bytes]] = []
    producers: list[threading.Thread] = []
    stop = threading.Event()
    try:
        workers.extend(_start_workers(server.url, secret, options, server.workdir))
        with Producer(server.url, QUEUE, secret=secret) as monitor:
            deadline = time.monotonic() + 30
            while len(monitor.stats().workers) < options.workers and not signals.count:
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    print("workers did not start; see their logs:", file=out)
                    for path in sorted(Path(server.workdir).glob("worker-*.log")):
                        print(path.read_text(errors="replace"), file=out)
                    return 1
                signals.wait(0.05)
            if signals.count:
                return _interrupted(signals, out)
            print(
                f"{options.workers} tasker-worker daemons up; {options.producers} producers "
                f"queueing {options.tasks} tasks",
                file=out,
            )
            errors: list[BaseException] = []
            share = options.tasks // options.producers
            producers.extend(
                threading.Thread(target=_produce, args=(
                    server.url, secret, i * share,
                    share if i < options.producers - 1 else options.tasks - i * share,
                    errors, stop))
                for i in range(options.producers)
            )  # fmt: skip
            for t in producers:
                t.start()
            last_print = 0.0
            while True:
                stats, metrics = monitor.stats(), monitor.metrics()
                done = metrics.total_tasks_completed + metrics.total_tasks_failed
                now = time.monotonic()
                if tty:
                    out.write("\r" + _line(options.tasks, stats, metrics))
                    out.flush()
                elif now - last_print >= 1.0 or done >= options.tasks:
                    print(_line(options.tasks, stats, metrics), file=out)
                    last_print = now
                if done >= options.tasks or errors or signals.count:
                    break
                signals.wait(0.2)
            if tty:
                out.write("\n")
            if signals.count:
                return _interrupted(signals, out)
            if errors:
                print(f"a producer failed: {errors[0]!r}", file=out)
                return 1
            m = monitor.metrics()
            print(
                f"done: {m.total_tasks_completed} completed, {m.total_tasks_failed} failed "
                f"(by design, 1 in 200), p50 {m.p50_execution_time * 1000:.1f} ms, "
                f"p99 {m.p99_execution_time * 1000:.1f} ms, "
                f"average wait {m.average_wait_time * 1000:.1f} ms",
                file=out,
            )
            return 0
    finally:
        stop.set()
        for t in producers:
            t.join()
        codes = _stop_workers(workers, signals)
        if workers:
            print(f"daemons stopped (exit codes {codes}); stopping the server", file=out)


def _interrupted(signals: SignalInbox, out: TextIO) -> int:
    print(f"{signal.Signals(signals.received[0]).name}: stopping the daemons and the server",
          file=out)  # fmt: skip
    return 1  # run_demo turns it into 128 + the signal
