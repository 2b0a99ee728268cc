"""`ServedQueues`: the queues one worker serves, and the order in which a fetch visits them.

A worker serves one queue, or several with the same slots and resources (`Config.queues`).
Every key of a queue lives under its own hash tag, so each Redis call of the worker
concerns one queue: a fetch, a completion, a hand-back or a heartbeat is sent to the queue
of the tasks it is about (each `Job` knows its `ServedQueue`).

Two orders: **strict** (no weights given): each fetch visits the queues in the order given,
so a task of an earlier queue is always taken before one of a later queue; **weighted**:
each fetch visits them in a random order in which a queue comes first with a probability
proportional to its weight (as Sidekiq's weighted queues), so that no queue starves.

A queue spread over sub-queues (`Config.spread`) is served as its sub-queues, each with
the queue's weight; in strict order they take turns in coming first, and share the
queue's place (its bands), as none of them comes before another.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..store import QueueStore
from ..wire import Signer

__all__ = ["ServedQueue", "ServedQueues", "weighted_order"]


@dataclass(eq=False, slots=True)
class ServedQueue:
    """One queue a worker serves: its store, and the signer of its frames (a frame is
    signed for its queue)."""

    name: str
    store: QueueStore
    signer: Signer
    weight: int = 1
    #: The first of this queue's two bands in the worker's buffer (`LocalQueue`): its
    #: priority lane, then its normal lane. In strict order each queue has its own bands,
    #: after those of the queues before it; in weighted order all share bands 0 and 1.
    band: int = 0

    @property
    def rejected_channel(self) -> str:
        return self.store.keys.rejected_channel


def weighted_order(queues: Sequence[ServedQueue], rng: random.Random) -> list[ServedQueue]:
    """``queues`` in a random order, each next one drawn from those left with a probability
    proportional to its weight (Efraimidis and Spirakis: sort by u ** (1 / weight))."""
    return sorted(queues, key=lambda q: rng.random() ** (1.0 / q.weight), reverse=True)


class ServedQueues:
    """The queues a worker serves; `order` is the order in which one fetch visits them."""

    def __init__(
        self,
        queues: Sequence[ServedQueue],
        weighted: bool,
        rng: random.Random | None = None,
        spread: int = 1,
    ) -> None:
        """``queues`` come ``spread`` at a time: the sub-queues of one queue."""
        if not queues:
            raise ValueError("a worker serves at least one queue")
        self.all = tuple(queues)
        self.weighted = weighted and len(self.all) > 1
        self._rng = rng or random.Random()
        self._own_stores: list[QueueStore] = []
        self._groups = [self.all[i : i + spread] for i in range(0, len(self.all), spread)]
        self._turn = itertools.count()
        #: How many bands the worker's buffer needs (see `ServedQueue.band`).
        self.bands = 2 if self.weighted else 2 * len(self._groups)
        for i, queue in enumerate(self.all):
            queue.band = 0 if self.weighted else 2 * (i // spread)

    @classmethod
    def of(cls, config: Config[Any], store: QueueStore) -> ServedQueues:
        """The queues ``config`` serves, on ``store``'s server: ``store`` serves its own
        queue, the others get stores sharing its connections (closed by `close`)."""
        weights = config.queue_weights
        queues: list[ServedQueue] = []
        own: list[QueueStore] = []
        for i, name in enumerate(config.served_queues):
            if name == store.keys.queue:
                queue_store = store
            else:
                queue_store = store.for_queue(name)
                own.append(queue_store)
            signer = Signer.from_settings(
                config.secret, config.allow_unsigned, config.previous_secrets, queue=name
            )
            queues.append(ServedQueue(name, queue_store, signer, weights[i] if weights else 1))
        served = cls(queues, weighted=weights is not None, spread=config.spread)
        served._own_stores = own
        return served

    @property
    def first(self) -> ServedQueue:
        return self.all[0]

    def order(self) -> Sequence[ServedQueue]:
        """The order in which the next fetch visits the queues."""
        if self.weighted:
            return weighted_order(self.all, self._rng)
        if len(self._groups) == len(self.all):
            return self.all
        turn = next(self._turn)
        return [q for group in self._groups for q in _rotated(group, turn)]

    def describe(self) -> str:
        """The queues and their order, for the log."""
        if len(self.all) == 1:
            return f"queue {self.first.name!r}"
        if self.weighted:
            listed = ", ".join(f"{q.name!r} (weight {q.weight})" for q in self.all)
            return f"queues {listed} in weighted random order"
        turns = ", the sub-queues of each taking turns" if len(self._groups) < len(self.all) else ""
        return f"queues {', '.join(repr(q.name) for q in self.all)} in strict order{turns}"

    def close(self) -> None:
        """Close the stores made for the queues (their own blocking connections)."""
        for store in self._own_stores:
            store.close()

    def __iter__(self) -> Iterator[ServedQueue]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)


def _rotated(group: Sequence[ServedQueue], turn: int) -> Sequence[ServedQueue]:
    start = turn % len(group)
    return [*group[start:], *group[:start]]
