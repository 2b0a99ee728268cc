"""The Redis key schema: the only module that builds key and channel names.

Every key of one queue carries the hash tag ``{<queue>}`` so that a Lua script touching
several of them runs on one Redis Cluster slot. The README documents each key.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QueueKeys"]

PREFIX = "tasker"


@dataclass(frozen=True)
class QueueKeys:
    """Names of every key of one queue."""

    queue: str

    @property
    def tag(self) -> str:
        return f"{PREFIX}:{{{self.queue}}}"

    @property
    def pending(self) -> str:
        """List of task ids, normal lane: producers LPUSH, workers pop from the right."""
        return f"{self.tag}:pending"

    @property
    def priority(self) -> str:
        """List of task ids served strictly before ``pending``; retries go to its head."""
        return f"{self.tag}:priority"

    @property
    def signal(self) -> str:
        """List used only to wake blocked workers; holds at most a token or two."""
        return f"{self.tag}:signal"

    @property
    def tasks(self) -> str:
        """Hash task id -> signed envelope, from enqueue until the task is finished."""
        return f"{self.tag}:tasks"

    @property
    def retries(self) -> str:
        """Hash task id -> retries used so far (absent: none)."""
        return f"{self.tag}:retries"

    @property
    def deliveries(self) -> str:
        """Hash task id -> times it was taken by a worker (not counting hand-backs), for
        tasks handed back; while a task is held, its count is in the held hash."""
        return f"{self.tag}:deliveries"

    @property
    def cancelled(self) -> str:
        """Hash task id -> 1 for tasks cancelled while queued or running: their ids stay
        where they were (a lane, a held hash) until a fetch or a completion meets them."""
        return f"{self.tag}:cancelled"

    @property
    def watched(self) -> str:
        """Hash task id -> how many processes wait on its done channel: a result is
        published there only while someone does (see watch.lua)."""
        return f"{self.tag}:watched"

    @property
    def failed(self) -> str:
        """Hash task id -> failed-store record: tasks that could not be run (undecodable,
        forged, quarantined, out of retries), with their raw bytes and the reason."""
        return f"{self.tag}:failed"

    @property
    def failed_index(self) -> str:
        """Sorted set task id -> time stored (ms): the failed store's order and cap."""
        return f"{self.tag}:failed:index"

    @property
    def counters(self) -> str:
        """Hash of cluster-wide lifetime counters (arrived, completed, failed, ...)."""
        return f"{self.tag}:counters"

    @property
    def histogram(self) -> str:
        """Hash bucket index -> count: the execution-time histogram of the whole cluster."""
        return f"{self.tag}:hist"

    @property
    def rates(self) -> str:
        """Hash ``a:<second>``/``c:<second>`` -> arrivals/completions in that second."""
        return f"{self.tag}:rates"

    @property
    def workers(self) -> str:
        """Sorted set worker id -> last heartbeat (Redis time, ms)."""
        return f"{self.tag}:workers"

    @property
    def control(self) -> str:
        """Hash of requests to daemons: ``stop`` (all) or ``stop:<worker id>`` -> ms; and
        ``spread``: over how many sub-queues its daemons serve the queue."""
        return f"{self.tag}:control"

    def held(self, worker_id: str) -> str:
        """Hash task id -> delivery, of the tasks one worker has taken and not finished.
        Its lease on them is its heartbeat: when that goes stale they are handed back
        (recover.lua); the delivery is the fencing token its completion must match."""
        return f"{self.tag}:held:{worker_id}"

    def wake(self, worker_id: str) -> str:
        """List on which one worker's blocked fetch waits besides ``signal``: a stop
        pushes a token there so the fetch returns at once (the token expires)."""
        return f"{self.tag}:wake:{worker_id}"

    def tombstone(self, worker_id: str) -> str:
        """String set (for a day) when a worker is taken for dead, so it can learn it."""
        return f"{self.tag}:dead:{worker_id}"

    def worker(self, worker_id: str) -> str:
        """Hash of one daemon's live stats; expires when its heartbeat stops."""
        return f"{self.tag}:worker:{worker_id}"

    def result(self, task_id: str) -> str:
        """String: the signed result envelope of one task, with a TTL."""
        return f"{self.tag}:result:{task_id}"

    def finished(self, task_id: str) -> str:
        """Set of the ids of finished tasks queued within the same 4 s (an id begins with
        its queueing time in ms as 12 hex digits: the first 9 group them), kept after
        their results expire (`calls.finished_ttl_ms`) so that an expired result is told
        apart from an id never queued. A set per 4 s rather than a key per task takes
        half the memory."""
        return f"{self.tag}:finished:{task_id[:9]}"

    def reply_channel(self, producer_id: str) -> str:
        """Pub/sub channel on which one producer hears about its own tasks' results
        (under the queue's tag, as every channel: on a cluster, one shard serves them)."""
        return f"{self.tag}:reply:{producer_id}"

    @property
    def rejected_channel(self) -> str:
        """Pub/sub channel on which workers announce the tasks they refused without being
        able to trust the task's own reply channel (a payload that did not verify)."""
        return f"{self.tag}:rejected"

    def done_channel(self, task_id: str) -> str:
        """Pub/sub channel on which one task's result is published again when it
        finishes, for `Producer.result` calls of other processes."""
        return f"{self.done_prefix}{task_id}"

    @property
    def done_prefix(self) -> str:
        """`done_channel` without the id (complete.lua appends the ids itself)."""
        return f"{self.tag}:done:"
