"""One `tasker-worker` daemon serving several queues: real daemons, a real server.

The ``queue`` fixture is the first queue the daemon serves (`start_worker` passes it as
the first ``--queue``); the tests add others with more ``--queue`` arguments.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tasker_dist import Config, Producer, TaskManager
from tasker_dist.errors import ConfigError
from tasker_dist.store import QueueKeys, QueueStore

from . import tasks
from .conftest import ROOT, WORKER_BIN, ChildProcess, report, run_tasker, wait_until

ONE_SLOT = {"TASKER_TEST_WORKERS": "1"}


def new_queue() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def other_queue() -> str:
    return new_queue()


@pytest.fixture
def other(redis_url: str, other_queue: str) -> Iterator[Producer]:
    """A producer of the second queue."""
    with Producer(redis_url, other_queue) as p:
        yield p


def serving(*producers: Producer) -> None:
    """Wait until one daemon's worker process serves each producer's queue."""
    for p in producers:
        wait_until(lambda p=p: p.stats().active_workers > 0, timeout=15,  # type: ignore[misc]
                   message=f"a worker serving {p.queue}")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_one_daemon_serves_the_tasks_of_both_queues_with_its_slots(
    start_worker: Callable[..., ChildProcess], producer: Producer, other: Producer
) -> None:
    daemon = start_worker("tests.tasks:config", "--queue", other.queue)
    serving(producer, other)
    first = [producer.queue_task_async(tasks.resource_id) for _ in range(20)]
    second = [other.queue_task_async(tasks.resource_id) for _ in range(20)]
    resources = {f.result(20) for f in first + second}
    pids = {int(r.split("-")[0]) for r in resources}
    assert pids == daemon.worker_pids()  # one worker process...
    assert len(resources) <= 2  # ...whose 2 slots (and resources) served both queues
    for p in (producer, other):
        stats = p.stats()
        assert [w.pid for w in stats.workers] == list(daemon.worker_pids())
        assert stats.base_workers == 2  # its slots, shared: shown in each queue's stats
        assert p.metrics().total_tasks_completed == 20  # counted on each task's own queue
    assert f"queues '{producer.queue}', '{other.queue}' in strict order" in daemon.output()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_strict_order_takes_every_task_of_an_earlier_queue_first(
    start_worker: Callable[..., ChildProcess], producer: Producer, other: Producer
) -> None:
    # both queues filled before the daemon starts: it meets both with work waiting
    later = other.enqueue_many(tasks.sleep_then_stamp, [(0.001,)] * 30)
    first = producer.enqueue_many(tasks.sleep_then_stamp, [(0.001,)] * 30)
    start_worker("tests.tasks:config", "--queue", other.queue, env=ONE_SLOT)
    first_ended = [producer.result(t, timeout=20) for t in first]
    later_ended = [other.result(t, timeout=20) for t in later]
    assert max(first_ended) < min(later_ended)


def test_weighted_order_shares_the_slots_by_weight_and_starves_no_queue(
    start_worker: Callable[..., ChildProcess], producer: Producer, other: Producer
) -> None:
    light, heavy = producer, other  # weights 1 and 3
    ids = {
        p.queue: p.enqueue_many(tasks.sleep_then_stamp, [(0.002,)] * 400) for p in (light, heavy)
    }
    start_worker("tests.tasks:config", "--queue", f"{heavy.queue}=3", env=ONE_SLOT)
    ended = sorted((p.result(t, timeout=60), p.queue) for p in (light, heavy) for t in ids[p.queue])
    # the first 400 tasks run while both queues still had work waiting: 300 and 100
    # expected (a fetch takes one task here, from the queue drawn first: 3 times in 4)
    first = [queue for _, queue in ended[:400]]
    heavy_share, light_share = first.count(heavy.queue), first.count(light.queue)
    report("TASKER_QUEUES_REPORT", {"test": "weighted", "heavy": heavy_share,
                                    "light": light_share})  # fmt: skip
    assert 240 <= heavy_share <= 360, (heavy_share, light_share)
    assert light_share >= 40, (heavy_share, light_share)


@pytest.mark.parametrize("killed", ["daemon", "worker process"])
def test_tasks_of_both_queues_held_by_a_sigkilled_daemon_are_all_recovered(
    start_worker: Callable[..., ChildProcess],
    producer: Producer,
    other: Producer,
    raw_redis: redis.Redis,
    tmp_path: Path,
    killed: str,
) -> None:
    release = tmp_path / "release"
    doomed = start_worker("tests.tasks:config", "--queue", other.queue,
                          env={"TASKER_TEST_WORKERS": "4"})  # fmt: skip
    serving(producer, other)
    futures = {
        p.queue: [p.queue_task_async(tasks.run_until_file, str(release), f"{p.queue}-{i}")
                  for i in range(2)]
        for p in (producer, other)
    }  # fmt: skip
    for p in (producer, other):
        wait_until(lambda p=p: p.stats().running_tasks == 2,  # type: ignore[misc]
                   message=f"2 tasks of {p.queue} running")  # fmt: skip
    if killed == "daemon":
        os.killpg(doomed.pid, signal.SIGKILL)  # supervisor and worker process: a lost host
        assert doomed.wait() == -signal.SIGKILL
        release.touch()
        rescuer = start_worker("tests.tasks:config", "--queue", other.queue)
    else:
        (child,) = doomed.worker_pids()
        os.kill(child, signal.SIGKILL)  # as a task ending its interpreter would
        release.touch()
        rescuer = doomed
    for p in (producer, other):
        assert [f.result(20) for f in futures[p.queue]] == [f"{p.queue}-{i}" for i in range(2)]
        assert p.metrics().total_tasks_completed == 2
        keys = QueueKeys(p.queue)
        assert raw_redis.hlen(keys.tasks) == 0  # nothing left behind
        assert not list(raw_redis.scan_iter(f"{keys.tag}:held:*"))
    out = rescuer.output()
    if killed == "daemon":
        for p in (producer, other):
            assert re.search(rf"handed back 2 task\(s\) of dead worker\(s\) \S+ to the queue "
                             rf"'{p.queue}'", out), out  # fmt: skip
    else:
        assert "handed 4 task(s) it held back to the queue" in out


def test_a_stop_hands_back_fetched_tasks_each_to_its_own_queue(
    start_worker: Callable[..., ChildProcess],
    producer: Producer,
    other: Producer,
    raw_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    daemon = start_worker("tests.tasks:config", "--queue", other.queue, env=ONE_SLOT)
    serving(producer, other)
    # tiny tasks (a few microseconds, not letting go of the interpreter lock): the daemon
    # learns to fetch many ahead of its slot
    warm_up = producer.enqueue_many(tasks.resource_id, [()] * 60)
    assert all(producer.result(t, timeout=10) for t in warm_up)
    release = tmp_path / "release"
    slow = producer.enqueue(tasks.run_until_file, str(release), -1)
    wait_until(lambda: producer.stats().running_tasks == 1, message="the slow task to start")
    # fetched while the slow task holds the only slot (they wait for a file that is there)
    quick = producer.enqueue_many(tasks.run_until_file, [(str(tmp_path), i) for i in range(4)])
    others = other.enqueue_many(tasks.run_until_file, [(str(tmp_path), i) for i in range(4)])
    wait_until(lambda: producer.stats().queued_tasks + other.stats().queued_tasks == 0,
               message="every task fetched")  # fmt: skip
    daemon.signal(signal.SIGTERM)

    def lane(queue: str) -> set[str]:
        return {i.decode() for i in raw_redis.lrange(QueueKeys(queue).priority, 0, -1)}

    wait_until(lambda: lane(producer.queue) and lane(other.queue), timeout=2,
               message="the unstarted tasks back while the slow one runs")  # fmt: skip
    assert producer.stats().running_tasks == 1
    assert lane(producer.queue) == set(quick)
    assert lane(other.queue) == set(others)
    release.touch()  # the stop waited for the running task: now it may end
    assert daemon.wait() == 0
    out = daemon.output()
    for queue in (producer.queue, other.queue):
        assert f"handed 4 fetched but unstarted task(s) back to the queue '{queue}'" in out
    assert producer.result(slow, timeout=10) == -1


def test_a_kill_hands_running_tasks_back_each_to_its_own_queue(
    start_worker: Callable[..., ChildProcess],
    producer: Producer,
    other: Producer,
    raw_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    env = {"TASKER_TEST_WORKERS": "2", "TASKER_TEST_KILL_GRACE": "0.3"}
    killed = start_worker("tests.tasks:config", "--queue", other.queue, env=env)
    serving(producer, other)
    release = tmp_path / "release"
    ids = {p.queue: p.enqueue(tasks.run_until_file, str(release), p.queue)
           for p in (producer, other)}  # fmt: skip
    for p in (producer, other):
        wait_until(lambda p=p: p.stats().running_tasks == 1,  # type: ignore[misc]
                   message=f"the task of {p.queue} running")  # fmt: skip
    killed.signal(signal.SIGTERM)
    wait_until(lambda: "signal again to kill" in killed.output(), message="the stop to begin")
    killed.signal(signal.SIGTERM)
    assert killed.wait() == 1
    out = killed.output()
    for p in (producer, other):
        assert f"handed 1 running task(s) back to the queue '{p.queue}'" in out
        lane = raw_redis.lrange(QueueKeys(p.queue).priority, 0, -1)
        assert [i.decode() for i in lane] == [ids[p.queue]]
    release.touch()
    start_worker("tests.tasks:config", "--queue", other.queue)
    for p in (producer, other):
        assert p.result(ids[p.queue], timeout=20) == p.queue


def test_tasker_stop_on_any_queue_served_stops_the_daemon(
    start_worker: Callable[..., ChildProcess], producer: Producer, other: Producer, redis_url: str
) -> None:
    daemon = start_worker("tests.tasks:config", "--queue", other.queue)
    serving(producer, other)
    out = run_tasker("stop", "--redis-url", redis_url, "--queue", other.queue)
    assert out.returncode == 0, out.stderr
    assert daemon.wait() == 0
    assert f"stop requested through Redis (queue '{other.queue}')" in daemon.output()
    for p in (producer, other):
        wait_until(lambda p=p: not p.stats().workers,  # type: ignore[misc]
                   message=f"the daemon gone from {p.queue}")  # fmt: skip


@pytest.mark.parametrize("served", [4, 1])
def test_a_task_on_any_of_four_queues_wakes_an_idle_daemon_at_once_and_idle_costs_no_cpu(
    start_worker: Callable[..., ChildProcess], producer: Producer, redis_url: str, served: int
) -> None:
    """Four queues (as a queue spread over four sub-queues would be): a daemon idle on
    all of them wakes for a task on any within milliseconds, and costs no CPU idle (one
    queue: the same figures for a daemon serving one, to compare)."""
    names = [new_queue() for _ in range(served - 1)]
    daemon = start_worker("tests.tasks:config", *[f"--queue={n}" for n in names], env=ONE_SLOT)
    producers = [producer, *(Producer(redis_url, n) for n in names)]
    try:
        serving(*producers)
        time.sleep(1.5)  # past a blocking read's timeout: idle in the steady state
        pids = [daemon.pid, *daemon.worker_pids()]
        cpu_before, started = sum(map(cpu_seconds, pids)), time.monotonic()
        time.sleep(3)
        idle_cpu = (sum(map(cpu_seconds, pids)) - cpu_before) / (time.monotonic() - started)
        round_trips: dict[str, list[float]] = {p.queue: [] for p in producers}
        for _ in range(10):
            for p in producers:
                time.sleep(0.03)  # the daemon idle again, waiting on every queue
                began = time.perf_counter()
                assert p.queue_task(tasks.resource_id)
                round_trips[p.queue].append(time.perf_counter() - began)
    finally:
        for p in producers[1:]:
            p.close()
    p50 = [statistics.median(round_trips[p.queue]) for p in producers]
    report("TASKER_QUEUES_REPORT", {"test": "wake", "queues": served,
                                    "idle_cpu_share": round(idle_cpu, 4),
                                    "p50_ms": [round(s * 1000, 2) for s in p50]})  # fmt: skip
    assert idle_cpu < 0.05, f"{idle_cpu:.1%} of a core while idle"
    assert max(p50) < 0.05, p50


def test_a_queue_store_for_another_queue_waits_on_its_own_queue(
    redis_url: str, queue: str, other_queue: str, raw_redis: redis.Redis
) -> None:
    store = QueueStore(redis_url, queue)
    sibling = store.for_queue(other_queue)
    try:
        assert sibling.keys == QueueKeys(other_queue)
        assert sibling.client is store.client
        raw_redis.lpush(QueueKeys(other_queue).signal, 1)
        assert sibling.wait_for_work("w") is True  # a token of queued work
        sibling.wake_worker("w")
        assert sibling.wait_for_work("w") is False  # a stop's wake-up
        for _ in range(3):
            sibling.pass_signal()
        assert raw_redis.llen(QueueKeys(other_queue).signal) == 2  # at most two kept
        assert raw_redis.llen(QueueKeys(queue).signal) == 0
        sibling.close()
        store.ping()  # closing the sibling left the shared connections alone
    finally:
        store.close()


def test_a_task_manager_serves_its_queues_and_refuses_to_serve_without_its_own(
    redis_url: str, queue: str, other: Producer
) -> None:
    with pytest.raises(ConfigError, match="must be one of the queues it serves"):
        TaskManager(Config(on_create=dict, redis_url=redis_url, queue=queue,
                           queues=(other.queue,)))  # fmt: skip
    config = Config(on_create=dict, redis_url=redis_url, queue=queue,
                    queues=(queue, other.queue))  # fmt: skip
    with TaskManager(config) as manager:
        assert manager.queue_task(lambda ctx, r: "own") == "own"
        assert other.queue_task(lambda ctx, r: ctx.queue) == other.queue


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "a=0"], "--queue a=0: the weight must be a whole number >= 1"),
        (["--queue", "a=x"], "--queue a=x: the weight must be a whole number >= 1"),
        (["--queue", "a=-1"], "the weight must be a whole number >= 1"),
        (["--queue", "a=\u00b2"], "the weight must be a whole number >= 1"),
        (["--queue", "a", "--queue", "b=2", "--queue", "a"], "queue 'a' is listed twice"),
        (["--queue", "a", "--queue", "b c"], "queues[1] must be 1-128 characters"),
    ],
)
def test_bad_queues_on_the_command_line_exit_2_saying_what_is_wrong(
    redis_url: str, args: list[str], message: str
) -> None:
    out = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [WORKER_BIN, "tests.tasks:config", "--redis-url", redis_url, *args],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert message in out.stderr, out.stderr


def test_help_explains_several_queues_and_weights() -> None:
    out = subprocess.run([WORKER_BIN, "--help"], capture_output=True, text=True, timeout=30,
                         check=True)  # fmt: skip
    assert "--queue NAME[=WEIGHT]" in out.stdout
    assert "strict order" in out.stdout
    assert "weighted" in out.stdout
