"""The Lua scripts, run through `QueueStore` against fakeredis (no server, no sleeps)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import fakeredis
import pytest
from redis.crc import key_slot

from tasker_dist.metrics.histogram import bucket_of
from tasker_dist.status import Status
from tasker_dist.store import Finished
from tasker_dist.store import calls as cmd
from tasker_dist.store import queue_store as store_module
from tasker_dist.store.keys import QueueKeys
from tasker_dist.store.queue_store import WAKE_TTL_MS, QueueStore
from tasker_dist.store.scripts import NAMES, source

QUEUE = "orders"
TTL_MS = 60_000
WID = "w-test"
HB_TTL_MS = 5_000
CAP = 100
REPLY = QueueKeys(QUEUE).reply_channel("producer-1")


class FakeRedis(fakeredis.FakeRedis):
    """fakeredis without script flags: its Lua does not read a ``#!lua flags=...`` first
    line (a real server does; `test_full_redis.py` runs them there)."""

    def register_script(self, script: Any) -> Any:
        if isinstance(script, str) and script.startswith("#!"):
            script = script.partition("\n")[2]
        return super().register_script(script)


@pytest.fixture
def fake() -> fakeredis.FakeRedis:
    return FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def store(fake: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[QueueStore]:
    def connect(url: str, timeout: float, **options: Any) -> fakeredis.FakeRedis:
        return fake

    monkeypatch.setattr(store_module, "connect", connect)
    s = QueueStore("redis://unused.invalid:6379/0", QUEUE)
    yield s
    s.close()


@pytest.fixture
def keys() -> QueueKeys:
    return QueueKeys(QUEUE)


def env(task_id: str) -> bytes:
    return f"envelope of {task_id}".encode()


def enqueue(store: QueueStore, *ids: str, priority: bool = False) -> None:
    store.enqueue([(i, env(i)) for i in ids], priority=priority)


def fetch_ids(store: QueueStore, limit: int = 100) -> list[str]:
    return [f.task_id for f in store.fetch(WID, limit, HB_TTL_MS)[1]]


def members(fake: fakeredis.FakeRedis, key: str) -> list[bytes]:
    """The members of a sorted set (in order) or the fields of a hash (sorted)."""
    if fake.type(key) == b"zset":
        return list(fake.zrange(key, 0, -1))
    return sorted(fake.hkeys(key))


def messages(pubsub: Any) -> list[tuple[bytes, bytes]]:
    out = []
    for _ in range(20):
        m = pubsub.get_message(timeout=0)
        if m is not None and m["type"] in ("message", "pmessage"):
            out.append((m["channel"], m["data"]))
    return out


def redis_second(fake: fakeredis.FakeRedis) -> int:
    return int(fake.time()[0])


def ran(
    task_id: str,
    status: str = Status.COMPLETED,
    result: bytes = b"r",
    reply: str = "",
    exec_us: int = 2_000,
    wait_us: int = 500,
    delivery: int = 1,
) -> Finished:
    """A report for a task that ran for ``exec_us`` after waiting ``wait_us``."""
    return Finished(task_id, status, result, reply, exec_us / 1e6, wait_us / 1e6, delivery)


# -- enqueue and fetch ----------------------------------------------------------------------


def test_fetch_is_fifo(store: QueueStore) -> None:
    enqueue(store, "a", "b")
    enqueue(store, "c")
    enqueue(store, "d", "e")
    assert fetch_ids(store, 2) == ["a", "b"]
    assert fetch_ids(store, 10) == ["c", "d", "e"]
    assert fetch_ids(store, 10) == []


def test_fetch_returns_envelopes_and_lane(store: QueueStore) -> None:
    enqueue(store, "a")
    enqueue(store, "p", priority=True)
    now_ms, fetched = store.fetch(WID, 10, HB_TTL_MS)
    assert now_ms > 1_600_000_000_000
    assert [(f.task_id, f.payload, f.retries, f.priority) for f in fetched] == [
        ("p", env("p"), 0, True),
        ("a", env("a"), 0, False),
    ]


def test_enqueue_stores_envelopes_and_counts_arrivals(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    enqueue(store, "p", priority=True)
    assert fake.hgetall(keys.tasks) == {b"a": env("a"), b"b": env("b"), b"p": env("p")}
    assert fake.llen(keys.pending) == 2
    assert fake.llen(keys.priority) == 1
    assert fake.hget(keys.counters, "arrived") == b"3"
    rates = {k.decode(): int(v) for k, v in fake.hgetall(keys.rates).items()}
    assert sum(v for k, v in rates.items() if k.startswith("a:")) == 3
    for field in rates:
        assert abs(int(field[2:]) - redis_second(fake)) <= 1


def test_an_id_queued_or_running_is_not_queued_again(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "a")  # twice in one call
    enqueue(store, "a")  # a call sent again after its reply was lost
    enqueue(store, "b", priority=True)
    assert fake.lrange(keys.pending, 0, -1) == [b"b", b"a"]
    assert fake.llen(keys.priority) == 0
    assert fetch_ids(store, 1) == ["a"]
    enqueue(store, "a")  # while it runs
    assert fetch_ids(store) == ["b"]
    assert fake.hget(keys.counters, "arrived") == b"2"
    # once finished it is a new task, and runs again
    assert store.complete(WID, TTL_MS, CAP, [ran("a")]) == 0
    enqueue(store, "a")
    assert fetch_ids(store) == ["a"]
    assert fake.hget(keys.counters, "arrived") == b"3"


def test_a_cancelled_id_is_not_queued_again_while_it_is_on_a_lane(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    store.cancel(TTL_MS, [("a", b"c")])
    enqueue(store, "a")
    assert fake.llen(keys.pending) == 1
    assert fetch_ids(store) == []
    assert fake.get(keys.result("a")) == b"c"


def test_priority_before_pending_queued_earlier(store: QueueStore) -> None:
    enqueue(store, "n1", "n2")
    enqueue(store, "p1")
    enqueue(store, "p2", priority=True)
    enqueue(store, "p3", priority=True)
    assert fetch_ids(store, 1) == ["p2"]
    assert fetch_ids(store, 1) == ["p3"]
    assert fetch_ids(store, 1) == ["n1"]


def test_priority_first_within_one_batch(store: QueueStore) -> None:
    enqueue(store, "n1", "n2", "n3")
    enqueue(store, "p1", "p2", priority=True)
    assert fetch_ids(store, 4) == ["p1", "p2", "n1", "n2"]
    assert fetch_ids(store, 4) == ["n3"]


def test_fetch_records_the_tasks_in_the_workers_held_set(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    _, fetched = store.fetch(WID, 2, HB_TTL_MS)
    assert len(fetched) == 2
    assert members(fake, keys.held(WID)) == [b"a", b"b"]
    store.fetch("other", 1, HB_TTL_MS)
    assert members(fake, keys.held("other")) == [b"c"]
    # the envelope stays until the task is finished
    assert fake.hexists(keys.tasks, "a")


def test_fetch_hands_over_ids_without_envelope_for_the_failed_store(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fake.hdel(keys.tasks, "a")
    fake.lpush(keys.pending, b"\xff\x00garbage")
    _, fetched = store.fetch(WID, 10, HB_TTL_MS)
    assert [(f.task_id, f.payload) for f in fetched] == [
        ("a", b""), ("b", env("b")), (b"\xff\x00garbage".decode("utf-8", "surrogateescape"), b"")
    ]  # fmt: skip
    garbage = fetched[2]
    # the odd id goes back to Redis as the same bytes: it can be finished like any task
    assert store.complete(WID, TTL_MS, CAP, [ran(garbage.task_id, Status.FAILED, b"")]) == 0
    assert sorted(fake.hkeys(keys.held(WID))) == [b"a", b"b"]


def test_fetch_counts_deliveries_and_hands_back_do_not(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    [first] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert first.delivery == 1
    assert store.requeue(WID, [("a", 1)]) == 1  # a stop: does not count
    [again] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert again.delivery == 1
    fake.zadd(keys.workers, {WID: 0})  # the worker dies holding it
    assert store.recover([WID]) == 1
    [third] = store.fetch("other", 1, HB_TTL_MS)[1]
    assert third.delivery == 2
    assert fake.hget(keys.held("other"), "a") == b"2"


def test_fetch_reports_retries_so_far(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    fake.hset(keys.retries, "a", 2)
    [fetched] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert fetched.retries == 2


# -- the signal list ------------------------------------------------------------------------


def test_enqueue_leaves_at_most_one_token(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    assert fake.llen(keys.signal) == 1
    enqueue(store, "b", "c")
    enqueue(store, "d", priority=True)
    assert fake.llen(keys.signal) == 1


def test_fetch_passes_the_wakeup_on_when_work_is_left(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    fake.delete(keys.signal)  # a blocked worker took the token
    assert fetch_ids(store, 1) == ["a"]
    assert fake.llen(keys.signal) == 1
    assert fetch_ids(store, 1) == ["b"]
    assert fake.llen(keys.signal) == 1  # still one token, not two


def test_fetch_leaves_no_token_when_queue_is_drained(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fake.delete(keys.signal)
    assert fetch_ids(store, 2) == ["a", "b"]
    assert fake.llen(keys.signal) == 0
    assert fetch_ids(store, 5) == []
    assert fake.llen(keys.signal) == 0


def test_wait_for_work_consumes_the_token(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    store.wait_for_work(WID)
    assert fake.llen(keys.signal) == 0


def test_wake_worker_ends_its_wait_once_and_the_token_expires(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    store.wake_worker(WID)
    assert 0 < fake.pttl(keys.wake(WID)) <= WAKE_TTL_MS
    store.wait_for_work(WID)  # returns at once: the token is there
    assert not fake.exists(keys.wake(WID))


# -- complete -------------------------------------------------------------------------------


def test_complete_done_stores_result_and_cleans_up(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fake.hset(keys.retries, "a", 1)
    fetch_ids(store, 2)
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(REPLY, keys.done_channel("a"), keys.done_channel("b"))
    store.watch(["a", "b"], 1)
    skipped = store.complete(WID, TTL_MS, CAP, [ran("a", result=b"result-a", reply=REPLY)])
    assert skipped == 0
    assert fake.get(keys.result("a")) == b"result-a"
    assert 0 < fake.pttl(keys.result("a")) <= TTL_MS
    assert not fake.hexists(keys.tasks, "a")
    assert not fake.hexists(keys.retries, "a")
    assert members(fake, keys.held(WID)) == [b"b"]
    assert fake.hexists(keys.tasks, "b")
    assert fake.get(keys.result("b")) is None
    assert sorted(messages(pubsub)) == sorted(
        [(REPLY.encode(), b"result-a"), (keys.done_channel("a").encode(), b"result-a")]
    )
    assert fake.hkeys(keys.watched) == [b"b"]  # a finished: nobody need count for it
    pubsub.close()


def test_complete_tells_a_done_channel_only_while_a_process_watches_it(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    fetch_ids(store, 3)
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("tasker:*")
    store.watch(["a", "b"], 1)
    store.watch(["b"], 1)  # a second process
    store.watch(["a", "b"], -1)  # the first stops waiting: b is still watched
    store.complete(WID, TTL_MS, CAP, [Finished(t, Status.COMPLETED, b"r-" + t.encode(), "")
                                      for t in ("a", "b", "c")])  # fmt: skip
    assert messages(pubsub) == [(keys.done_channel("b").encode(), b"r-b")]
    assert not fake.exists(keys.watched)
    pubsub.close()


def test_on_a_cluster_results_are_told_on_sharded_channels_of_the_queue_only(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    """SPUBLISH, heard only by the queue's shard; a reply channel outside the queue's slot
    (a producer of an earlier version) would fail the whole script there: not told."""
    store.sharded = True  # as on a cluster
    enqueue(store, "a", "b")
    fetch_ids(store, 2)
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.ssubscribe(REPLY, keys.done_channel("a"))
    old_reply = "tasker:reply:old"
    plain = fake.pubsub(ignore_subscribe_messages=True)
    plain.subscribe(old_reply)
    store.watch(["a"], 1)
    batch = [ran("a", result=b"r-a", reply=REPLY), ran("b", result=b"r-b", reply=old_reply)]
    store.complete(WID, TTL_MS, CAP, batch)
    # (a read past each ignored subscription confirmation gives None)
    read = [pubsub.get_message(timeout=0) for _ in range(6)]
    got = [(m["type"], m["channel"], m["data"]) for m in read if m is not None]
    done = keys.done_channel("a").encode()
    assert sorted(got) == sorted([("smessage", REPLY.encode(), b"r-a"), ("smessage", done, b"r-a")])
    assert messages(plain) == []
    assert fake.get(keys.result("b")) == b"r-b"
    pubsub.close()
    plain.close()


def test_watch_counts_out_without_going_below_zero(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    store.watch(["a"], -1)  # e.g. the count was removed when the task finished
    assert not fake.exists(keys.watched)
    store.watch(["a"], 1)
    assert fake.hget(keys.watched, "a") == b"1"


def test_complete_of_a_mixed_batch_gives_each_task_its_own_outcome(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    # One batch of every kind of outcome: each result lands under its own task's key.
    enqueue(store, "failed", "plain1", "replied", "retried", "plain2", "stale")
    fetch_ids(store)
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(REPLY)
    batch = [
        Finished("failed", Status.FAILED, b"r-failed", "", 0.001, 0.0, 1, b"record"),
        ran("plain1", result=b"r-plain1", exec_us=1_000),
        ran("replied", result=b"r-replied", reply=REPLY),
        Finished("retried", Status.RETRIED, b"", "", 0.001, 0.0, 1),
        ran("plain2", result=b"r-plain2", exec_us=3_000),
        ran("stale", result=b"r-stale", delivery=7),  # not the delivery held: skipped
    ]
    assert store.complete(WID, TTL_MS, CAP, batch) == 1
    for task_id in ("failed", "plain1", "replied", "plain2"):
        assert fake.get(keys.result(task_id)) == f"r-{task_id}".encode()
    assert fake.get(keys.result("stale")) is None
    assert fake.get(keys.result("retried")) is None
    assert fake.lrange(keys.priority, 0, -1) == [b"retried"]
    assert members(fake, keys.failed) == [b"failed"]
    assert messages(pubsub) == [(REPLY.encode(), b"r-replied")]
    assert members(fake, keys.held(WID)) == [b"stale"]
    counters = {k.decode(): int(v) for k, v in fake.hgetall(keys.counters).items()}
    assert (counters["completed"], counters["failed"], counters["retried"]) == (3, 1, 1)
    assert counters["executions"] == 5
    pubsub.close()


def test_complete_counts_metrics(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    fetch_ids(store)
    store.complete(
        WID,
        TTL_MS,
        CAP,
        [ran("a", exec_us=1_000, wait_us=300), ran("b", Status.FAILED, exec_us=2_000, wait_us=400)],
    )
    store.complete(WID, TTL_MS, CAP, [ran("c", exec_us=5_000, wait_us=300)])
    counters = {k.decode(): int(v) for k, v in fake.hgetall(keys.counters).items()}
    assert counters == {
        "arrived": 3,
        "completed": 2,
        "failed": 1,
        "executions": 3,
        "exec_sum_us": 8_000,
        "exec_min_us": 1_000,
        "exec_max_us": 5_000,
        "wait_sum_us": 1_000,
    }
    hist = {int(k): int(v) for k, v in fake.hgetall(keys.histogram).items()}
    expected: dict[int, int] = {}
    for seconds in (0.001, 0.002, 0.005):
        expected[bucket_of(seconds)] = expected.get(bucket_of(seconds), 0) + 1
    assert hist == expected
    rates = {k.decode(): int(v) for k, v in fake.hgetall(keys.rates).items()}
    assert sum(v for k, v in rates.items() if k.startswith("c:")) == 3


def test_complete_retry_goes_to_head_of_priority_lane(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    assert fetch_ids(store, 1) == ["a"]
    enqueue(store, "p", priority=True)
    skipped = store.complete(WID, TTL_MS, CAP, [ran("a", Status.RETRIED, result=b"")])
    assert skipped == 0
    assert fake.hget(keys.retries, "a") == b"1"
    assert fake.hget(keys.counters, "retried") == b"1"
    assert fake.hexists(keys.tasks, "a")  # the envelope is kept for the retry
    assert fake.get(keys.result("a")) is None
    assert members(fake, keys.held(WID)) == []
    [first] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert (first.task_id, first.retries, first.priority) == ("a", 1, True)
    assert fetch_ids(store) == ["p", "b"]


def test_complete_retry_twice_counts_retries(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    for expected in (1, 2):
        [taken] = store.fetch(WID, 1, HB_TTL_MS)[1]
        store.complete(WID, TTL_MS, CAP, [Finished("a", Status.RETRIED, delivery=taken.delivery)])
        assert fake.hget(keys.retries, "a") == str(expected).encode()
    [fetched] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert fetched.retries == 2
    assert fetched.delivery == 3  # each retry was a delivery: one run per delivery so far
    assert fake.hget(keys.counters, "retried") == b"2"


def test_complete_retry_wakes_a_worker(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    fetch_ids(store)
    fake.delete(keys.signal)
    store.complete(WID, TTL_MS, CAP, [Finished("a", Status.RETRIED)])
    assert fake.llen(keys.signal) == 1


def test_complete_skips_tasks_not_in_flight(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fetch_ids(store)
    assert store.requeue(WID, [("a", 1)]) == 1  # handed back by a kill
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("tasker:*")
    before = {k: fake.dump(k) for k in fake.keys("*")}
    skipped = store.complete(
        WID,
        TTL_MS,
        CAP,
        [
            ran("a", result=b"late", reply=REPLY),
            ran("never-taken", result=b"x", reply=REPLY),
            Finished("a", Status.RETRIED),
        ],
    )
    assert skipped == 3
    assert fake.get(keys.result("a")) is None
    assert fake.get(keys.result("never-taken")) is None
    assert {k: fake.dump(k) for k in fake.keys("*")} == before
    assert messages(pubsub) == []
    pubsub.close()


def test_complete_counts_a_mix_of_done_and_skipped(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fetch_ids(store)
    store.requeue(WID, [("a", 1)])
    skipped = store.complete(
        WID,
        TTL_MS,
        CAP,
        [Finished("a", Status.COMPLETED, b"ra", ""), Finished("b", Status.COMPLETED, b"rb", "")],
    )
    assert skipped == 1
    assert fake.get(keys.result("a")) is None
    assert fake.get(keys.result("b")) == b"rb"


def test_complete_of_skipped_task_counts_no_metrics(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    fetch_ids(store)
    store.requeue(WID, [("a", 1)])
    counters_before = fake.hgetall(keys.counters)
    rates_before = fake.hgetall(keys.rates)
    skipped = store.complete(WID, TTL_MS, CAP, [ran("a", result=b"late", reply=REPLY)])
    assert skipped == 1
    assert fake.hgetall(keys.counters) == counters_before
    assert fake.hgetall(keys.histogram) == {}
    assert fake.hgetall(keys.rates) == rates_before


# -- requeue --------------------------------------------------------------------------------


def test_requeue_only_tasks_still_in_flight(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    fetch_ids(store, 2)
    fake.delete(keys.signal)
    assert store.requeue(WID, [("a", 1), ("a", 1), ("not-taken", 1), ("c", 1)]) == 1
    assert store.requeue(WID, [("a", 1)]) == 0
    assert fake.lrange(keys.priority, 0, -1) == [b"a"]
    assert members(fake, keys.held(WID)) == [b"b"]
    assert fake.llen(keys.signal) == 1
    assert fetch_ids(store) == ["a", "c"]


def test_requeue_goes_to_head_of_priority_lane(store: QueueStore) -> None:
    enqueue(store, "a", "b")
    fetch_ids(store, 2)
    enqueue(store, "p", priority=True)
    assert store.requeue(WID, [("a", 1), ("b", 1)]) == 2
    fetched = fetch_ids(store)
    # both handed-back tasks come before the priority task that was already waiting
    assert sorted(fetched[:2]) == ["a", "b"]
    assert fetched[2:] == ["p"]


def test_requeue_nothing_sends_no_token(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    fake.delete(keys.signal)
    assert store.requeue(WID, [("ghost", 1)]) == 0
    assert store.requeue(WID, []) == 0
    assert fake.llen(keys.signal) == 0
    assert fake.llen(keys.priority) == 0


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_stores_results_and_fetch_drops_the_cancelled_ids(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "n1", "n2")
    enqueue(store, "p1", priority=True)
    fake.hset(keys.retries, "p1", 1)
    pubsub = fake.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("tasker:*")
    store.watch(["n1", "p1", "n2"], 1)
    cancelled = store.cancel(TTL_MS, [("n1", b"cancel-n1"), ("p1", b"cancel-p1")])
    assert sorted(cancelled) == ["n1", "p1"]
    assert fake.hkeys(keys.watched) == [b"n2"]
    assert fake.get(keys.result("n1")) == b"cancel-n1"
    assert fake.get(keys.result("p1")) == b"cancel-p1"
    assert 0 < fake.pttl(keys.result("n1")) <= TTL_MS
    assert sorted(fake.hkeys(keys.tasks)) == [b"n2"]
    assert not fake.hexists(keys.retries, "p1")
    assert sorted(messages(pubsub)) == [
        (keys.done_channel("n1").encode(), b"cancel-n1"),
        (keys.done_channel("p1").encode(), b"cancel-p1"),
    ]
    assert fetch_ids(store) == ["n2"]
    # the cancelled ids were dropped on the way: nothing of them is left
    assert fake.llen(keys.pending) == fake.llen(keys.priority) == 0
    assert fake.exists(keys.cancelled) == 0
    assert members(fake, keys.held(WID)) == [b"n2"]
    pubsub.close()


def test_a_task_cancelled_while_it_runs_keeps_its_cancelled_result(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b")
    fetched = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert [f.task_id for f in fetched] == ["a"]
    assert store.cancel(TTL_MS, [("a", b"c-a"), ("b", b"c-b")]) == ["a", "b"]
    # the worker's late completion is dropped, and counted nowhere
    late = Finished("a", Status.COMPLETED, b"ra", REPLY, 0.01, 0.0, fetched[0].delivery)
    assert store.complete(WID, TTL_MS, CAP, [late]) == 0
    assert fake.get(keys.result("a")) == b"c-a"
    assert fake.hget(keys.counters, "completed") is None
    assert fetch_ids(store) == []
    assert fake.exists(keys.held(WID), keys.cancelled, keys.tasks, keys.pending) == 0


def test_a_cancelled_task_handed_back_by_recovery_or_retry_never_runs(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "dead", "retried")
    fetched = {f.task_id: f for f in store.fetch(WID, 2, HB_TTL_MS)[1]}
    store.cancel(TTL_MS, [("dead", b"c-1"), ("retried", b"c-2")])
    retry = Finished("retried", Status.RETRIED, delivery=fetched["retried"].delivery)
    assert store.complete(WID, TTL_MS, CAP, [retry]) == 0
    assert store.requeue(WID, [("dead", fetched["dead"].delivery)]) == 1
    assert fetch_ids(store) == []
    assert fake.exists(keys.priority, keys.pending, keys.cancelled, keys.held(WID)) == 0
    assert fake.get(keys.result("retried")) == b"c-2"


def test_a_cancelled_task_recovered_from_a_dead_worker_leaves_no_bookkeeping(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "x")
    store.fetch("dead", 1, HB_TTL_MS)
    store.cancel(TTL_MS, [("x", b"c")])
    assert store.recover(["dead"], only_stale=False) == 1  # its delivery count goes back
    assert fetch_ids(store) == []
    assert fake.exists(keys.deliveries, keys.retries, keys.cancelled, keys.priority) == 0


def test_fetch_drops_a_bounded_number_of_cancelled_ids_per_call(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    ids = [f"t{i}" for i in range(2500)]
    enqueue(store, *ids)
    enqueue(store, "live")
    store.cancel(TTL_MS, [(i, b"c") for i in ids])
    fake.delete(keys.signal)
    # each call drops at most 1,000 cancelled ids and wakes another fetcher while more
    # are left, so a lane of them never makes one long script call
    assert fetch_ids(store, 10) == []
    assert fake.llen(keys.pending) == 1501
    assert fake.llen(keys.signal) == 1
    # however many a fetch wants, it pops no more than that many cancelled ids
    assert fetch_ids(store, 8192) == []
    assert fake.llen(keys.pending) == 501
    assert fetch_ids(store, 10) == ["live"]
    assert fake.exists(keys.pending, keys.cancelled) == 0


def test_cancel_is_sent_in_chunks(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    ids = [f"t{i}" for i in range(2 * store_module.CANCEL_CHUNK + 1)]
    enqueue(store, *ids)
    calls: list[int] = []
    run = store._run

    def counting(job: cmd.ScriptCall) -> Any:
        calls.append(len(job.keys))
        return run(job)

    store._run = counting  # type: ignore[method-assign]
    assert store.cancel(TTL_MS, [(i, b"c") for i in ids]) == ids
    assert len(calls) == 3
    assert fake.hlen(keys.tasks) == 0


def test_finished_tasks_are_remembered_after_their_results_expire(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    """Completing or cancelling a task adds its id to the finished set of its first 9
    characters (4 s of queueing time), kept past the results: `presence` then tells an
    expired result from an id never queued."""
    done, cancelled, never = "018f3a2b1done", "018f3a2b1cancelled", "018f3a2b1never"
    enqueue(store, done, cancelled)
    assert fetch_ids(store, 1) == [done]
    store.complete(WID, TTL_MS, CAP, [ran(done, result=b"r")])
    store.cancel(TTL_MS, [(cancelled, b"c")])
    assert keys.finished(done) == keys.finished(never) == f"{keys.tag}:finished:018f3a2b1"
    assert TTL_MS < fake.pttl(keys.finished(done)) <= cmd.finished_ttl_ms(TTL_MS)
    assert store.presence([done, cancelled, never]) == [
        cmd.Presence(False, b"r", True), cmd.Presence(False, b"c", True),
        cmd.Presence(False, None, False),
    ]  # fmt: skip
    fake.delete(keys.result(done), keys.result(cancelled))  # as if they had expired
    assert store.presence([done, cancelled]) == [cmd.Presence(False, None, True)] * 2


def test_cancel_unknown_and_empty(store: QueueStore, fake: fakeredis.FakeRedis) -> None:
    assert store.cancel(TTL_MS, []) == []
    assert store.cancel(TTL_MS, [("ghost", b"r")]) == []
    assert fake.keys("*") == []


# -- heartbeat ------------------------------------------------------------------------------


def test_heartbeat_publishes_worker_hash_with_ttl(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    hb = store.heartbeat("w1", 5_000, 12, {"host": "h1", "pid": 42, "base": 2})
    assert fake.hgetall(keys.worker("w1")) == {b"host": b"h1", b"pid": b"42", b"base": b"2"}
    assert 0 < fake.pttl(keys.worker("w1")) <= 5_000
    # scored by when its heartbeat goes stale, in Redis time
    assert dict(fake.zrange(keys.workers, 0, -1, withscores=True)) == {b"w1": hb.now_ms + 5_000}
    assert hb.stop_all_ms is None
    assert hb.stop_me_ms is None


def test_heartbeat_reports_stale_workers(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    now_ms = redis_second(fake) * 1000
    fake.zadd(keys.workers, {"dead": now_ms - 1_000, "alive": now_ms + 60_000})
    hb = store.heartbeat("w1", 5_000, 12, {"host": "h"})
    assert hb.stale_workers == ["dead"]
    assert not hb.was_dead


# -- recover --------------------------------------------------------------------------------


def test_recover_hands_back_the_tasks_of_dead_workers_once(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a", "b", "c")
    store.heartbeat("dead", 5_000, 12, {"host": "h"})
    store.heartbeat("alive", 5_000, 12, {"host": "h"})
    store.fetch("dead", 2, HB_TTL_MS)
    store.fetch("alive", 1, HB_TTL_MS)
    fake.zadd(keys.workers, {"dead": redis_second(fake) * 1000 - 1})  # its heartbeat lapsed
    fake.delete(keys.signal)
    assert store.recover(["dead", "alive"]) == 2
    assert store.recover(["dead", "alive"]) == 0  # a second recoverer finds nothing
    assert sorted(fake.lrange(keys.priority, 0, -1)) == [b"a", b"b"]
    assert members(fake, keys.held("alive")) == [b"c"]
    assert not fake.exists(keys.held("dead"), keys.worker("dead"))
    assert members(fake, keys.workers) == [b"alive"]
    assert fake.llen(keys.signal) == 1
    # the dead worker comes back: its late results are refused
    assert store.complete("dead", TTL_MS, CAP, [Finished("a", Status.COMPLETED, b"late", "")]) == 1
    assert fake.get(keys.result("a")) is None
    assert store.heartbeat("dead", 5_000, 12, {}).was_dead
    assert not store.heartbeat("dead", 5_000, 12, {}).was_dead  # told once


def test_renew_extends_live_leases_only(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    store.heartbeat("busy", 2_000, 12, {"host": "h"})
    store.heartbeat("long", 60_000, 12, {"host": "h"})
    store.heartbeat("gone", 2_000, 12, {"host": "h"})
    store.recover(["gone"], only_stale=False)
    store.renew(["busy", "long", "gone", "never"], 30_000)
    scores = dict(fake.zrange(keys.workers, 0, -1, withscores=True))
    now_ms = redis_second(fake) * 1000
    assert set(scores) == {b"busy", b"long"}  # nobody brought back or added
    assert now_ms + 28_000 < scores[b"busy"] <= now_ms + 31_000
    assert scores[b"long"] > now_ms + 58_000  # never shortened
    assert 28_000 < fake.pttl(keys.worker("busy")) <= 30_000
    assert fake.pttl(keys.worker("long")) > 58_000
    assert not fake.exists(keys.worker("gone"), keys.worker("never"))
    store.renew([], 30_000)


def test_leaving_hands_back_what_a_worker_still_holds(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    store.heartbeat(WID, 5_000, 12, {"host": "h"})
    store.fetch(WID, 1, HB_TTL_MS)
    assert store.leave(WID) == 1
    assert fake.lrange(keys.priority, 0, -1) == [b"a"]
    assert members(fake, keys.workers) == []
    assert not fake.exists(keys.worker(WID))


def test_heartbeat_trims_old_rate_buckets(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    now = redis_second(fake)
    fake.hset(
        keys.rates,
        mapping={f"a:{now}": 1, f"c:{now - 5}": 2, f"a:{now - 100}": 3, f"c:{now - 3600}": 4},
    )
    store.heartbeat("w1", 5_000, 12, {})
    assert sorted(fake.hkeys(keys.rates)) == sorted([f"a:{now}".encode(), f"c:{now - 5}".encode()])


def test_heartbeat_reports_stop_requests(store: QueueStore) -> None:
    assert store.heartbeat("w1", 5_000, 12, {}).stop_me_ms is None
    store.request_stop("w1")
    hb1 = store.heartbeat("w1", 5_000, 12, {})
    hb2 = store.heartbeat("w2", 5_000, 12, {})
    assert hb1.stop_me_ms is not None
    assert abs(hb1.stop_me_ms - hb1.now_ms) < 5_000
    assert hb1.stop_all_ms is None
    assert hb2.stop_me_ms is None
    store.request_stop(None)
    hb2 = store.heartbeat("w2", 5_000, 12, {})
    assert hb2.stop_all_ms is not None
    assert hb2.stop_me_ms is None


def test_heartbeat_reports_lane_lengths(store: QueueStore) -> None:
    enqueue(store, "a", "b", "c")
    enqueue(store, "p", priority=True)
    hb = store.heartbeat("w1", 5_000, 12, {})
    assert (hb.pending, hb.priority) == (3, 1)


def test_read_cluster_sees_what_scripts_wrote(store: QueueStore) -> None:
    enqueue(store, "a", "b", "c")
    enqueue(store, "p", priority=True)
    fetch_ids(store, 2)
    store.heartbeat("w1", 5_000, 12, {"host": "h", "base": 2, "running": 2})
    store.complete(WID, TTL_MS, CAP, [ran("p", Status.FAILED)])
    raw = store.read_cluster()
    assert (raw.queued, raw.priority) == (2, 0)
    # WID is registered by its fetch, but only w1 has published stats
    assert [wid for wid, h in raw.workers if h] == ["w1"]
    assert dict(raw.workers)["w1"]["base"] == "2"
    assert raw.counters["arrived"] == 4
    assert raw.counters["failed"] == 1
    assert raw.buckets == {bucket_of(0.002): 1}
    assert sum(v for k, v in raw.rates.items() if k.startswith("a:")) == 4


# -- keys: all passed in KEYS, all under the queue's hash tag (SPEC §8) ---------------------


def all_calls(keys: QueueKeys) -> list[cmd.ScriptCall]:
    finished = [ran("t1", reply=REPLY), Finished("t2", Status.RETRIED)]
    return [
        cmd.enqueue_call(keys, [("t1", b"e1"), ("t2", b"e2")], priority=False),
        cmd.enqueue_call(keys, [("t3", b"e3")], priority=True),
        cmd.fetch_call(keys, WID, 10, HB_TTL_MS),
        cmd.enqueue_call(keys, [("t4", b"e4")], priority=False),
        cmd.watch_call(keys, ["t1", "t3"], 1),
        cmd.complete_call(keys, WID, TTL_MS, CAP, finished),
        cmd.requeue_call(keys, WID, [("t2", 1)]),
        cmd.recover_call(keys, [WID, "w1"], only_stale=False),
        cmd.cancel_call(keys, TTL_MS, [("t3", b"c3"), ("t4", b"c4")]),
        cmd.retry_failed_call(keys, [("t5", b"e5")]),
        cmd.heartbeat_call(keys, "w1", 5_000, 12, {"host": "h"}),
        cmd.renew_call(keys, ["w1"], 5_000),
    ]


def as_bytes(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


def test_every_call_uses_one_hash_tag() -> None:
    keys = QueueKeys("orders")
    calls = all_calls(keys)
    assert {c.script for c in calls} == set(NAMES)
    slot = key_slot(b"{orders}")
    for call in calls:
        assert call.keys, call.script
        for key in map(as_bytes, call.keys):
            assert b"{orders}" in key, (call.script, key)
            assert key.index(b"{") == key.index(b"{orders}"), key
            assert key_slot(key) == slot, (call.script, key)


def test_scripts_touch_only_keys_passed_in_keys(fake: fakeredis.FakeRedis) -> None:
    keys = QueueKeys("orders")
    passed: set[bytes] = set()
    # A scenario in which every script writes: queue, fetch, finish, retry, cancel, beat.
    for call in all_calls(keys):
        passed.update(map(as_bytes, call.keys))
        fake.register_script(source(call.script))(keys=call.keys, args=call.args)
    written = set(fake.keys("*"))
    assert written, "the scenario wrote nothing"
    assert written <= passed
    # the branches that write per-task keys did run: complete 'done' and cancel
    assert keys.result("t1").encode() in written
    assert keys.result("t4").encode() in written
    assert keys.worker("w1").encode() in written


KEY_COMMANDS_ARG = re.compile(r"redis\.call\('(\w+)'\s*(?:,\s*([^,)]+))?")
HELPER_KEY_ARG = re.compile(r"(call_chunked\('\w+'|hmget\()\s*,?\s*([^,)]+)")


# Scripts Redis must run at its memory limit: those that free at least what they add.
ALLOW_OOM = {"fetch", "complete", "requeue", "recover", "cancel", "heartbeat", "renew", "watch"}


@pytest.mark.parametrize("name", NAMES)
def test_only_scripts_that_free_memory_run_at_the_limit(name: str) -> None:
    assert _file(name).startswith("#!lua flags=allow-oom\n") == (name in ALLOW_OOM)


@pytest.mark.parametrize("name", NAMES)
def test_lua_names_keys_only_through_keys_array(name: str) -> None:
    text = _file(name)
    flags, body = "", text
    if text.startswith("#!"):
        flags, _, body = text.partition("\n")
        flags += "\n"
    assert source(name) == flags + _file("lib") + body  # run after the helpers of lib.lua
    assert body.startswith("--")  # headed by its contract
    assert "KEYS[" in text
    assert "tasker:" not in text
    calls = KEY_COMMANDS_ARG.findall(text) + HELPER_KEY_ARG.findall(text)
    assert calls
    for command, first_arg in calls:
        if command in ("TIME", "PUBLISH"):
            continue
        assert first_arg.startswith("KEYS["), (name, command, first_arg)


def _file(name: str) -> str:
    return resources.files("tasker_dist.store.scripts").joinpath(f"{name}.lua").read_text()


def test_lua_helpers_use_only_the_key_they_are_given() -> None:
    lib = _file("lib")
    assert "KEYS[" not in lib
    assert "tasker:" not in lib
    for command, first_arg in KEY_COMMANDS_ARG.findall(lib):
        if command == "TIME":  # takes no key at all
            continue
        assert first_arg == "key", (command, first_arg)


# -- fencing, recovery and the failed store -----------------------------------------------


def test_a_stale_delivery_cannot_finish_the_task(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    [first] = store.fetch(WID, 1, HB_TTL_MS)[1]
    fake.zadd(keys.workers, {WID: 0})  # frozen past its lease: taken for dead
    assert store.recover([WID]) == 1
    [second] = store.fetch(WID, 1, HB_TTL_MS)[1]  # it thaws and takes the task again
    assert second.delivery == first.delivery + 1
    stale = ran("a", result=b"stale", delivery=first.delivery)
    assert store.complete(WID, TTL_MS, CAP, [stale]) == 1
    assert fake.get(keys.result("a")) is None
    assert fake.hgetall(keys.counters).get(b"completed") is None  # counted nowhere
    assert store.requeue(WID, [("a", first.delivery)]) == 0  # nor handed back
    fresh = ran("a", result=b"fresh", delivery=second.delivery)
    assert store.complete(WID, TTL_MS, CAP, [fresh]) == 0
    assert fake.get(keys.result("a")) == b"fresh"


def test_two_recoverers_hand_each_task_back_once(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, *(f"t{i}" for i in range(5)))
    store.fetch("dead", 5, HB_TTL_MS)
    fake.zadd(keys.workers, {"dead": 0})
    other = QueueStore("redis://unused.invalid:6379/0", QUEUE)  # another worker, same Redis
    moved = [store.recover(["dead"]), other.recover(["dead"])]
    assert sorted(moved) == [0, 5]
    assert sorted(fake.lrange(keys.priority, 0, -1)) == [f"t{i}".encode() for i in range(5)]


def test_failed_store_keeps_the_newest_records_up_to_its_cap(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    ids = [f"f{i}" for i in range(5)]
    enqueue(store, *ids)
    _, taken = store.fetch(WID, 5, HB_TTL_MS)
    for f in taken:  # one call each, so each record gets its own time
        report = Finished(f.task_id, Status.FAILED, b"r", "", None, None, f.delivery, b"record")
        store.complete(WID, TTL_MS, 3, [report])
    assert sorted(fake.hkeys(keys.failed)) == [b"f2", b"f3", b"f4"]
    assert fake.zcard(keys.failed_index) == 3


def test_retry_failed_requeues_once_with_fresh_bookkeeping(
    store: QueueStore, fake: fakeredis.FakeRedis, keys: QueueKeys
) -> None:
    enqueue(store, "a")
    [taken] = store.fetch(WID, 1, HB_TTL_MS)[1]
    store.complete(WID, TTL_MS, CAP, [Finished("a", Status.FAILED, b"old result", "", None, None,
                                               taken.delivery, b"record")])  # fmt: skip
    assert store.retry_failed([("a", env("a"))]) == 1
    assert store.retry_failed([("a", env("a"))]) == 0  # already back in the queue
    assert fake.get(keys.result("a")) is None
    assert not fake.hexists(keys.failed, "a")
    [again] = store.fetch(WID, 1, HB_TTL_MS)[1]
    assert (again.task_id, again.payload, again.delivery) == ("a", env("a"), 1)


# -- batches larger than one Lua call can unpack (real server) ------------------------------


def test_batches_of_thousands_of_tasks_on_a_real_server(redis_url: str, queue: str) -> None:
    # Redis's Lua unpacks at most ~8,000 values into one call: the scripts chunk theirs.
    n = 9_000
    keys = QueueKeys(queue)
    real = QueueStore(redis_url, queue)
    try:
        ids = [f"t{i:05d}" for i in range(n)]
        real.enqueue([(i, env(i)) for i in ids], priority=False)
        _, fetched = real.fetch(WID, n, HB_TTL_MS)
        assert [(f.task_id, f.payload, f.delivery) for f in fetched] == [
            (i, env(i), 1) for i in ids
        ]
        assert real.client.hlen(keys.held(WID)) == n
        # half finish; the other half are recovered when the worker is taken for dead
        done, rest = fetched[: n // 2], fetched[n // 2 :]
        finished = [ran(f.task_id, result=f.task_id.encode()) for f in done]
        assert real.complete(WID, TTL_MS, CAP, finished) == 0
        assert real.client.get(keys.result(done[-1].task_id)) == done[-1].task_id.encode()
        assert real.client.hlen(keys.held(WID)) == len(rest)
        assert real.client.hlen(keys.tasks) == len(rest)
        assert real.complete(WID, TTL_MS, CAP, finished) == len(done)  # fenced: once
        assert real.recover([WID], only_stale=False) == len(rest)
        assert real.client.llen(keys.priority) == len(rest)
        assert not real.client.exists(keys.held(WID))
        # their delivery counts went with them: the next fetch is their second delivery
        _, again = real.fetch(WID, n, HB_TTL_MS)
        assert sorted((f.task_id, f.delivery) for f in again) == [(f.task_id, 2) for f in rest]
    finally:
        real.close()
