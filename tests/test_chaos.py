"""Nothing lost, nothing run twice while its worker lives (SPEC §7), under real faults.

The chaos soak SIGKILLs `tasker-worker` daemons every second (starting replacements) and
freezes one past its lease with SIGSTOP; a second test restarts Redis (AOF) mid-run.
Every task logs each execution to a ledger, so re-runs can be traced to the daemon that
was killed or frozen while running them. Set $TASKER_CHAOS_REPORT to a file to get the
figures as JSON (the README's "Guarantees" section quotes them).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tasker_dist import Producer, TaskLost
from tasker_dist.store.embedded_server import EmbeddedServer
from tasker_dist.store.keys import QueueKeys

from . import tasks
from .conftest import ChildProcess, report, wait_until

DAEMON_ENV = {"TASKER_TEST_WORKERS": "2", "TASKER_TEST_HEARTBEAT": "0.2",
              "TASKER_TEST_KILL_GRACE": "0.5"}  # fmt: skip
TASKS = 500
REPORT = "TASKER_CHAOS_REPORT"


def _ledger(path: Path) -> dict[int, list[int]]:
    """Task number -> pids of the worker processes that ran it, one entry per run."""
    runs: dict[int, list[int]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            n, pid = line.split()
            runs[int(n)].append(int(pid))
    return runs


def _assert_nothing_left_behind(client: redis.Redis, queue: str) -> None:
    """Per-task bookkeeping is gone and every per-task key expires."""
    keys = QueueKeys(queue)
    for key in (keys.tasks, keys.pending, keys.priority, keys.retries, keys.deliveries):
        assert not client.exists(key), key
    for key in client.scan_iter(match=f"{keys.tag}:*"):
        name = key.decode()
        assert ":held:" not in name, name
        if ":result:" in name or ":worker:" in name or ":dead:" in name:
            assert client.pttl(key) > 0, f"{name} has no TTL"


def test_chaos_soak_no_task_lost_none_run_twice_by_a_live_worker(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str,
    raw_redis: redis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    rng = random.Random(7)
    ledger = tmp_path / "ledger"
    daemons = [start_worker(env=DAEMON_ENV) for _ in range(3)]
    with Producer(redis_url, queue) as producer:
        wait_until(lambda: len(producer.stats().workers) == 3, message="3 daemons")
        start = time.monotonic()
        ids = producer.enqueue_many(
            tasks.ledger_task, [(str(ledger), n, rng.uniform(0.05, 0.15)) for n in range(TASKS)]
        )
        doomed: set[int] = set()  # worker processes killed or frozen while serving
        kills = 0
        frozen = False

        def all_done() -> bool:
            return producer.metrics().total_tasks_completed >= TASKS

        def pause(seconds: float) -> None:
            """The pace of the faults, cut short once every task is done."""
            end = time.monotonic() + seconds
            wait_until(lambda: time.monotonic() >= end or all_done(), timeout=seconds + 5,
                       interval=0.05, message="the next fault")  # fmt: skip

        while not all_done() and time.monotonic() - start < 60:
            pause(rng.uniform(0.7, 1.2))
            if all_done():
                break
            live = [d for d in daemons if d.proc.poll() is None]
            if not frozen and kills == 2:
                victim = rng.choice(live)
                [child] = victim.worker_pids()
                doomed.add(child)
                os.kill(child, signal.SIGSTOP)  # frozen past its lease (2 s) ...
                time.sleep(3)
                os.kill(child, signal.SIGCONT)  # ... then back, to find its tasks gone
                frozen = True
                continue
            victim = rng.choice(live)
            doomed |= victim.worker_pids()
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            daemons.append(start_worker(env=DAEMON_ENV))
        results = [producer.result(task_id, timeout=30) for task_id in ids]
        settled = time.monotonic() - start
        metrics = producer.metrics()

    assert results == list(range(TASKS))  # every task has its one result
    runs = _ledger(ledger)
    assert set(runs) == set(range(TASKS))
    reruns = {n: pids for n, pids in runs.items() if len(pids) > 1}
    for n, pids in reruns.items():
        # every run but one was on a worker that was killed or frozen while running it
        assert sum(1 for pid in pids if pid not in doomed) <= 1, (n, pids, doomed)
    assert metrics.total_tasks_completed == TASKS
    assert metrics.total_tasks_failed == 0
    assert kills >= 3
    assert frozen
    for d in daemons:  # all at once, then each waited for
        d.terminate()
    for d in daemons:
        d.stop()
    _assert_nothing_left_behind(raw_redis, queue)
    report(REPORT, {"test": "chaos", "tasks": TASKS, "daemons": 3, "sigkills": kills,
                    "sigstops": 1, "reruns": sum(len(p) - 1 for p in reruns.values()),
                    "tasks_rerun": len(reruns),
                    "seconds_to_settle": round(settled, 1)})  # fmt: skip


def test_redis_restart_with_aof_mid_run(
    start_worker: Callable[..., ChildProcess], queue: str, tmp_path: Path
) -> None:
    server = EmbeddedServer.start(("--appendonly", "yes", "--appendfsync", "always"))
    ledger = tmp_path / "ledger"
    try:
        env = {**DAEMON_ENV}
        daemons = [start_worker("tests.tasks:config", "--redis-url", server.url, env=env)
                   for _ in range(2)]  # fmt: skip
        with Producer(server.url, queue) as producer:
            wait_until(lambda: len(producer.stats().workers) == 2, message="2 daemons")
            start = time.monotonic()
            ids = producer.enqueue_many(
                tasks.ledger_task, [(str(ledger), n, 0.02) for n in range(200)]
            )
            wait_until(
                lambda: producer.metrics().total_tasks_completed >= 50,
                message="the run to be under way",
            )
            server.restart()  # a crash, then Redis comes back from its AOF
            results = [producer.result(task_id, timeout=60) for task_id in ids]
            settled = time.monotonic() - start
            assert results == list(range(200))
            assert all(d.proc.poll() is None for d in daemons)  # they rode it out
            assert producer.queue_task(lambda ctx, r: "after") == "after"
        runs = _ledger(ledger)
        assert set(runs) == set(range(200))
        for d in daemons:
            d.stop()
            assert d.proc.returncode == 0
        report(REPORT, {"test": "redis_restart", "tasks": 200,
                        "reruns": sum(len(p) - 1 for p in runs.values()),
                        "seconds_to_settle": round(settled, 1)})  # fmt: skip
    finally:
        server.stop()


def test_redis_restart_without_its_data_leaves_nobody_waiting(
    start_worker: Callable[..., ChildProcess], queue: str
) -> None:
    """Redis comes back empty mid-run: every caller still waiting gets `TaskLost` (the
    listener checks, once back, that each awaited task still exists), none waits on, and
    the daemons serve new tasks."""
    server = EmbeddedServer.start()  # no persistence
    try:
        for _ in range(2):
            start_worker("tests.tasks:config", "--redis-url", server.url, env={**DAEMON_ENV})
        with Producer(server.url, queue) as producer:
            wait_until(lambda: len(producer.stats().workers) == 2, message="2 daemons")
            futures = [producer.queue_task_async(tasks.sleep_then, 0.02, n) for n in range(600)]
            with ThreadPoolExecutor(20) as callers:
                blocking = [callers.submit(producer.queue_task, tasks.sleep_then, 0.02, -n)
                            for n in range(20)]  # fmt: skip
                # Every call queued (a call still queueing when Redis dies gets
                # RedisUnavailable: it is told, but it is not what this test is about).
                wait_until(
                    lambda: (
                        producer.metrics().total_tasks_arrived == 620
                        and sum(f.done() for f in futures) >= 50
                    ),
                    message="every call queued and the run under way",
                )
                server.restart()  # a crash: Redis comes back empty
                restarted = time.monotonic()
                waiting = [*futures, *blocking]
                wait_until(lambda: all(f.done() for f in waiting), timeout=15,
                           message="every caller to hear")  # fmt: skip
                settled = time.monotonic() - restarted
            lost = [f for f in waiting if isinstance(f.exception(), TaskLost)]
            assert lost  # the run was cut short: some were queued or running
            assert all(f.exception() is None or f in lost for f in waiting)
            assert all(f.result() == n for n, f in enumerate(futures) if f not in lost)
            later = producer.queue_task_async(tasks.sleep_then, 0, "after")
            assert later.result(30) == "after"  # the daemons rode it out
        report(REPORT, {"test": "redis_restart_empty", "tasks": 620, "lost": len(lost),
                        "seconds_until_every_caller_heard": round(settled, 1)})  # fmt: skip
    finally:
        server.stop()


@pytest.mark.slow
def test_a_worker_that_fetches_before_hearing_it_was_taken_for_dead_strands_nothing(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str, raw_redis: redis.Redis
) -> None:
    """A worker taken for dead (a peer handed its tasks back) whose fetcher runs before
    its next heartbeat takes tasks under valid tokens; the heartbeat then tells it it was
    dead (five rounds of this). Those tasks must still finish: once they were dropped
    from its buffer (left in its held hash for good, callers waiting)."""
    from tasker_dist.store import QueueStore

    keys = QueueKeys(queue)
    start_worker(env={**DAEMON_ENV, "TASKER_TEST_HEARTBEAT": "1.0"})
    wait_until(lambda: raw_redis.zcard(keys.workers) == 1, message="the worker to register")
    (wid,) = [w.decode() for w in raw_redis.zrange(keys.workers, 0, -1)]
    store = QueueStore(redis_url, queue)
    with Producer(redis_url=redis_url, queue=queue) as producer:
        warm = producer.enqueue_many(tasks.sleep_then, [(0.001, i) for i in range(50)])
        assert [producer.result(t, timeout=10) for t in warm] == list(range(50))
        rounds = 0  # where the fetch came first; five, since the heartbeat may still find
        # the buffer empty (the old code stranded tasks in about two rounds of three)
        for _attempt in range(30):
            # What a peer does when the worker's lease ran out: recover its tasks (and
            # leave it a tombstone that its next heartbeat reads).
            raw_redis.zadd(keys.workers, {wid: 0})
            store.recover([wid])
            if not raw_redis.exists(keys.tombstone(wid)):
                continue  # its heartbeat came in between: try again
            ids = producer.enqueue_many(tasks.sleep_then, [(0.001, i) for i in range(1500)])
            wait_until(lambda: raw_redis.hlen(keys.held(wid)) > 0
                       or not raw_redis.exists(keys.tombstone(wid)),
                       message="a fetch or a heartbeat")  # fmt: skip
            fetched_first = raw_redis.exists(keys.tombstone(wid)) == 1
            # every task finishes, with its own result
            assert [producer.result(t, timeout=20) for t in ids] == list(range(1500))
            rounds += fetched_first
            if rounds == 5:
                break
        else:
            raise AssertionError(f"the fetch came first in {rounds} rounds of 30")
    wait_until(lambda: raw_redis.hlen(keys.held(wid)) == 0, message="nothing held")
    assert raw_redis.llen(keys.pending) == raw_redis.llen(keys.priority) == 0
    store.close()


def test_a_task_id_queued_again_while_it_waits_or_runs_runs_once(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str, raw_redis: redis.Redis,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The same id and frame queued again while queued or running (a call sent twice, its
    first reply lost) must not run on a second daemon nor be counted twice: it ran on
    both and counted two completions for one arrival."""
    from tasker_dist.store import QueueStore

    keys = QueueKeys(queue)
    ledger = tmp_path / "ledger"
    for _ in range(2):
        start_worker(env={**DAEMON_ENV, "TASKER_TEST_WORKERS": "1"})
    wait_until(lambda: raw_redis.zcard(keys.workers) == 2, message="both daemons")
    store = QueueStore(redis_url, queue)
    with Producer(redis_url=redis_url, queue=queue) as producer:
        ids = [producer.enqueue(tasks.ledger_task, str(ledger), n, 0.5) for n in range(3)]
        frames = {t: raw_redis.hget(keys.tasks, t) for t in ids}
        wait_until(lambda: len(_ledger(ledger)) == 2, message="two tasks to start")
        assert raw_redis.llen(keys.pending) == 1  # the third waits
        for task_id in ids:
            store.enqueue([(task_id, frames[task_id])])
            store.enqueue([(task_id, frames[task_id])], priority=True)
        assert [producer.result(t, timeout=10) for t in ids] == [0, 1, 2]
    # nothing is left that could run them again later
    assert raw_redis.exists(keys.tasks, keys.pending, keys.priority) == 0
    assert sorted(len(pids) for pids in _ledger(ledger).values()) == [1, 1, 1]
    counters = raw_redis.hgetall(keys.counters)
    assert (counters[b"arrived"], counters[b"completed"]) == (b"3", b"3")
    store.close()
