"""The scripts under every order of fetch, heartbeat, recovery, completion, hand-back,
lease renewal and cancel: random interleavings of simulated workers on one real Redis.

Each simulated worker keeps what it knows (its buffer of fetched tasks, the ones it
runs) and follows the rules the worker runtime follows: a heartbeat that says it was
taken for dead makes it hand its buffer back and stop the running tasks it no longer
holds; any heartbeat makes it recover the stale peers it names. Freezes are simulated by
moving a worker's lease into the past. After every step the invariants are checked:

- no task is held (in Redis) by a worker that does not know it;
- an unfinished task is in exactly one place: on a lane once, or in one held hash;
- a result, once written, is never written again.

In the end every worker learns what happened to it and drains the queue: every task has
a result, and each was counted once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import redis

from tasker_dist.status import Status
from tasker_dist.store import Finished, QueueStore

TTL_MS = 60_000
LEASE_MS = 60_000  # only the simulated freezes make a lease run out
TASKS = 24
STEPS = 400


@dataclass
class SimWorker:
    wid: str
    buffer: list[tuple[str, int]] = field(default_factory=list)
    running: list[tuple[str, int]] = field(default_factory=list)

    def knows(self) -> set[tuple[str, int]]:
        return {*self.buffer, *self.running}


class Model:
    def __init__(self, store: QueueStore, client: redis.Redis, rng: random.Random) -> None:
        self.store = store
        self.keys = store.keys
        self.client = client
        self.rng = rng
        self.workers = [SimWorker(f"w{i}") for i in range(3)]
        self.results: dict[str, bytes] = {}
        self.ids = [f"t{i:02d}" for i in range(TASKS)]
        store.enqueue([(t, b"envelope") for t in self.ids])
        for w in self.workers:
            self.heartbeat(w)

    # -- what a worker does -------------------------------------------------------------
    def fetch(self, w: SimWorker) -> None:
        _, fetched = self.store.fetch(w.wid, self.rng.randint(1, 4), LEASE_MS)
        w.buffer.extend((f.task_id, f.delivery) for f in fetched)

    def start(self, w: SimWorker) -> None:
        if w.buffer:
            w.running.append(w.buffer.pop(0))

    def finish(self, w: SimWorker) -> None:
        if not w.running:
            return
        task_id, delivery = w.running.pop(self.rng.randrange(len(w.running)))
        status = Status.RETRIED if self.rng.random() < 0.2 else Status.COMPLETED
        result = b"" if status is Status.RETRIED else f"{w.wid}:{delivery}".encode()
        self.store.complete(w.wid, TTL_MS, 100, [Finished(task_id, status, result, "",
                                                          0.001, 0.0, delivery)])  # fmt: skip

    def heartbeat(self, w: SimWorker) -> None:
        hb = self.store.heartbeat(w.wid, LEASE_MS, 12, {"host": "sim"})
        if hb.was_dead:
            # The runtime's rule: hand back the buffer (only deliveries still held go
            # back), stop the running tasks it no longer holds.
            self.store.requeue(w.wid, w.buffer)
            w.buffer.clear()
            held = self.store.held(w.wid)
            w.running = [(t, d) for t, d in w.running if held.get(t) == d]
        if hb.stale_workers:
            self.store.recover(hb.stale_workers)

    def hand_back(self, w: SimWorker) -> None:
        """A stop: what was fetched but not started goes back."""
        self.store.requeue(w.wid, w.buffer)
        w.buffer.clear()

    # -- what befalls it ----------------------------------------------------------------
    def freeze(self, w: SimWorker) -> None:
        """Its lease runs out (frozen, partitioned): peers may now take it for dead."""
        self.client.zadd(self.keys.workers, {w.wid: 0}, xx=True)

    def renew(self, w: SimWorker) -> None:
        """Its supervisor extends its lease (the process lives, maybe too busy to beat)."""
        self.store.renew([w.wid], LEASE_MS)

    def cancel(self) -> None:
        task_id = self.rng.choice(self.ids)
        self.store.cancel(TTL_MS, [(task_id, b"cancelled")])

    def step(self) -> None:
        w = self.rng.choice(self.workers)
        action = self.rng.choices(
            [
                self.fetch,
                self.start,
                self.finish,
                self.heartbeat,
                self.hand_back,
                self.freeze,
                self.renew,
            ],
            weights=[4, 4, 4, 3, 1, 1, 1],
        )[0]
        if self.rng.random() < 0.02:
            self.cancel()
        else:
            action(w)

    # -- invariants ---------------------------------------------------------------------
    def check(self) -> None:
        pipe = self.client.pipeline(transaction=True)  # one consistent snapshot
        pipe.lrange(self.keys.pending, 0, -1)
        pipe.lrange(self.keys.priority, 0, -1)
        pipe.hkeys(self.keys.cancelled)
        for w in self.workers:
            pipe.hgetall(self.keys.held(w.wid))
        pipe.mget([self.keys.result(t) for t in self.ids])
        pending, priority, cancelled_ids, *helds, results = pipe.execute()
        placed: dict[str, int] = {}
        for raw in [*pending, *priority]:
            placed[raw.decode()] = placed.get(raw.decode(), 0) + 1
        cancelled = {k.decode() for k in cancelled_ids}
        for w, raw_held in zip(self.workers, helds, strict=True):
            held = {k.decode(): int(v) for k, v in raw_held.items()}
            unknown = set(held.items()) - w.knows()
            assert not unknown, f"{w.wid} holds {unknown} without knowing it"
            for task_id in held:
                placed[task_id] = placed.get(task_id, 0) + 1
        for task_id, result in zip(self.ids, results, strict=True):
            if task_id in self.results:
                assert result == self.results[task_id], f"{task_id}: result written again"
            elif result is not None:
                self.results[task_id] = result
            where = placed.get(task_id, 0)
            if result is None:
                assert where == 1, f"{task_id} is in {where} places"
            else:
                # finished: only a cancelled id may linger (until a fetch drops it)
                assert where == 0 or task_id in cancelled, f"{task_id} finished but queued"

    def drain(self) -> None:
        """Everyone hears of its fate, then works until nothing is left."""
        for w in self.workers:
            self.heartbeat(w)
        for _ in range(20 * TASKS):
            if len(self.results) == TASKS:
                break
            for w in self.workers:
                self.fetch(w)
                while w.buffer or w.running:
                    self.start(w)
                    self.finish(w)
                self.check()
        else:
            raise AssertionError("the queue did not drain")


@pytest.mark.parametrize("seed", range(40))
def test_random_interleavings_keep_every_task_in_one_place(
    redis_url: str, queue: str, raw_redis: redis.Redis, seed: int
) -> None:
    store = QueueStore(redis_url, f"{queue}-{seed}")
    model = Model(store, raw_redis, random.Random(seed))
    try:
        for _ in range(STEPS):
            model.step()
            model.check()
        model.drain()
        counters = {k.decode(): int(v) for k, v in raw_redis.hgetall(store.keys.counters).items()}
        cancelled = sum(1 for r in model.results.values() if r == b"cancelled")
        assert counters.get("completed", 0) + cancelled == TASKS
        assert raw_redis.exists(store.keys.tasks, store.keys.pending, store.keys.priority) == 0
    finally:
        store.close()
