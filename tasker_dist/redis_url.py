"""Parsing the Redis URLs tasker-dist accepts into a `RedisTarget` (no I/O).

Three topologies, one URL each:

- one server: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs, as redis-py reads
  them;
- a Sentinel-watched master: ``redis+sentinel://[[user]:password@]host:port[,host:port...]
  /service_name[/db]``: the addresses are the sentinels', the password the master's
  (``?sentinel_password=...`` if the sentinels want one of their own);
- a Redis Cluster: ``redis+cluster://[[user]:password@]host:port[,host:port...]``: any
  nodes of the cluster, from which the rest is discovered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ConfigError

__all__ = ["SCHEMES", "RedisTarget", "Topology", "parse_redis_url", "safe_url"]


class Topology(Enum):
    SINGLE = "single server"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")

_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^:,\[\]]+)(?::(\d{1,5}))?")
_DEFAULT_PORTS = {Topology.SENTINEL: 26379, Topology.CLUSTER: 6379}
_SENTINEL_OPTIONS = {"sentinel_password"}


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: ``url`` itself for a single server; for Sentinel or Cluster, the
    ``nodes`` to ask (sentinels, or cluster seed nodes) and the credentials."""

    url: str
    topology: Topology
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return safe_url(self.url)


def parse_redis_url(url: object, field_name: str = "redis_url") -> RedisTarget:
    """The `RedisTarget` of ``url``; raises `ConfigError` naming what is wrong."""
    if not isinstance(url, str) or not url.startswith(SCHEMES):
        raise ConfigError(
            f"{field_name} must start with one of {', '.join(SCHEMES)}, got {_shown(url)}"
        )
    if url.startswith(("redis://", "rediss://", "unix://")):
        if "cluster=" in url.partition("?")[2]:
            raise ConfigError(
                f"{field_name}: for a Redis Cluster write redis+cluster://host:port[,host:port"
                f"...], got {safe_url(url)}"
            )
        return RedisTarget(url, Topology.SINGLE)
    topology = Topology.SENTINEL if url.startswith("redis+sentinel://") else Topology.CLUSTER
    form = (
        "redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]"
        if topology is Topology.SENTINEL
        else "redis+cluster://[[user]:password@]host:port[,host:port...]"
    )

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{field_name}: {why}; expected {form}, got {safe_url(url)}")

    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(credentials)
    nodes = tuple(_address(a, _DEFAULT_PORTS[topology], bad) for a in hosts.split(","))
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(options) - (_SENTINEL_OPTIONS if topology is Topology.SENTINEL else set())
    if unknown:
        raise bad(f"unknown option {', '.join(sorted(unknown))}")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if topology is Topology.CLUSTER:
        if path:
            raise bad("a cluster URL has no path (a cluster has only database 0)")
        return RedisTarget(url, topology, nodes, None, 0, username, password)
    if not path or len(path) > 2:
        raise bad("the master's service name is missing" if not path else "too many path parts")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise bad(f"database must be a number, got {path[1]!r}")
        db = int(path[1])
    return RedisTarget(url, topology, nodes, path[0], db, username, password,
                       options.get("sentinel_password"))  # fmt: skip


def _credentials(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    user, colon, password = text.partition(":")
    if not colon:  # "secret@host" is read as a password, as redis-py does for redis://
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def _address(text: str, default_port: int, bad: Callable[[str], ConfigError]) -> tuple[str, int]:
    match = _ADDRESS.fullmatch(text)
    if match is None:
        raise bad(f"{text!r} is not host:port")
    host, port = match.group(1).strip("[]"), match.group(2)
    number = default_port if port is None else int(port)
    if not 0 < number < 65536:
        raise bad(f"port {number} is out of range")
    return host, number


def safe_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _shown(url: object) -> str:
    return safe_url(url) if isinstance(url, str) else repr(url)
