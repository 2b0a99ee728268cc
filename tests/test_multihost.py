"""Several hosts, in Linux network namespaces (`tests/netns.py`): Redis on one, behind a
proxy adding 5 ms to each round trip (`tests/delay_proxy.py`: this kernel has no netem),
two `tasker-worker` daemons on two others, and the producer on a fourth (the test
process cannot enter a namespace, so it runs `tests/multihost_client.py` there and
reads what its callers got from a file). Each host reaches Redis only over its own
veth link; one worker host's link is cut mid-run for twice its lease, then restored.

Figures are appended to $TASKER_MULTIHOST_FIGURES if set (the README quotes them)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasker_dist.store import find_server_binary

from .conftest import (
    ROOT,
    TEST_SECRET,
    WORKER_BIN,
    ChildProcess,
    process_tree,
    report,
    tagged,
    wait_until,
)
from .netns import REDIS, Hosts, list_namespaces, netns_unavailable

pytestmark = pytest.mark.slow

TASKS = 1000
CUT_AFTER = 200  # tasks started before the link is cut (of the first 333 queued)
CUT_S = 4.0  # twice the lease (2 s with 0.2 s heartbeats)
DELAY_MS = 5
PORT = 6379  # every namespace is new: any port is free
WORKERS = ("worker-1", "worker-2")
PRODUCER = "producer"
CUT = WORKERS[0]
ENV = {"TASKER_TEST_WORKERS": "4", "TASKER_TEST_HEARTBEAT": "0.2",
       "TASKER_TEST_CONNECT_TIMEOUT": "1", "TASKER_TEST_HUNG_AFTER": "10"}  # fmt: skip


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Hosts.start(*WORKERS, PRODUCER) as made:
        yield made
    assert not [n for n in list_namespaces() if n.startswith(made.prefix)], "namespaces left"
    assert not tagged(made.prefix), "processes left"


def _started(ledger: Path) -> int:
    return len(ledger.read_bytes().splitlines()) if ledger.exists() else 0


def _runs(ledger: Path) -> Counter[int]:
    return Counter(int(line.split()[0]) for line in ledger.read_text().splitlines())


def _longest_silence(queued_at: dict[int, float], done_at: dict[int, float]) -> float:
    """The longest time no caller heard anything while some caller waited: between two
    results in a row, from the later of the first and the earliest call still waiting
    for the second."""
    order = sorted(done_at, key=done_at.__getitem__)
    # earliest[i]: the earliest call among those answered at order[i] or later
    earliest = [queued_at[n] for n in order]
    for i in range(len(order) - 2, -1, -1):
        earliest[i] = min(earliest[i], earliest[i + 1])
    silence = 0.0
    for i in range(1, len(order)):
        start = max(done_at[order[i - 1]], earliest[i])
        silence = max(silence, done_at[order[i]] - start)
    return silence


def _on_host(ledger: Path, daemon: ChildProcess) -> list[bool]:
    """For each ledger line, in order: whether a process of ``daemon`` wrote it."""
    pids = process_tree(daemon.pid)
    return [int(line.split()[1]) in pids for line in ledger.read_text().splitlines()]


def _redis_behind_a_delay(hosts: Hosts, env: dict[str, str], tmp_path: Path) -> float:
    """Start redis-server on the redis host's loopback and the delay proxy on its link
    addresses; the median round trip of 20 PINGs from a worker host (ms)."""
    server = hosts.run(REDIS, [find_server_binary(), "--port", str(PORT), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                       env, tmp_path / "redis.log")  # fmt: skip
    wait_until(lambda: "Ready to accept connections" in server.output(), timeout=30,
               message="redis-server")  # fmt: skip
    listen = [a for host in hosts.addresses_of_redis() for a in ("--listen", f"{host}:{PORT}")]
    proxy = hosts.run(REDIS, [sys.executable, "-m", "tests.delay_proxy", *listen, "--target",
                              f"127.0.0.1:{PORT}", "--delay-ms", str(DELAY_MS)],
                      env, tmp_path / "proxy.log")  # fmt: skip
    wait_until(lambda: "ready" in proxy.output(), timeout=30, message="the delay proxy")
    pinger = hosts.run(WORKERS[1], [sys.executable, "-m", "tests.multihost_client", "ping",
                                    _url(hosts, WORKERS[1]), "--count", "20"],
                       env, tmp_path / "ping.log")  # fmt: skip
    assert pinger.wait(30) == 0, pinger.output()
    median: float = json.loads(pinger.output())["median_ms"]
    return median


def _url(hosts: Hosts, host: str) -> str:
    return f"redis://{hosts.address_of_redis_for(host)}:{PORT}"


def test_a_worker_host_cut_off_past_its_lease_loses_nothing(
    hosts: Hosts, queue: str, tmp_path: Path
) -> None:
    """1,000 tasks of 5 ms, a caller waiting on each: a third queued before the cut, a
    third during it, a third once the link is back. The tasks the cut host held are
    handed to the other host once its lease runs out; back, it serves again."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKER_SECRET": TEST_SECRET}
    rtt_ms = _redis_behind_a_delay(hosts, env, tmp_path)
    daemons: dict[str, ChildProcess] = {}
    for host in WORKERS:
        daemons[host] = hosts.run(host, [WORKER_BIN, "tests.tasks:config", "--redis-url",
                                         _url(hosts, host), "--queue", queue],
                                  {**env, **ENV}, tmp_path / f"{host}.log")  # fmt: skip
    ledger, out = tmp_path / "ledger", tmp_path / "outcome.json"
    cut_file, restored_file = tmp_path / "cut", tmp_path / "restored"
    producer = hosts.run(PRODUCER, [sys.executable, "-m", "tests.multihost_client", "produce",
                                    _url(hosts, PRODUCER), "--queue", queue, "--ledger",
                                    str(ledger), "--tasks", str(TASKS), "--workers",
                                    str(len(WORKERS)), "--then", str(cut_file), "--then",
                                    str(restored_file), "--out", str(out)],
                         env, tmp_path / "producer.log")  # fmt: skip
    wait_until(lambda: _started(ledger) >= CUT_AFTER or producer.proc.poll() is not None,
               timeout=60, message=f"{CUT_AFTER} tasks to start")  # fmt: skip
    assert producer.proc.poll() is None, producer.output()
    hosts.cut(CUT)
    cut_at = time.monotonic()
    cut_file.touch()  # the producer queues the second third
    time.sleep(CUT_S)  # the fault itself: the link stays down for twice the lease
    hosts.restore(CUT)
    started_before_restore = _started(ledger)
    restored_file.touch()  # and the last third
    assert producer.wait(90) == 0, producer.output()
    outcome = json.loads(out.read_text())
    runs = _runs(ledger)
    on_cut_host = _on_host(ledger, daemons[CUT])
    queued_at = {int(n): t for n, t in outcome["queued_at"].items()}
    done_at = {int(n): t for n, t in outcome["done_at"].items()}
    waits = sorted(t - queued_at[n] for n, t in done_at.items()) or [0.0]
    figures = {
        "tasks": TASKS,
        "lost": sum(1 for n in range(TASKS) if runs[n] == 0),
        "run_twice": sum(1 for n in range(TASKS) if runs[n] > 1),
        "callers_failed": len(outcome["failed"]),
        "callers_waiting": len(outcome["waiting"]),
        "seconds_without_results": round(_longest_silence(queued_at, done_at), 2),
        "seconds_from_cut_to_last_result": round(max(done_at.values(), default=cut_at) - cut_at, 2),
        "caller_wait_s_median": round(statistics.median(waits), 3),
        "caller_wait_s_max": round(waits[-1], 2),
        "ran_on_cut_host_after_restore": sum(on_cut_host[started_before_restore:]),
        "rtt_ms": round(rtt_ms, 2),
        "daemons_after": outcome["workers_after"],
    }
    report("TASKER_MULTIHOST_FIGURES", figures)
    print(figures)
    assert outcome["failed"] == {}
    assert outcome["waiting"] == []
    assert {int(n): v for n, v in outcome["results"].items()} == {n: n for n in range(TASKS)}
    assert figures["lost"] == 0
    assert all(d.proc.poll() is None for d in daemons.values())
    assert outcome["workers_after"] == len(WORKERS)  # the cut host serves again
