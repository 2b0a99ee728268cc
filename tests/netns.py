"""Hosts for multi-host tests: Linux network namespaces joined by veth pairs (root and
iproute2's `ip` needed; `netns_unavailable` says why not where they are missing).

One "redis" host, and each other host joined to it by a veth pair of its own: pair k has
10.231.k.1/24 on the redis side and 10.231.k.2/24 on the host's. Every address, route
and link is inside the namespaces made here; the root namespace's are never touched.
`cut` and `restore` set a host's end of its pair down and up (a cable pulled and put
back), inside the namespace that owns it.

Processes started with `Hosts.run` die with the test process (parent death signal);
`cleanup` ends them and everything else inside the namespaces, then deletes the
namespaces, and those that earlier runs killed before their cleanup left behind (their
names hold the pid of the process that made them: ``tdist-<pid>-<n>-<host>``)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import TAG_ENV, ChildProcess, alive, wait_until

__all__ = ["REDIS", "Hosts", "list_namespaces", "netns_unavailable"]

PREFIX = "tdist-"
REDIS = "redis"
#: The host's end of its veth pair, in its own namespace.
UPLINK = "uplink"
IP_TIMEOUT_S = 10.0

_serial = itertools.count(1)


class IpError(RuntimeError):
    """An `ip` command failed (its stderr is the message)."""


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False,
                          timeout=IP_TIMEOUT_S)  # fmt: skip
    if done.returncode != 0:
        raise IpError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@functools.cache
def netns_unavailable() -> str | None:
    """None if this process can make namespaces and veth pairs, else why not."""
    if sys.platform != "linux":
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "needs root (ip netns, veth pairs)"
    if shutil.which("ip") is None:
        return "needs `ip` (apt-get install iproute2)"
    try:
        with Hosts.start("probe"):
            pass
    except (IpError, OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` does not work here: {exc}"
    return None


def list_namespaces() -> list[str]:
    """Names of every namespace `ip netns` knows."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _pids_in(netns: str) -> list[int]:
    try:
        return [int(p) for p in _ip("netns", "pids", netns).split()]
    except IpError:  # gone meanwhile
        return []


def _remove(netns: str) -> None:
    """Kill whatever runs inside ``netns``, then delete it (its veth ends go with it)."""
    for pid in _pids_in(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _pids_in(netns), timeout=IP_TIMEOUT_S,
               message=f"the processes in {netns} to end")  # fmt: skip
    with contextlib.suppress(IpError):  # deleted meanwhile
        _ip("netns", "delete", netns)


def _remove_leftovers() -> None:
    """Delete the namespaces of earlier runs whose process is dead (killed before its
    cleanup ran)."""
    for netns in list_namespaces():
        if not netns.startswith(PREFIX):
            continue
        owner = netns[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not alive(int(owner)):
            _remove(netns)


class Hosts:
    """A "redis" host and ``names`` other hosts, each in its own network namespace."""

    def __init__(self, names: tuple[str, ...]) -> None:
        if REDIS in names or len(set(names)) != len(names) or len(names) > 254:
            raise ValueError(f"hosts must be unique, not {REDIS!r}, and 254 at most: {names}")
        #: Every namespace made here is named with this, and every process started with
        #: `run` has it in its environment as $TASKER_TEST_TAG.
        self.prefix = f"{PREFIX}{os.getpid()}-{next(_serial)}-"
        self._index = {name: k for k, name in enumerate(names, start=1)}
        self.names = (REDIS, *names)
        self.namespaces: list[str] = []  # those made so far
        self.processes: list[ChildProcess] = []

    @classmethod
    def start(cls, *names: str) -> Hosts:
        hosts = cls(names)
        try:
            _remove_leftovers()
            hosts._make()
        except BaseException:
            hosts.cleanup()
            raise
        return hosts

    def netns(self, host: str) -> str:
        assert host in self.names, f"no host {host!r}"
        return self.prefix + host

    def _make(self) -> None:
        for host in self.names:
            _ip("netns", "add", self.netns(host))
            self.namespaces.append(self.netns(host))
            _ip("-n", self.netns(host), "link", "set", "lo", "up")
        for host, k in self._index.items():
            # Made in the two namespaces at once: neither end is ever in the root one.
            _ip("link", "add", UPLINK, "netns", self.netns(host), "type", "veth",
                "peer", "name", f"host{k}", "netns", self.netns(REDIS))  # fmt: skip
            for netns, link, address in ((self.netns(REDIS), f"host{k}", f"10.231.{k}.1"),
                                         (self.netns(host), UPLINK, f"10.231.{k}.2")):  # fmt: skip
                _ip("-n", netns, "addr", "add", f"{address}/24", "dev", link)
                _ip("-n", netns, "link", "set", link, "up")

    def address_of_redis_for(self, host: str) -> str:
        """The redis host's address on ``host``'s link (what ``host`` connects to)."""
        return f"10.231.{self._index[host]}.1"

    def addresses_of_redis(self) -> list[str]:
        """The redis host's address on each link."""
        return [self.address_of_redis_for(host) for host in self._index]

    def run(self, host: str, argv: list[str], env: dict[str, str], log_path: Path) -> ChildProcess:
        """Start ``argv`` inside ``host``'s namespace (stdout and stderr to ``log_path``);
        it dies with the test process, and `cleanup` ends it."""
        full_env = {**env, TAG_ENV: self.prefix}
        process = ChildProcess(["ip", "netns", "exec", self.netns(host), *argv], full_env,
                               log_path, name=f"{Path(argv[0]).name}@{host}")  # fmt: skip
        self.processes.append(process)
        return process

    def cut(self, host: str) -> None:
        """Take ``host``'s link down: nothing reaches it or leaves it until `restore`."""
        _ip("-n", self.netns(host), "link", "set", UPLINK, "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.netns(host), "link", "set", UPLINK, "up")

    def cleanup(self) -> None:
        """End every process started here (SIGTERM, then SIGKILL), then whatever else
        runs in the namespaces, and delete them; and the leftovers of dead runs."""
        for process in reversed(self.processes):
            process.stop(timeout=10)
        for netns in reversed(self.namespaces):
            _remove(netns)
        self.namespaces.clear()
        _remove_leftovers()

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
