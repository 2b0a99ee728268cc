"""Real `tasker-worker` processes: started, signalled and killed by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tasker_dist import MaxRetriesExceeded, Producer, TaskError, TaskNotFound, TaskRejected
from tasker_dist.store.embedded_server import EmbeddedServer

from . import tasks
from .conftest import ROOT, WORKER_BIN, ChildProcess, run_tasker, wait_until


def _events(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _backlog(p: Producer) -> int:
    stats = p.stats()
    return stats.queued_tasks + stats.priority_tasks


def _live_workers(p: Producer, n: int) -> None:
    wait_until(
        lambda: len(p.stats().workers) == n and p.stats().active_workers > 0,
        timeout=15,
        message=f"{n} worker daemon(s) in the stats",
    )


def test_two_daemons_serve_a_producer_and_show_in_stats(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    daemons = [start_worker(), start_worker()]
    _live_workers(producer, 2)
    assert producer.queue_task(lambda ctx, db, x: x * 2, 21) == 42
    stats = producer.stats()
    assert stats.base_workers == 4
    worker_pids = set().union(*(d.worker_pids() for d in daemons))
    assert {w.pid for w in stats.workers} == worker_pids
    # Both daemons take work: resource ids are "<pid>-<n>".
    futures = [producer.queue_task_async(tasks.sleep_then, 0.02, i) for i in range(40)]
    ids = [producer.queue_task_async(tasks.resource_id) for _ in range(40)]
    assert [f.result(20) for f in futures] == list(range(40))
    pids = {int(f.result(20).split("-")[0]) for f in ids}
    assert pids <= worker_pids
    metrics = producer.metrics()
    assert metrics.total_tasks_completed == 81


def test_sigterm_finishes_running_tasks_destroys_resources_exits_zero(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    daemon = start_worker(env={"TASKER_TEST_EVENTS": str(events), "TASKER_TEST_WORKERS": "2"})
    _live_workers(producer, 1)
    release = tmp_path / "release"
    running = [producer.queue_task_async(tasks.run_until_file, str(release), i) for i in range(2)]
    wait_until(lambda: producer.stats().running_tasks == 2, message="both tasks running")
    daemon.signal(signal.SIGTERM)
    wait_until(lambda: "finishing running tasks" in daemon.output(), message="the stop to begin")
    release.touch()
    assert daemon.wait() == 0, daemon.output()
    assert [f.result(0) for f in running] == [0, 1]
    lines = _events(events)
    assert sorted(e.split()[0] for e in lines) == ["create"] * 2 + ["destroy"] * 2
    assert producer.stats().workers == ()  # it left the cluster at once


def test_second_signal_kills_and_hands_running_task_to_another_daemon(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    first = start_worker(env={"TASKER_TEST_WORKERS": "1", "TASKER_TEST_KILL_GRACE": "0.3"})
    _live_workers(producer, 1)
    release = tmp_path / "release"
    future = producer.queue_task_async(tasks.run_until_file, str(release), "finished")
    wait_until(lambda: producer.stats().running_tasks == 1, message="the task to start")
    first.signal(signal.SIGTERM)
    wait_until(lambda: "signal again to kill" in first.output(), message="the stop to begin")
    first.signal(signal.SIGTERM)
    assert first.wait() == 1
    assert "handed 1 running task(s) back" in first.output()
    assert producer.stats().queued_tasks + producer.stats().priority_tasks == 1
    release.touch()
    start_worker(env={"TASKER_TEST_WORKERS": "1"})
    assert future.result(20) == "finished"


def test_sys_exit_in_a_task_does_not_end_the_daemon(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    daemon = start_worker()
    _live_workers(producer, 1)
    with pytest.raises(TaskError, match="SystemExit"):
        producer.queue_task(tasks.exit_now, 3)
    assert producer.queue_task(lambda ctx, r: "still here") == "still here"
    assert daemon.proc.poll() is None


def test_unhealthy_errors_replace_the_resource_in_the_daemon(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    start_worker(
        env={
            "TASKER_TEST_EVENTS": str(events),
            "TASKER_TEST_WORKERS": "1",
            "TASKER_TEST_MAX_RETRIES": "1",
        }
    )
    _live_workers(producer, 1)
    with pytest.raises(MaxRetriesExceeded, match="max retries exceeded") as info:
        producer.queue_task(tasks.unhealthy)
    assert isinstance(info.value.__cause__, tasks.Unhealthy)
    wait_until(lambda: len(_events(events)) == 5, message="two replacements")
    assert [e.split()[0] for e in _events(events)] == [
        "create", "destroy", "create", "destroy", "create"
    ]  # fmt: skip
    assert producer.metrics().total_tasks_retried == 1


def test_burst_in_a_daemon_grows_and_shrinks(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    start_worker(
        env={
            "TASKER_TEST_WORKERS": "1",
            "TASKER_TEST_MAX_WORKERS": "4",
            "TASKER_TEST_BURST_INTERVAL": "0.1",
        }
    )
    _live_workers(producer, 1)
    ids = producer.enqueue_many(tasks.sleep_then, [(0.05, i) for i in range(60)])
    wait_until(lambda: producer.stats().burst_workers > 0, message="burst slots")
    assert producer.stats().active_workers <= 4
    assert [producer.result(i, timeout=30) for i in ids] == list(range(60))
    wait_until(lambda: producer.stats().burst_workers == 0, message="burst slots retired")
    assert producer.stats().active_workers == 1


def test_tasker_stop_asks_daemons_to_stop(
    start_worker: Callable[..., ChildProcess], producer: Producer, redis_url: str, queue: str
) -> None:
    daemons = [start_worker(), start_worker()]
    _live_workers(producer, 2)
    out = run_tasker("stop", "--redis-url", redis_url, "--queue", queue)
    assert out.returncode == 0, out.stderr
    assert "stop requested" in out.stdout
    assert [d.wait() for d in daemons] == [0, 0]


def test_tasker_stats_and_metrics_show_the_cluster(
    start_worker: Callable[..., ChildProcess], producer: Producer, redis_url: str, queue: str
) -> None:
    daemon = start_worker()
    _live_workers(producer, 1)
    producer.queue_task(lambda ctx, r: None)
    stats = run_tasker("stats", "--redis-url", redis_url, "--queue", queue)
    assert stats.returncode == 0, stats.stderr
    assert "active_workers" in stats.stdout
    assert str(daemon.worker_pids().pop()) in stats.stdout
    metrics = run_tasker("metrics", "--json", "--redis-url", redis_url, "--queue", queue)
    assert metrics.returncode == 0, metrics.stderr
    assert '"total_tasks_completed": 1' in metrics.stdout


def test_result_by_id_from_another_producer(
    start_worker: Callable[..., ChildProcess], producer: Producer, redis_url: str, queue: str
) -> None:
    start_worker()
    task_id = producer.enqueue(tasks.sleep_then, 0.2, "from afar")
    with Producer(redis_url, queue) as other:
        assert other.result(task_id, timeout=20) == "from afar"
        assert other.result(task_id) == "from afar"  # still stored
        with pytest.raises(TaskNotFound):
            other.result("0" * 32)


def test_bad_command_lines_exit_2_with_a_clear_message(redis_url: str) -> None:
    cases = [
        (["tests.tasks:nope", "--redis-url", redis_url], "has no attribute 'nope'"),
        (["no_such_module:config", "--redis-url", redis_url], "cannot import"),
        (["tests.tasks:config", "--redis-url", "http://x"], "redis_url must start with"),
        (["tests.tasks:config", "--redis-url", redis_url, "--workers", "0"], "worker_count"),
    ]
    for args, message in cases:
        out = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
            [WORKER_BIN, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
    env_less = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "tasker_dist.worker", "tests.tasks:config"],
        capture_output=True, text=True, timeout=30, cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert env_less.returncode == 2
    assert "--redis-url" in env_less.stderr


def test_unreachable_redis_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    out = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [WORKER_BIN, "tests.tasks:config", "--redis-url", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert out.returncode == 3
    assert "127.0.0.1:1" in out.stderr
    assert time.monotonic() - start < 10


def test_a_task_that_kills_its_process_is_not_lost_and_the_daemon_lives_on(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    daemon = start_worker(env={"TASKER_TEST_WORKERS": "1"})
    _live_workers(producer, 1)
    first_pids = daemon.worker_pids()
    marker = str(tmp_path / "crashed-once")
    assert producer.queue_task(tasks.crash_once, marker) == "survived"
    out = daemon.output()
    assert "died (exit code 13)" in out
    assert "handed 1 task(s) it held back to the queue" in out
    assert daemon.worker_pids() != first_pids  # a new worker process took over
    assert producer.queue_task(lambda ctx, r: "serving") == "serving"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_tasks_of_a_sigkilled_daemon_go_to_another_after_its_lease(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    doomed = start_worker(env={"TASKER_TEST_WORKERS": "1"})
    _live_workers(producer, 1)
    future = producer.queue_task_async(tasks.sleep_then, 0.3, "ran again")
    wait_until(lambda: producer.stats().running_tasks == 1, message="the task to start")
    os.killpg(doomed.pid, signal.SIGKILL)  # supervisor and worker process: a lost host
    assert doomed.wait() == -signal.SIGKILL
    start_worker(env={"TASKER_TEST_WORKERS": "1"})
    assert future.result(20) == "ran again"
    assert producer.metrics().total_tasks_completed == 1


def test_percentiles_merge_across_daemons(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    fast = start_worker(env={"TASKER_TEST_WORKERS": "1"})
    _live_workers(producer, 1)
    for _ in range(10):
        producer.queue_task(tasks.sleep_then, 0.001, None)
    fast.stop()
    start_worker(env={"TASKER_TEST_WORKERS": "1"})
    _live_workers(producer, 1)
    producer.queue_task(tasks.sleep_then, 0.2, None)
    metrics = producer.metrics()
    assert metrics.total_tasks_completed == 11
    assert metrics.p50_execution_time < 0.05  # the fast daemon's tasks
    assert metrics.p99_execution_time >= 0.2 * 0.99  # the slow daemon's task
    assert metrics.max_execution_time >= 0.2


def test_stop_hands_back_prefetched_tasks_at_once(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    daemon = start_worker(env={"TASKER_TEST_WORKERS": "1"})
    _live_workers(producer, 1)
    for i in range(20):  # tiny tasks: the daemon learns to take many per round trip
        assert producer.queue_task(tasks.sleep_then, 0, i) == i
    release = tmp_path / "release"
    # one round trip, so the worker sees them all at once; the quick ones wait for a file
    # that is there already
    slow, *quick = producer.enqueue_many(
        tasks.run_until_file, [(str(release), -1)] + [(str(tmp_path), i) for i in range(30)]
    )
    wait_until(lambda: producer.stats().running_tasks == 1, message="the slow task to start")
    assert producer.stats().queued_tasks < 30  # some were fetched along with it
    daemon.signal(signal.SIGTERM)
    wait_until(
        lambda: producer.stats().priority_tasks + producer.stats().queued_tasks == 30,
        timeout=0.9,
        message="the unstarted tasks back in Redis while the slow one runs",
    )
    release.touch()  # the stop waited for the running task: now it may end
    assert daemon.wait() == 0
    assert "fetched but unstarted task(s) back to the queue" in daemon.output()
    assert producer.result(slow, timeout=10) == -1
    start_worker()
    assert [producer.result(i, timeout=20) for i in quick] == list(range(30))


def test_sigterm_stops_a_daemon_whose_redis_is_gone(
    start_worker: Callable[..., ChildProcess], queue: str
) -> None:
    server = EmbeddedServer.start()
    try:
        daemon = start_worker("tests.tasks:config", "--redis-url", server.url)
        with Producer(server.url, queue) as p:
            assert p.queue_task(lambda ctx, r: "served") == "served"
        server.process.kill()  # Redis vanishes for good
        server.process.wait()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0, daemon.output()
    finally:
        server.stop()


@pytest.mark.parametrize("delay_s", [0.0, 0.02])
def test_sigterm_while_worker_processes_are_being_started_stops_them_all(
    start_worker: Callable[..., ChildProcess], delay_s: float
) -> None:
    # Ctrl-C right after starting: the stop must reach every worker process, also those
    # forked after the signal came.
    daemon = start_worker("tests.tasks:config", "--processes", "4")
    seen: set[int] = set()
    wait_until(lambda: bool(seen.update(daemon.worker_pids()) or seen), timeout=15,
               message="a first worker process")  # fmt: skip
    time.sleep(delay_s)  # signal at a different point of the start-up
    daemon.signal(signal.SIGTERM)

    def ended() -> bool:
        seen.update(daemon.worker_pids())  # also those forked after the signal came
        return daemon.proc.poll() is not None

    wait_until(ended, timeout=20, interval=0.005, message="the daemon to exit")
    assert daemon.proc.returncode == 0, daemon.output()
    assert not [pid for pid in seen if Path(f"/proc/{pid}").exists()]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_daemon_with_many_slots_does_not_spin(
    start_worker: Callable[..., ChildProcess], producer: Producer
) -> None:
    daemon = start_worker(env={"TASKER_TEST_WORKERS": "50"})
    wait_until(lambda: producer.stats().active_workers == 50, message="50 slots up")
    for i in range(100):  # a burst, then nothing: every slot ends up waiting
        producer.enqueue(tasks.sleep_then, 0.01, i)
    wait_until(lambda: producer.metrics().total_tasks_completed == 100, message="the burst")
    [child] = daemon.worker_pids()
    before = _cpu_seconds(child)
    time.sleep(2)  # the idle period itself is what is measured
    assert _cpu_seconds(child) - before < 0.3  # a busy loop would burn ~2 s here


def test_a_secret_rotation_with_daemons_on_both_sides_loses_nothing(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str
) -> None:
    """The README's rotation, mid-way: one daemon still signs with the old secret (and
    already accepts the new one), another signs with the new one (and still accepts the
    old); producers on either side use either daemon. Then the old secret is dropped."""
    old, new = "rotation-old-secret-0123456789", "rotation-new-secret-9876543210"
    on_old, on_new = f"{queue}-old", f"{queue}-new"  # each daemon on a queue of its own
    start_worker("tests.tasks:config", "--queue", on_old,
                 env={"TASKER_SECRET": old, "TASKER_SECRET_PREVIOUS": new})  # fmt: skip
    newer = start_worker("tests.tasks:config", "--queue", on_new,
                         env={"TASKER_SECRET": new, "TASKER_SECRET_PREVIOUS": old})  # fmt: skip
    sides = [(old, [new]), (new, [old])]
    producers = [Producer(redis_url, q, secret=s, previous_secrets=p)
                 for q in (on_old, on_new) for s, p in sides]  # fmt: skip
    try:
        futures = [p.queue_task_async(tasks.resource_id) for p in producers for _ in range(10)]
        ran = [f.result(30) for f in futures]  # none refused, none left waiting
        assert len(ran) == 40
        assert {p.queue for p in producers} == {on_old, on_new}
        # The rotation done: the daemon knows only the new secret. A producer that missed
        # the rotation is refused, with the reason; one that followed it is served.
        newer.stop()
        start_worker("tests.tasks:config", "--queue", on_new, env={"TASKER_SECRET": new})
        with (
            Producer(redis_url, on_new, secret=old, previous_secrets=()) as late,
            Producer(redis_url, on_new, secret=new, previous_secrets=()) as current,
        ):
            with pytest.raises(TaskRejected, match="signature did not verify"):
                late.queue_task(tasks.resource_id)
            assert current.queue_task(tasks.resource_id)
    finally:
        for p in producers:
            p.close()


def test_a_producer_with_the_wrong_secret_or_none_hears_why_within_a_second(
    start_worker: Callable[..., ChildProcess],
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker cannot trust the reply channel named in a payload that did not verify:
    it tells the queue's rejected channel, where the producer recognises its own task."""
    start_worker()
    monkeypatch.delenv("TASKER_SECRET")
    wrong = Producer(redis_url, queue, secret="not-the-workers-secret-0123")
    unsigned = Producer(redis_url, queue, allow_unsigned=True)
    try:
        for producer, reason in ((wrong, "signature did not verify"),
                                 (unsigned, "unsigned payload refused")):  # fmt: skip
            future = producer.queue_task_async(tasks.resource_id)
            with pytest.raises(TaskRejected, match=reason):
                future.result(1.0)  # not a TimeoutError: nobody is left waiting
    finally:
        wrong.close()
        unsigned.close()


def test_a_result_the_producer_cannot_verify_fails_its_call(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str
) -> None:
    """A rotation half done: the worker accepts the producer's old secret but signs with
    the new one, which the producer does not know yet. The caller gets the error."""
    old, new = "rotation-old-secret-0123456789", "rotation-new-secret-9876543210"
    start_worker(env={"TASKER_SECRET": new, "TASKER_SECRET_PREVIOUS": old})
    with Producer(redis_url, queue, secret=old, previous_secrets=()) as producer:
        future = producer.queue_task_async(tasks.resource_id)
        with pytest.raises(TaskRejected, match="did not verify here"):
            future.result(5)
