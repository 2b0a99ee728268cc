"""`ResultListener`: one pub/sub connection per producer that resolves every waiting call.

Workers publish each result on the reply channel named in its envelope, so results come
back without polling and without a blocked connection per waiting call. Results of tasks
queued elsewhere (`Producer.result`) come on the task's done channel, to which the
listener subscribes while someone waits.

Pub/sub delivers only what is published after Redis has registered a subscription, and
replays nothing missed while a connection was down. So the result keys are read again
each time Redis confirms a subscription (first, and after every reconnect, when redis-py
subscribes again): a result stored before that moment is found by the read, and one
stored after it is published on the channel.

The listener thread alone uses the connection, and waits on it without a timeout of its
own: a caller that needs a done channel subscribed (or no longer) queues the change and
wakes the thread, so the change is sent at once, and an idle listener costs no CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import threading
from concurrent.futures import Future, InvalidStateError
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from ..backoff import Backoff
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    RedisUnavailable,
    ResultExpired,
    SerializationError,
    TaskLost,
    TaskNotFound,
    TaskRejected,
)
from ..store import QueueStore
from ..wire import (
    Outcome,
    Signer,
    decode_result,
    new_task_id,
    peek_task_id,
    queued_at,
    unverified_contents,
)

__all__ = ["ResultListener", "TaskFuture", "missing"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# What workers of earlier versions publish on a done channel instead of the result.
_ANNOUNCED = b"1"

# Messages handled at most before the result keys they call for are read.
_BATCH = 1000

#: Under a maxmemory-policy that evicts, how often (seconds) the listener checks that
#: the tasks it waits for are still in Redis: one evicted would be waited for forever.
SWEEP_S = 30.0


class TaskFuture(Future[T], Generic[T]):
    """A `concurrent.futures.Future` that also knows its task's id."""

    def __init__(self, task_id: str, epoch: int | None = None, sweep: int | None = None) -> None:
        super().__init__()
        self.task_id = task_id
        # The listener's connection epoch, and how many eviction checks it had made, when
        # the task was known to be in Redis; None while it is being queued (a check then
        # would find it missing and fail a task that is fine).
        self._epoch = epoch
        self._sweep = sweep


class ResultListener:
    def __init__(self, store: QueueStore, signer: Signer, clock: Clock = SYSTEM_CLOCK) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self.channel = store.keys.reply_channel(new_task_id())
        self._futures: dict[str, TaskFuture[Any]] = {}
        # Tasks queued elsewhere that `result` calls wait for: id -> number of waiters.
        self._foreign: dict[str, int] = {}
        self._lock = threading.Lock()
        # Counts the times the connection was lost: a task waited for since before the
        # last loss is checked for in Redis once the listener is back.
        self._epoch = 0
        # Redis confirmed the subscriptions again after a reconnect: the results stored
        # meanwhile are still to be read (set until a read succeeds, which may take
        # several tries while a failover completes).
        self._reconnected = False
        # Under an evicting maxmemory-policy, every `SWEEP_S` the tasks waited for since
        # before the previous check are checked for (see `_sweep`).
        policy = store.eviction_policy()
        self._evicting = policy if policy not in (None, "noeviction") else None
        self._sweeps = 0
        self._next_sweep = clock.monotonic() + SWEEP_S
        # (subscribe?, channel) changes for the listener thread, applied in order.
        self._changes: list[tuple[bool, str]] = []
        # Tasks whose result keys the listener thread is to read (their done channels
        # were confirmed); kept until a read succeeds.
        self._unread: dict[str, None] = {}
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._subscription = store.subscription()
        self._thread = threading.Thread(target=self._run, name="tasker-results", daemon=True)
        self._thread.start()
        if not self._ready.wait(store.timeout) or self._error is not None:
            self.close()
            raise self._error or RedisUnavailable(
                f"result listener could not subscribe on {store.url}"
            )

    # -- called by producers ------------------------------------------------------------
    def expect(self, task_id: str) -> TaskFuture[Any]:
        """A future for a task about to be queued with this listener's reply channel;
        `queued` must follow once Redis has accepted the task (or `discard`)."""
        with self._lock:
            future: TaskFuture[Any] = TaskFuture(task_id)
            self._futures[task_id] = future
        return future

    def queued(self, future: TaskFuture[Any]) -> None:
        """Redis accepted the task of ``future``: from now on, were it to vanish from
        Redis (a restart without data, an eviction), its caller is told."""
        with self._lock:
            future._epoch, future._sweep = self._epoch, self._sweeps

    def watch(self, task_id: str) -> TaskFuture[Any]:
        """A future for any task by id (queued by any process); shared by every caller
        waiting for that task. Each call must be paired with `unwatch`."""
        with self._lock:
            future = self._futures.get(task_id)
            if future is not None:
                if task_id in self._foreign:
                    self._foreign[task_id] += 1
                return future
            future = self._futures[task_id] = TaskFuture(task_id, self._epoch, self._sweeps)
            self._foreign[task_id] = 1
            self._change(True, self._store.keys.done_channel(task_id))
        return future

    def deliver(self, task_id: str, data: bytes) -> None:
        """Resolve the waiters of ``task_id`` with its result frame ``data``, read by the
        caller (a result that was stored before anyone waited)."""
        self._resolve_bytes(data, task_id)

    def unwatch(self, task_id: str) -> None:
        """One `watch` caller stopped waiting; the last one takes the future away."""
        with self._lock:
            waiters = self._foreign.get(task_id)
            if waiters is None:
                return  # this process queued the task: its own caller still waits
            if waiters > 1:
                self._foreign[task_id] = waiters - 1
                return
            del self._foreign[task_id]
            self._futures.pop(task_id, None)
            self._drop_channel(task_id)

    def discard(self, task_id: str) -> None:
        """Forget a task of this process that could not be queued."""
        with self._lock:
            self._futures.pop(task_id, None)

    def fail_all(self, error_for: Any) -> None:
        """Resolve every waiting future with ``error_for(task_id)`` (kill, close)."""
        with self._lock:
            futures = list(self._futures.items())
            self._futures.clear()
        for task_id, future in futures:
            if not future.done():
                _settle(future, error=error_for(task_id))

    def close(self) -> None:
        """Stop the thread and close the store (the listener's own)."""
        self._closed.set()
        self._subscription.wake()
        if threading.current_thread() is not self._thread:  # a finalizer may run on it
            self._thread.join(timeout=2)
        self._subscription.close()
        self._store.close()

    # -- the listener thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            # The rejected channel first: once the reply channel is confirmed (ready),
            # so is it, since Redis confirms subscriptions in order.
            self._subscription.subscribe(self._store.keys.rejected_channel)
            self._subscription.subscribe(self.channel)
        except RedisUnavailable as exc:
            self._error = exc
            self._ready.set()
            return
        backoff = Backoff(0.05, 2.0, jitter=0.0)
        while not self._closed.is_set():
            try:
                self._apply_subscriptions()
                self._handle_arrived()
                if self._reconnected:
                    self._after_reconnect()
                    self._reconnected = False
                self._read_unread()
                if self._evicting is not None:
                    self._sweep()
                backoff.reset()
            except RedisUnavailable as exc:
                self._epoch += 1
                delay = backoff.next()
                log.warning("result listener lost Redis (%s); retrying in %.2fs", exc, delay)
                self._clock.wait(self._closed, delay)
            except Exception:  # a bug of ours: every later call would hang without us
                log.exception("result listener: handling a message failed; going on")

    def _handle_arrived(self) -> None:
        """Wait for a message, then handle it and those already arrived behind it (up
        to `_BATCH`), so that the result keys they call for are read in one round trip."""
        if self._reconnected or self._unread:  # reads still to make (they failed): no wait
            message = self._subscription.get_message(wait=False)
        else:
            due = self._next_sweep - self._clock.monotonic() if self._evicting else None
            message = self._subscription.get_message(timeout=None if due is None
                                                     else max(due, 0.0))  # fmt: skip
        for handled in range(1, _BATCH + 1):
            if message is None or self._closed.is_set():  # closed by a waiter's callback
                return
            self._handle(message.kind, message.channel, message.data)
            if handled < _BATCH:  # a message read past the batch would be lost
                message = self._subscription.get_message(wait=False)

    def _apply_subscriptions(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        # In order, but each run of subscriptions (or of unsubscriptions) as one command.
        runs = [
            (subscribe, [channel for _, channel in run])
            for subscribe, run in itertools.groupby(changes, key=operator.itemgetter(0))
        ]
        for i, (subscribe, channels) in enumerate(runs):
            ids = [channel.rsplit(":", 1)[1] for channel in channels]
            try:
                # Counted in before subscribing, so a result written after the read that
                # follows the confirmation is published; counted out after leaving. A
                # count left too high (a step retried) costs a publish to nobody, no more.
                if subscribe:
                    self._store.watch(ids, 1)
                    self._subscription.subscribe(*channels)  # results read once confirmed
                else:
                    self._subscription.unsubscribe(*channels)
                    self._store.watch(ids, -1)
            except RedisUnavailable:
                # redis-py subscribes again after a reconnect only to what it sent: the
                # rest goes out then, ahead of later changes, or its waiters hear nothing.
                with self._lock:
                    self._changes[:0] = [(s, c) for s, run in runs[i:] for c in run]
                raise

    def _handle(self, kind: str, name: str, data: Any) -> None:
        rejected = name == self._store.keys.rejected_channel
        if kind == "message":
            if name == self.channel or rejected:
                self._resolve_bytes(data)
            elif data == _ANNOUNCED:  # a worker that publishes no result: read its key
                self._unread[name.rsplit(":", 1)[1]] = None
            else:  # a done channel: the result itself
                self._resolve_bytes(data, name.rsplit(":", 1)[1])
        elif kind == "subscribe" and not rejected:
            if name != self.channel:
                self._unread[name.rsplit(":", 1)[1]] = None
            elif not self._ready.is_set():
                self._ready.set()  # from now on no result of ours can be missed
            else:  # subscribed again after a reconnect
                self._reconnected = True

    def _after_reconnect(self) -> None:
        """Read the results published while the connection was down, and fail with
        `TaskLost` the tasks waited for since before it went down that Redis no longer
        has at all (it restarted without its data): their callers would wait forever."""
        with self._lock:
            # task id -> waited for since before the last outage
            waiting = {t: f._epoch is not None and f._epoch < self._epoch
                       for t, f in self._futures.items() if not f.done()}  # fmt: skip
            foreign = set(self._foreign)
        # A task queued elsewhere and waited for only since the outage is read when Redis
        # confirms its done channel instead.
        ids = [t for t, before in waiting.items() if before or t not in foreign]
        self._check_present(ids, {t for t in ids if waiting[t]},
                            "it restarted without its data, or the keys were deleted")  # fmt: skip

    def _sweep(self) -> None:
        """Under an evicting maxmemory-policy, Redis may drop a task (its envelope, its
        result) while its caller waits: every `SWEEP_S`, fail with `TaskLost` the tasks
        waited for since before the previous check that Redis no longer has."""
        now = self._clock.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_S
        with self._lock:
            self._sweeps += 1
            ids = [t for t, f in self._futures.items()
                   if not f.done() and f._sweep is not None
                   and f._sweep < self._sweeps - 1]  # fmt: skip
        reason = f"evicted by Redis under maxmemory-policy {self._evicting}"
        self._check_present(ids, set(ids), reason)

    def _check_present(self, ids: list[str], lost_if_gone: set[str], why: str) -> None:
        """Resolve each of ``ids`` whose result is stored; fail those of ``lost_if_gone``
        that Redis has neither queued, running nor finished (``why``: how it went)."""
        for task_id, presence in zip(ids, self._store.presence(ids), strict=True):
            if presence.result is not None:
                self._resolve_bytes(presence.result, task_id)
            elif presence.queued or task_id not in lost_if_gone:
                continue
            elif presence.finished:  # its result went while nobody was listening
                self._fail(task_id, missing(task_id, self._store.keys.queue, finished=True))
            else:
                log.error("task %s is lost: Redis no longer has it", task_id)
                lost = TaskLost(f"task {task_id} is lost: Redis no longer has it queued, "
                                f"running or finished ({why})")  # fmt: skip
                self._fail(task_id, lost)

    def _read_unread(self) -> None:
        if not self._unread:
            return
        task_ids = list(self._unread)
        for task_id, data in zip(task_ids, self._store.get_results(task_ids), strict=True):
            del self._unread[task_id]
            if data is not None:
                self._resolve_bytes(data, task_id)

    def _resolve_bytes(self, data: bytes, task_id: str | None = None) -> None:
        """Resolve a future from a result frame. A frame that fails verification fails
        the task it was read for; one that was published, the task it names, with
        `TaskRejected` (an error only: nothing in it is used, and only a task this
        listener waits for is touched)."""
        try:
            outcome = decode_result(self._signer.open(data))
        except SerializationError as exc:
            self._refused(data, task_id, exc)
            return
        if task_id is not None and outcome.task_id != task_id:
            self._fail(task_id, TaskRejected(f"result stored for task {task_id} names task "
                                             f"{outcome.task_id!r}"))  # fmt: skip
            return
        self._resolve(outcome)

    def _refused(self, data: bytes, task_id: str | None, exc: SerializationError) -> None:
        if task_id is not None:
            log.error("result of task %s refused: %s", task_id, exc)
            self._fail(task_id, TaskRejected(f"result of task {task_id} refused: {exc}"))
            return
        peeked = peek_task_id(unverified_contents(data))
        if peeked is None:
            log.error("a result was refused: %s", exc)
            return
        task_id, message = peeked
        with self._lock:
            if task_id not in self._futures:
                return  # another producer's task, or a forgery about nobody here
        log.error("result of task %s refused: %s", task_id, exc)
        what = "finished" if message is None else f"failed ({message!r})"
        self._fail(task_id, TaskRejected(
            f"task {task_id} {what}, but its result did not verify here ({exc}): do this "
            "producer and the workers share the secret?"))  # fmt: skip

    def _take(self, task_id: str) -> TaskFuture[Any] | None:
        """Remove and return the future waiting for ``task_id`` (None if nobody waits)."""
        with self._lock:
            future = self._futures.pop(task_id, None)
            if self._foreign.pop(task_id, None) is not None:
                self._drop_channel(task_id)
        return None if future is None or future.done() else future

    def _drop_channel(self, task_id: str) -> None:
        """Unsubscribe from a task's done channel (the lock is held): a subscription not
        yet made is simply not made."""
        channel = self._store.keys.done_channel(task_id)
        try:
            self._changes.remove((True, channel))
        except ValueError:
            self._change(False, channel)

    def _change(self, subscribe: bool, channel: str) -> None:
        """Queue a change for the listener thread (the lock is held), and wake it if
        this is the first since it took the last ones: one wake-up for many changes."""
        if not self._changes:
            self._subscription.wake()
        self._changes.append((subscribe, channel))

    def _fail(self, task_id: str, error: BaseException) -> None:
        future = self._take(task_id)
        if future is not None:
            _settle(future, error=error)

    def _resolve(self, outcome: Outcome) -> None:
        future = self._take(outcome.task_id)
        if future is None:
            return
        try:
            value = outcome.unwrap()
        except BaseException as exc:  # the task's own error, rebuilt
            _settle(future, error=exc)
        else:
            _settle(future, value=value)


def missing(task_id: str, queue: str, finished: bool) -> TaskNotFound:
    """The error for a task Redis has neither queued, running nor a result of: its result
    expired if it ``finished`` (its id is kept in a finished set longer than the result),
    else there is no such task."""
    if not finished:
        return TaskNotFound(f"no task {task_id} was ever queued on {queue!r}, or its "
                            "result expired more than a result_ttl ago")  # fmt: skip
    when, stamp = "", queued_at(task_id)
    if stamp is not None:
        when = f" at {datetime.fromtimestamp(stamp, UTC).isoformat(timespec='seconds')}"
    return ResultExpired(f"the result of task {task_id} (queued on {queue!r}{when}) has "
                         "expired (result_ttl) or was deleted")  # fmt: skip


def _settle(
    future: TaskFuture[Any], *, value: Any = None, error: BaseException | None = None
) -> None:
    """Give ``future`` its outcome, unless its caller gave up meanwhile (cancelled it,
    or an ``asyncio.wait_for`` timed out) while the result was being decoded."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
