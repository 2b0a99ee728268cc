"""Worker processes the benchmarks start, and what /proc says about them.

The harness must never leave a process behind, even when a run fails: every worker is
started with a parent-death signal, stopped with SIGTERM then SIGKILL (its whole tree,
snapshotted before the roots exit, since orphans are re-parented and cannot be found from
the root any more), and the driver process that starts them runs in a process group of
its own that the orchestrator kills as a last resort.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "WorkerGroup",
    "die_with_parent",
    "kill_tree",
    "start_ticks",
    "tree_cpu_s",
    "tree_pids",
    "tree_rss_bytes",
]

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
# Not tasker_dist.parent_death's: the drivers of the peers import this module in the
# peers' virtualenv, where tasker-dist is not installed.
# Loaded before any fork: a preexec_fn must not load libraries (it may run while other
# threads, such as the RSS sampler, hold the loader's lock).
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to this child when the process that started it
    dies, so a driver killed mid-run takes its workers with it."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(roots: Iterable[int]) -> set[int]:
    """The roots and all their descendants alive now (one scan of /proc: this kernel has
    no /proc/<pid>/task/<tid>/children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid for pid in roots if Path(f"/proc/{pid}").exists()]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """Sum of the resident set sizes (shared pages counted in each process, as `ps` does)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    return total


def tree_cpu_s(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    ticks = 0
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            # utime and stime are fields 14 and 15 of stat; the list starts at field 3.
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS_PER_S


def start_ticks(pid: int) -> str | None:
    """When the process started (stat field 22): with the pid, names one process for good,
    so a pid reused by an unrelated process is never signalled."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]


def kill_tree(processes: dict[int, str | None]) -> None:
    """SIGKILL each (pid, start time) that still names the same live process."""
    for pid, started in processes.items():
        if started is not None and start_ticks(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class WorkerGroup:
    """The worker processes of one system for one workload: started together, watched
    (peak RSS of their tree, sampled every ``sample_s``), stopped together."""

    def __init__(
        self,
        commands: Sequence[Sequence[str]],
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        sample_s: float = 0.05,
    ) -> None:
        self._commands = commands
        self._env = env
        self._cwd = cwd
        self.log_path = log_path
        self._sample_s = sample_s
        self._procs: list[subprocess.Popen[bytes]] = []
        self._log: IO[bytes] | None = None
        self._known: dict[int, str | None] = {}
        self._known_lock = threading.Lock()
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self.peak_rss_bytes = 0

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        for command in self._commands:
            self._procs.append(
                subprocess.Popen(
                    list(command), cwd=self._cwd, env=self._env, stdin=subprocess.DEVNULL,
                    stdout=self._log, stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,  # noqa: PLW1509 (prctl only)
                )
            )  # fmt: skip
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._sampler.start()

    def pids(self) -> set[int]:
        pids = tree_pids(self.roots)
        with self._known_lock:
            for pid in pids - self._known.keys():
                self._known[pid] = start_ticks(pid)
        return pids

    def check_alive(self) -> None:
        """Raise if a worker root exited: the workload would otherwise wait forever."""
        for proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker {proc.args!r} exited with {proc.returncode}; log: {self.log_path}"
                )

    def wait_idle(
        self,
        min_s: float = 1.0,
        window_s: float = 0.5,
        busy_fraction: float = 0.05,
        timeout_s: float = 30.0,
    ) -> float | None:
        """Wait until the workers are done starting: their CPU use over ``window_s`` is
        below ``busy_fraction`` of one core (imports, forks and connections finished).
        Returns None once idle, or the cores they kept busy if they never went idle
        within ``timeout_s`` (the workload goes on: that is how the system behaves)."""
        started = time.monotonic()
        history: list[tuple[float, float]] = []
        while True:
            self.check_alive()
            now = time.monotonic()
            history.append((now, tree_cpu_s(self.pids())))
            history = [h for h in history if now - h[0] <= window_s + 0.05]
            span = now - history[0][0]
            busy = max(0.0, history[-1][1] - history[0][1]) / span if span > 0 else 1.0
            if now - started >= min_s and span >= window_s and busy < busy_fraction:
                return None
            if now - started > timeout_s:
                return busy
            time.sleep(0.1)

    def _sample(self) -> None:
        while not self._stop_sampling.wait(self._sample_s):
            self.peak_rss_bytes = max(self.peak_rss_bytes, tree_rss_bytes(self.pids()))

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the roots (each system shuts its own children down), then SIGKILL every
        process of the tree that is still there after ``grace_s``."""
        self._stop_sampling.set()
        if self._sampler is not None:
            self._sampler.join()
        self.pids()  # snapshot the tree before the roots go
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        self.pids()  # roots still alive after the grace: their children too
        with self._known_lock:
            known = dict(self._known)
        kill_tree(known)
        for proc in self._procs:
            proc.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> WorkerGroup:
        try:
            self.start()
        except BaseException:
            self.stop(grace_s=0)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
