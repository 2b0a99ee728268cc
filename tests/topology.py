"""Real Redis topologies for tests and benchmarks, started from the redis-server binary:
a Redis Cluster (3 masters and 3 replicas unless asked otherwise), and a Sentinel group
(a master, a replica, 3 sentinels). Every process dies with the test process (parent
death signal) and `stop` removes their directories; waits are on conditions with
deadlines, never fixed sleeps."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis
from redis.crc import key_slot

from tasker_dist.parent_death import spawn
from tasker_dist.spread import SLOTS
from tasker_dist.store import find_server_binary

from .conftest import wait_until

__all__ = ["Cluster", "Node", "SentinelGroup"]

START_S = 30.0  # for a topology to form, and for a failover


def _free_port(bus: bool = False) -> int:
    """A free loopback port; with ``bus``, one whose cluster bus port (+10000) is free
    too, so below the kernel's ephemeral range (which +10000 would take past 65535)."""
    while True:
        port = random.randrange(20000, 30000) if bus else 0
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
                if bus:
                    with socket.socket() as b:
                        b.bind(("127.0.0.1", port + 10000))
                found: int = s.getsockname()[1]
                return found
        except OSError:
            continue


@dataclass
class Node:
    """One server process."""

    port: int
    workdir: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.process = spawn(self.argv, cwd=self.workdir, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)  # fmt: skip
        log.close()
        wait_until(self.answers, timeout=START_S, message=f"server on port {self.port}")

    def answers(self) -> bool:
        try:
            with self.client() as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _node(root: Path, extra: list[str], bus: bool = False) -> Node:
    port = _free_port(bus)
    workdir = root / str(port)
    workdir.mkdir()
    argv = [find_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), *extra]  # fmt: skip
    return Node(port, workdir, argv)


def _ask(node: Node, *command: str) -> object:
    """The node's reply, or None if it does not answer."""
    try:
        with node.client() as c:
            return c.execute_command(*command)
    except (redis.RedisError, OSError):
        return None


def _info(node: Node, section: str) -> dict[str, object]:
    reply = _ask(node, "INFO", section)
    return reply if isinstance(reply, dict) else {}


def _cluster_state(node: Node) -> object:
    reply = _ask(node, "CLUSTER", "INFO")
    if isinstance(reply, bytes):  # redis-py leaves it unparsed here
        reply = reply.decode()
    if isinstance(reply, str):
        fields = dict(line.split(":", 1) for line in reply.split() if ":" in line)
        return fields.get("cluster_state")
    return None


@dataclass
class Cluster:
    """``masters`` masters, each with ``replicas`` replicas (``--cluster-node-timeout``
    1 s); master ``i`` serves the ``i``-th of equal ranges of the slots, the ranges
    `tasker_dist.spread.sub_queues` names sub-queues for."""

    root: Path
    masters: int = 3
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def start(cls, masters: int = 3, replicas: int = 1) -> Cluster:
        cluster = cls(Path(tempfile.mkdtemp(prefix="tasker-cluster-")), masters)
        try:
            for _ in range(masters * (1 + replicas)):
                options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                           "--cluster-node-timeout", "1000"]  # fmt: skip
                node = _node(cluster.root, options, bus=True)
                node.start()
                cluster.nodes.append(node)
            cluster._form(replicas)
            wait_until(cluster._formed, timeout=START_S, message="the cluster to form")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _form(self, replicas: int) -> None:
        """What ``redis-cli --cluster create`` does (which refuses fewer than 3 masters)."""
        heads, others = self.nodes[: self.masters], self.nodes[self.masters :]
        for i, node in enumerate(heads):
            low, high = i * SLOTS // self.masters, (i + 1) * SLOTS // self.masters - 1
            assert _ask(node, "CLUSTER", "ADDSLOTSRANGE", str(low), str(high)), node.port
        for node in self.nodes[1:]:
            assert _ask(node, "CLUSTER", "MEET", "127.0.0.1", str(self.nodes[0].port))
        for i, node in enumerate(others):
            reply = _ask(heads[i // replicas], "CLUSTER", "MYID")
            master_id = reply.decode() if isinstance(reply, bytes) else str(reply)
            # A replica is taken once it has heard of its master through the bus.
            wait_until(partial(_ask, node, "CLUSTER", "REPLICATE", master_id),
                       timeout=START_S, interval=0.05, message="a replica to be taken")  # fmt: skip

    @property
    def url(self) -> str:
        masters = [n for n in self.nodes if n.alive][:3]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in masters)

    def _formed(self) -> bool:
        for node in self.nodes:
            if _cluster_state(node) != "ok":
                return False
            info = _info(node, "replication")
            if not info or (info["role"] == "slave" and info.get("master_link_status") != "up"):
                return False
        return True

    def _slots(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) from a live node."""
        for node in self.nodes:
            if not node.alive:
                continue
            reply = _ask(node, "CLUSTER", "SLOTS")
            if isinstance(reply, list):
                return [(int(r[0]), int(r[1]), int(r[2][1])) for r in reply]
        raise AssertionError("no cluster node answers")

    def master_for(self, key: str) -> Node:
        slot = key_slot(key.encode())
        for first, last, port in self._slots():
            if first <= slot <= last:
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no master serves slot {slot}")

    def kill(self, node: Node) -> None:
        node.kill()

    def wait_failover(self, old: Node, timeout: float = START_S) -> Node:
        """Wait until a replica serves the slots ``old`` served, as every live node sees it."""

        def promoted() -> Node | None:
            try:
                ports = {port for *_, port in self._slots()}
            except AssertionError:
                return None
            if old.port in ports:
                return None
            if any(_cluster_state(n) != "ok" for n in self.nodes if n.alive):
                return None
            return next(n for n in self.nodes if n.port in ports and n.alive)

        found = wait_until(promoted, timeout=timeout, interval=0.05, message="the failover")
        assert isinstance(found, Node)
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SentinelGroup:
    """A master, one replica and 3 sentinels watching them (``down-after`` 1 s)."""

    root: Path
    service: str
    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    @classmethod
    def start(cls, service: str = "tasker") -> SentinelGroup:
        group = cls(Path(tempfile.mkdtemp(prefix="tasker-sentinel-")), service)
        try:
            master = _node(group.root, [])
            master.start()
            replica = _node(group.root, ["--replicaof", "127.0.0.1", str(master.port)])
            replica.start()
            group.servers = [master, replica]
            wait_until(lambda: _info(replica, "replication").get("master_link_status") == "up",
                       timeout=START_S, message="the replica to sync")  # fmt: skip
            for _ in range(3):
                port = _free_port()
                workdir = group.root / f"sentinel-{port}"
                workdir.mkdir()
                conf = workdir / "sentinel.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                    f"sentinel monitor {service} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {service} 1000\n"
                    f"sentinel failover-timeout {service} 3000\n"
                    f"sentinel parallel-syncs {service} 1\n"
                )
                sentinel = Node(port, workdir, [find_server_binary(), str(conf), "--sentinel"])
                sentinel.start()
                group.sentinels.append(sentinel)
            wait_until(group._watching, timeout=START_S, message="the sentinels to agree")
        except BaseException:
            group.stop()
            raise
        return group

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def _watching(self) -> bool:
        """Every sentinel knows the master, its replica and the 2 other sentinels: a
        failover needs a majority of them to elect a leader."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as c:
                    state = c.sentinel_master(self.service)
            except (redis.RedisError, OSError):
                return False
            if state["num-other-sentinels"] != 2 or state["num-slaves"] != 1:
                return False
        return True

    def master(self) -> Node:
        """The server the sentinels name master now."""
        with self.sentinels[0].client() as c:
            _, port = c.sentinel_get_master_addr_by_name(self.service)
        return next(n for n in self.servers if n.port == int(port))

    def replicas(self) -> list[Node]:
        """The live servers that are not the master now."""
        master = self.master()
        return [n for n in self.servers if n is not master and n.alive]

    def kill_master(self) -> Node:
        old = self.master()
        old.kill()
        return old

    def wait_failover(self, old: Node, timeout: float = START_S) -> Node:
        """Wait until the sentinels name another master and it says it is one."""

        def promoted() -> Node | None:
            try:
                new = self.master()
            except (redis.RedisError, StopIteration):
                return None
            if new is old or _info(new, "replication").get("role") != "master":
                return None
            return new

        found = wait_until(promoted, timeout=timeout, interval=0.05, message="the failover")
        assert isinstance(found, Node)
        return found

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
