"""Profile one tasker-dist worker process draining no-op tasks, with py-spy.

    python benchmarks/profile_worker.py                    # 200,000 tasks, 1 worker process
    python benchmarks/profile_worker.py --tasks 500000 --out /tmp/w.txt
    python benchmarks/profile_worker.py --no-spy --processes 2   # CPU per task, undisturbed

Queues ``--tasks`` no-ops (the W1 task, signed), starts ``tasker-worker ... --processes 1``
under ``py-spy record --subprocesses --idle`` (wall-clock samples, idle threads
included, so time spent waiting on Redis shows; ``--cpu-only``: on-CPU samples only),
waits until the queue is drained, stops the worker, and prints where the worker
process's threads spend their samples: per thread, the share of each function (self
time, then inclusive). The collapsed stacks are kept in ``--out`` for flame graphs
(``flamegraph.pl``, speedscope). Needs ``py-spy`` on PATH (``pip install py-spy``) and
permission to ptrace its children (root, or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# as run.py: import the package from the repository root, not from benchmarks/ itself
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis  # noqa: E402

from benchmarks.procs import tree_cpu_s, tree_pids  # noqa: E402
from benchmarks.redis_server import RedisServer  # noqa: E402
from benchmarks.systems.tasker import BENCH_SECRET, worker_command  # noqa: E402
from benchmarks.systems.tasker_app import noop  # noqa: E402
from tasker_dist import Producer  # noqa: E402
from tasker_dist.store.keys import QueueKeys  # noqa: E402


def _main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--out", type=Path, default=Path("profile-worker.txt"))
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25, help="functions shown per thread")
    p.add_argument(
        "--cpu-only", action="store_true", help="on-CPU samples only (no --idle): where CPU goes"
    )
    p.add_argument(
        "--no-spy", action="store_true", help="no py-spy: only the CPU cost per task, undisturbed"
    )
    args = p.parse_args()
    if not args.no_spy and shutil.which("py-spy") is None:
        print("profile_worker.py: py-spy is not on PATH (pip install py-spy)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="tasker-profile-") as tmp,
        RedisServer(Path(tmp) / "redis") as server,
    ):
        with Producer(server.url, secret=BENCH_SECRET) as producer:
            for start in range(0, args.tasks, 10_000):
                producer.enqueue_many(noop, [()] * min(10_000, args.tasks - start))
        client = server.client
        pending = QueueKeys(producer.queue).pending
        worker = worker_command("config", server.url, args.processes, "--log-level", "WARNING")
        # --nonblocking: py-spy does not pause the worker to sample it. Pausing (ptrace)
        # sometimes swallowed the SIGTERM that ends the run, leaving the worker running.
        spy = [] if args.no_spy else [
            "py-spy", "record", "--subprocesses", "--threads", "--format", "raw", "--nonblocking",
            *([] if args.cpu_only else ["--idle"]),
            "--rate", str(args.rate), "--output", str(args.out), "--",
        ]  # fmt: skip
        redis_cpu = _redis_cpu_s(client)
        proc = subprocess.Popen([*spy, *worker], env={**os.environ, "TASKER_SECRET": BENCH_SECRET})
        started = time.monotonic()
        first: float | None = None
        deadline = started + 600
        while client.llen(pending) > 0 or client.dbsize() < args.tasks:
            if first is None and client.llen(pending) < args.tasks:
                first = time.monotonic()
            if time.monotonic() > deadline or proc.poll() is not None:
                print("profile_worker.py: the worker did not drain the queue", file=sys.stderr)
                proc.kill()
                return 1
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        redis_cpu = _redis_cpu_s(client) - redis_cpu
        workers = tree_pids([proc.pid]) - {proc.pid} if spy else tree_pids([proc.pid])
        worker_cpu = tree_cpu_s(workers)
        _stop(proc.pid, under_spy=bool(spy))
        proc.wait(60)
    n = args.tasks
    since_first = started + elapsed - (first or started)
    print(f"{n:,} tasks, {args.processes} worker process(es): drained in {elapsed:.2f} s from "
          f"worker start ({n / elapsed:,.0f}/s), {n / since_first:,.0f}/s from the first "
          f"fetch{'; py-spy slows the worker' if spy else ''}")  # fmt: skip
    print(f"CPU per task: Redis {redis_cpu / n * 1e6:.1f} us, worker processes "
          f"{worker_cpu / n * 1e6:.1f} us (with their start-up)")  # fmt: skip
    if spy:
        _summarise(args.out, args.top)
    return 0


def _redis_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _stop(pid: int, under_spy: bool) -> None:
    """SIGTERM the tasker-worker (under py-spy: its child; py-spy then writes its output
    and exits)."""
    if not under_spy:
        os.kill(pid, signal.SIGTERM)
        return
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        os.kill(int(child), signal.SIGTERM)


def _summarise(path: Path, top: int) -> None:
    """Per thread of the busiest process: self and inclusive shares of its functions."""
    by_process: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    stacks: list[tuple[str, str, list[str], int]] = []
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        # with --subprocesses a child's stack starts with its parents' "process" frames
        at = next(i for i, f in enumerate(frames) if f.startswith("thread ("))
        process, thread = frames[at - 1], frames[at]
        stacks.append((process, thread, frames[at + 1 :], int(samples)))
        by_process[process][thread] += int(samples)
    busiest = max(by_process, key=lambda k: sum(by_process[k].values()))
    print(f"process: {busiest[:120]}")
    for thread, total in by_process[busiest].most_common():
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        for process, t, frames, count in stacks:
            if process != busiest or t != thread or not frames:
                continue
            own[_short(frames[-1])] += count
            for name in {_short(f) for f in frames}:
                inclusive[name] += count
        print(f"\n{thread}: {total} samples")
        print("  self %   incl %  function")
        for name, within in inclusive.most_common(top):
            print(f"  {100 * own[name] / total:6.1f}  {100 * within / total:6.1f}  {name}")


def _short(frame: str) -> str:
    """``fn (path/to/module.py:12)`` as ``fn (module.py)``: lines split one function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').rsplit(':', 1)[0]).name})"


if __name__ == "__main__":
    sys.exit(_main())
