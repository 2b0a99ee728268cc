"""Scaling out: one queue spread over the masters of a Redis Cluster.

    python benchmarks/scaling.py                        # 100,000 no-ops, 3 runs (~8 min)
    python benchmarks/scaling.py --runs 5 --json scaling.json --png docs/scaling.png
    python benchmarks/scaling.py --smoke                # tiny sizes, 1 run (~1 min)

Starts a plain redis-server and Redis Clusters of 1, 2 and 3 masters (no replicas; the
clusters the tests use, ``tests/topology.py``). On each, the queue ``scaling`` is spread
over as many sub-queues as there are masters (``SpreadProducer``, ``tasker-worker
--spread``), so that each master holds one. For each count of daemons (1, 2, 4; one
worker process each) it starts the daemons, waits until they are idle, queues the tasks
with ``enqueue_many`` and measures until every task is counted completed:

- **tasks/s**: tasks / seconds from the first enqueue to the last completion;
- **Redis CPU per task**: the user + system CPU time the masters spent in the run (from
  /proc), over the tasks, in microseconds: all masters added up, and the busiest one
  (medians over every run of a topology, whatever the daemons).
  One Redis runs on one core, so 1e6 / (busiest master's us per task) is the rate at
  which Redis itself runs out, whatever the workers: the ceiling that adding masters
  raises.

Runs are interleaved (run 1 of every topology and daemon count, then run 2, ...) and
the masters are flushed before each. The tables give medians; ``--json`` every run;
``--png`` draws both figures (needs matplotlib: ``pip install -e '.[bench]'``). Exit
code 1 if any run lost a task or a daemon died.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

# as run.py: import the package from the repository root, not from benchmarks/ itself
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis  # noqa: E402

from benchmarks.procs import WorkerGroup, tree_cpu_s  # noqa: E402
from benchmarks.redis_server import RedisServer  # noqa: E402
from benchmarks.systems.tasker import BENCH_SECRET, worker_command  # noqa: E402
from benchmarks.systems.tasker_app import noop  # noqa: E402
from tasker_dist import SpreadProducer  # noqa: E402
from tasker_dist.spread import sub_queues  # noqa: E402
from tasker_dist.store.keys import QueueKeys  # noqa: E402
from tests.topology import Cluster  # noqa: E402

QUEUE = "scaling"
_CHUNK = 1_000
_RUN_TIMEOUT_S = 300.0


@dataclass
class Topology:
    """Where the queue lives: ``masters`` Redis processes (0 for the plain server,
    which is one too, but not a cluster)."""

    name: str
    url: str
    masters: int
    pids: list[int]
    clients: list[redis.Redis]

    @property
    def spread(self) -> int:
        return max(self.masters, 1)


@dataclass
class Run:
    topology: str
    masters: int
    daemons: int
    run: int
    tasks: int
    seconds: float
    tasks_per_s: float
    redis_us_per_task: float
    busiest_master_us_per_task: float


@contextmanager
def _topologies(workdir: Path, masters: Sequence[int]) -> Iterator[list[Topology]]:
    with ExitStack() as stack:
        plain = stack.enter_context(RedisServer(workdir / "plain"))
        found = [Topology("one redis-server", plain.url, 0, [plain.pid], [plain.client])]
        for count in masters:
            cluster = Cluster.start(masters=count, replicas=0)
            stack.callback(cluster.stop)
            heads = cluster.nodes[:count]
            found.append(Topology(
                f"cluster, {count} master{'s' if count > 1 else ''}", cluster.url, count,
                [n.process.pid for n in heads if n.process is not None],
                [stack.enter_context(n.client()) for n in heads],
            ))  # fmt: skip
        yield found


def _completed(topology: Topology) -> tuple[int, int]:
    """(completed, failed) added up over the sub-queues, read from the master of each."""
    done = failed = 0
    for name in sub_queues(QUEUE, topology.spread):
        key = QueueKeys(name).counters
        for client in topology.clients:  # the one that holds it answers, the others MOVED
            try:
                counts = client.hmget(key, "completed", "failed")
            except redis.ResponseError:
                continue
            done += int(counts[0] or 0)
            failed += int(counts[1] or 0)
            break
    return done, failed


def _redis_cpu_s(topology: Topology) -> list[float]:
    return [tree_cpu_s([pid]) for pid in topology.pids]


def measure(topology: Topology, daemons: int, tasks: int, run: int, workdir: Path) -> Run:
    for client in topology.clients:
        client.flushall()
    spread = ["--queue", QUEUE, "--spread", str(topology.spread)]
    command = worker_command("config", topology.url, 1, *spread, "--log-level", "WARNING")
    env = {**os.environ, "TASKER_SECRET": BENCH_SECRET}
    log = workdir / f"workers-{topology.masters}-{daemons}-{run}.log"
    with WorkerGroup([command] * daemons, env, Path.cwd(), log) as group:
        busy = group.wait_idle()
        if busy is not None:
            print(f"warning: the daemons kept {busy:.2f} cores busy at start", file=sys.stderr)
        with SpreadProducer(topology.url, QUEUE, spread=topology.spread,
                            secret=BENCH_SECRET) as producer:  # fmt: skip
            before = _redis_cpu_s(topology)
            started = time.monotonic()
            producer.enqueue_many(noop, [()] * tasks, chunk=_CHUNK)
            deadline = started + _RUN_TIMEOUT_S
            while (counts := _completed(topology))[0] + counts[1] < tasks:
                group.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{counts[0]} of {tasks} tasks done after "
                                       f"{_RUN_TIMEOUT_S:.0f} s")  # fmt: skip
                time.sleep(0.01)
            seconds = time.monotonic() - started
            spent = [after - b for after, b in zip(_redis_cpu_s(topology), before, strict=True)]
    if counts != (tasks, 0):
        raise RuntimeError(f"{topology.name}, {daemons} daemons: {counts[0]} completed and "
                           f"{counts[1]} failed of {tasks} tasks")  # fmt: skip
    return Run(topology.name, topology.masters, daemons, run, tasks, round(seconds, 3),
               round(tasks / seconds, 1), round(sum(spent) / tasks * 1e6, 2),
               round(max(spent) / tasks * 1e6, 2))  # fmt: skip


def _median(runs: list[Run], topology: str, daemons: int | None, key: str) -> float:
    """The median of ``key`` over the runs of ``topology`` with ``daemons`` (None: all)."""
    median: float = statistics.median(getattr(r, key) for r in runs if r.topology == topology
                                      and daemons in (None, r.daemons))  # fmt: skip
    return median


def table(runs: list[Run], daemon_counts: Sequence[int]) -> str:
    topologies = list(dict.fromkeys(r.topology for r in runs))
    head = " | ".join(f"{d} daemon{'s' if d > 1 else ''}" for d in daemon_counts)
    lines = [f"| tasks/s (median) | {head} | Redis CPU us/task, all masters "
             "| busiest master | Redis alone could carry (tasks/s) |",
             "|---" * (len(daemon_counts) + 4) + "|"]  # fmt: skip
    for name in topologies:
        rates = " | ".join(f"{_median(runs, name, d, 'tasks_per_s'):,.0f}" for d in daemon_counts)
        total = _median(runs, name, None, "redis_us_per_task")
        busiest = _median(runs, name, None, "busiest_master_us_per_task")
        lines.append(f"| {name} | {rates} | {total:.1f} | {busiest:.1f} | {1e6 / busiest:,.0f} |")
    return "\n".join(lines)


def draw(runs: list[Run], daemon_counts: Sequence[int], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--png needs matplotlib: pip install -e '.[bench]'") from None
    topologies = list(dict.fromkeys(r.topology for r in runs))
    figure, (rates, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(daemon_counts)
    for i, daemons in enumerate(daemon_counts):
        values = [_median(runs, t, daemons, "tasks_per_s") for t in topologies]
        rates.bar([x + (i - (len(daemon_counts) - 1) / 2) * width for x in range(len(topologies))],
                  values, width, label=f"{daemons} daemon{'s' if daemons > 1 else ''}")  # fmt: skip
    rates.set_xticks(range(len(topologies)), topologies, fontsize=8)
    rates.set_ylabel("tasks/s (median)")
    rates.set_title("Throughput on this 2-core machine")
    rates.legend(fontsize=8)
    ceiling = [1e6 / _median(runs, t, None, "busiest_master_us_per_task") for t in topologies]
    cpu.bar(range(len(topologies)), ceiling, 0.6, color="tab:green")
    cpu.set_xticks(range(len(topologies)), topologies, fontsize=8)
    cpu.set_ylabel("tasks/s before the busiest master is at 100% CPU")
    cpu.set_title("What Redis itself could carry")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--daemons", default="1,2,4", help="daemon counts, comma-separated")
    parser.add_argument("--masters", default="1,2,3", help="cluster sizes, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="2,000 tasks, 1 run, 1 and 2 daemons")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--png", type=Path, help="draw the figures here (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.runs, args.daemons = 2_000, 1, "1,2"
    daemon_counts = [int(d) for d in args.daemons.split(",")]
    masters = [int(m) for m in args.masters.split(",")]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="tasker-scaling-") as tmp, \
            _topologies(Path(tmp), masters) as topologies:  # fmt: skip
        try:
            for run in range(1, args.runs + 1):
                for topology in topologies:
                    for daemons in daemon_counts:
                        result = measure(topology, daemons, args.tasks, run, Path(tmp))
                        runs.append(result)
                        print(f"run {run}: {topology.name}, {daemons} daemon(s): "
                              f"{result.tasks_per_s:,.0f} tasks/s", file=sys.stderr)  # fmt: skip
        except RuntimeError as exc:
            logs = sorted(Path(tmp).glob("workers-*.log"), key=lambda p: p.stat().st_mtime)
            tail = logs[-1].read_text(errors="replace")[-3000:] if logs else ""
            print(f"scaling: {exc}\n{tail}", file=sys.stderr)
            return 1
    print(table(runs, daemon_counts))
    if args.json:
        meta = {"tasks": args.tasks, "runs": args.runs, "cpus": os.cpu_count()}
        args.json.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]},
                                        indent=1))  # fmt: skip
    if args.png:
        draw(runs, daemon_counts, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
