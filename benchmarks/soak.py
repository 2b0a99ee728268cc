"""Soak: a million tasks through two tasker-worker daemons, watching for leaks.

    python benchmarks/soak.py                       # 1,000,000 no-ops, about a minute
    python benchmarks/soak.py --tasks 100000 --json soak.json

Starts a redis-server and two ``tasker-worker benchmarks.systems.tasker_app:soak_config``
daemons (one process each, signing on, results kept ``--result-ttl``, 15 s), then one
producer queues the tasks in batches of 1,000, keeping at most ``--backlog`` queued, so
the run is a steady flow rather than one drain. Every second it samples each daemon's
resident memory (its whole process tree), Redis's ``used_memory``, and every structure
that holds tasks in flight: the pending and priority lanes, the envelopes, retry and
delivery hashes, the workers' held hashes, the failed store. When every result is
written it waits for them to expire and reports, as a table:

- daemon RSS once warmed up (after the first 20% of the tasks), its largest since, and
  at the end;
- Redis ``used_memory`` before the first task, at its peak, and once the results expired;
- the largest size each in-flight structure reached, and its size at the end (0).

``--write-readme`` puts the table in benchmarks/README.md. Exit code 1 if a task was lost
(fewer completions than tasks), anything is left in flight at the end, or Redis's memory
did not come back to within 1 MiB of where it started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# as run.py: import the package from the repository root, not from benchmarks/ itself
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis  # noqa: E402

from benchmarks.procs import WorkerGroup, tree_pids, tree_rss_bytes  # noqa: E402
from benchmarks.redis_server import RedisServer  # noqa: E402
from benchmarks.systems.tasker import BENCH_SECRET, worker_command  # noqa: E402
from benchmarks.systems.tasker_app import SOAK_RESULT_TTL_ENV, noop  # noqa: E402
from tasker_dist import Producer  # noqa: E402
from tasker_dist.store.keys import QueueKeys  # noqa: E402

_MIB = 1024 * 1024
_BATCH = 1_000
_MEMORY_SLACK = _MIB  # "back to where it started": within this of the starting used_memory


@dataclass
class Sample:
    t_s: float
    queued: int
    completed: int
    rss_mib: list[float]
    used_memory_mib: float
    in_flight: dict[str, int]


@dataclass
class Soak:
    tasks: int
    result_ttl_s: float
    samples: list[Sample] = field(default_factory=list)
    start_memory_mib: float = 0.0
    end_memory_mib: float = 0.0
    drain_s: float = 0.0
    expire_s: float = 0.0
    completed: int = 0


def _in_flight(client: redis.Redis, keys: QueueKeys) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(keys.pending)
        pipe.llen(keys.priority)
        pipe.hlen(keys.tasks)
        pipe.hlen(keys.retries)
        pipe.hlen(keys.deliveries)
        pipe.hlen(keys.failed)
        pipe.zrange(keys.workers, 0, -1)
        pending, priority, tasks, retries, deliveries, failed, workers = pipe.execute()
    held = sum(int(client.hlen(keys.held(w.decode()))) for w in workers)
    return {
        "pending lane": pending, "priority lane": priority, "envelopes": tasks,
        "retry counts": retries, "delivery counts": deliveries, "held (all workers)": held,
        "failed store": failed,
    }  # fmt: skip


def _completed(client: redis.Redis, keys: QueueKeys) -> int:
    return int(client.hget(keys.counters, "completed") or 0)


def _sampler(
    soak: Soak, client: redis.Redis, keys: QueueKeys, group: WorkerGroup,
    queued: list[int], stop: threading.Event, started: float,
) -> None:  # fmt: skip
    sampler_client = redis.Redis(connection_pool=client.connection_pool)
    while not stop.wait(1.0):
        soak.samples.append(
            Sample(
                t_s=round(time.monotonic() - started, 2),
                queued=queued[0],
                completed=_completed(sampler_client, keys),
                rss_mib=[round(tree_rss_bytes(tree_pids([r])) / _MIB, 1) for r in group.roots],
                used_memory_mib=round(_used_memory_mib(sampler_client), 2),
                in_flight=_in_flight(sampler_client, keys),
            )
        )


def run(tasks: int, backlog: int, result_ttl_s: float, workdir: Path) -> Soak:
    soak = Soak(tasks, result_ttl_s)
    with RedisServer(workdir / "redis") as server, Producer(
        server.url, secret=BENCH_SECRET
    ) as producer:  # fmt: skip
        client = server.client
        keys = QueueKeys(producer.queue)
        command = worker_command("soak_config", server.url, 1, "--log-level", "WARNING")
        env = {**os.environ, "TASKER_SECRET": BENCH_SECRET, SOAK_RESULT_TTL_ENV: str(result_ttl_s)}
        with WorkerGroup([command, command], env, Path.cwd(), workdir / "workers.log") as group:
            deadline = time.monotonic() + 30
            while client.zcard(keys.workers) < 2:  # both registered (and scripts loaded)
                group.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemons did not register within 30 s")
                time.sleep(0.05)
            producer.queue_task(noop)  # one round trip: the producer's scripts are loaded too
            time.sleep(result_ttl_s + 1)  # its result gone: the baseline is clean
            soak.start_memory_mib = _used_memory_mib(client)
            client.hdel(keys.counters, "completed")
            queued = [0]
            stop = threading.Event()
            started = time.monotonic()
            sampler = threading.Thread(
                target=_sampler, args=(soak, client, keys, group, queued, stop, started),
                daemon=True,
            )  # fmt: skip
            sampler.start()
            try:
                while queued[0] < tasks:
                    group.check_alive()
                    if client.llen(keys.pending) > backlog:
                        time.sleep(0.005)
                        continue
                    n = min(_BATCH, tasks - queued[0])
                    producer.enqueue_many(noop, [()] * n)
                    queued[0] += n
                while (completed := _completed(client, keys)) < tasks:
                    group.check_alive()
                    if time.monotonic() - started > 3600:
                        break
                    time.sleep(0.05)
                soak.completed = completed
                soak.drain_s = time.monotonic() - started
                # Redis expires keys in the background: wait for its memory to come back
                # (or a generous deadline: not coming back is the failure this looks for)
                give_up = time.monotonic() + 3 * result_ttl_s + 30
                while _used_memory_mib(client) > soak.start_memory_mib + _MEMORY_SLACK / _MIB:
                    if time.monotonic() > give_up:
                        break
                    time.sleep(0.25)
                time.sleep(2.0)  # two more samples at rest
                soak.expire_s = time.monotonic() - started - soak.drain_s
            finally:
                stop.set()
                sampler.join()
            soak.end_memory_mib = _used_memory_mib(client)
    return soak


def _used_memory_mib(client: redis.Redis) -> float:
    return int(client.info("memory")["used_memory"]) / _MIB


def report(soak: Soak) -> tuple[str, bool]:
    samples = soak.samples
    warm_at = next((i for i, s in enumerate(samples) if s.completed >= soak.tasks // 5), 0)
    warm = samples[warm_at]
    most = [max(s.rss_mib[i] for s in samples[warm_at:]) for i in range(len(warm.rss_mib))]
    last = samples[-1]
    peak_memory = max(s.used_memory_mib for s in samples)
    lines = [
        f"{soak.tasks:,} no-op tasks, 2 daemons x 1 process, results kept "
        f"{soak.result_ttl_s:g} s: all completed in {soak.drain_s:.1f} s "
        f"({soak.tasks / soak.drain_s:,.0f} tasks/s: the pace of the one producer, since "
        f"never more than {max(s.in_flight['pending lane'] for s in samples):,} waited), "
        f"results expired {soak.expire_s:.1f} s later.",
        "",
        "| | warmed up (20% of the tasks done) | largest since | at the end |",
        "|---|---|---|---|",
        *(
            f"| daemon {i + 1} RSS (MiB) | {warm.rss_mib[i]:.1f} | {most[i]:.1f} "
            f"| {last.rss_mib[i]:.1f} |"
            for i in range(len(last.rss_mib))
        ),
        "",
        "| Redis used_memory (MiB) | before the first task | peak | once results expired |",
        "|---|---|---|---|",
        f"| | {soak.start_memory_mib:.2f} | {peak_memory:.2f} | {soak.end_memory_mib:.2f} |",
        "",
        "| in-flight structure | largest seen | at the end |",
        "|---|---|---|",
        *(
            f"| {name} | {max(s.in_flight[name] for s in samples):,} | {last.in_flight[name]:,} |"
            for name in last.in_flight
        ),
    ]
    lost = soak.tasks - soak.completed
    leftover = sum(last.in_flight.values())
    grown = soak.end_memory_mib - soak.start_memory_mib
    ok = lost == 0 and leftover == 0 and grown * _MIB <= _MEMORY_SLACK
    lines += ["", f"lost: {lost}; left in flight: {leftover}; Redis memory "
              f"{'+' if grown >= 0 else ''}{grown:.2f} MiB against the start: "
              f"{'OK' if ok else 'FAILED'}"]  # fmt: skip
    return "\n".join(lines), ok


_README = Path(__file__).resolve().parent / "README.md"
_BEGIN, _END = "<!-- soak:begin -->", "<!-- soak:end -->"


def _write_readme(text: str) -> None:
    readme = _README.read_text()
    head, _, rest = readme.partition(_BEGIN)
    _, _, tail = rest.partition(_END)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:])
    _README.write_text(
        f"{head}{_BEGIN}\nCommand: `{command.strip()}` ({when}).\n\n{text}\n{_END}{tail}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--backlog", type=int, default=50_000, help="most tasks queued at once")
    p.add_argument("--result-ttl", type=float, default=15.0, help="seconds results are kept")
    p.add_argument("--json", type=Path, help="also write every sample here")
    p.add_argument(
        "--write-readme", action="store_true", help="put the table in benchmarks/README.md"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tasker-soak-") as tmp:
        soak = run(args.tasks, args.backlog, args.result_ttl, Path(tmp))
    text, ok = report(soak)
    print(text)
    if args.write_readme:
        _write_readme(text)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(soak), indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
