"""The Redis URLs accepted for each topology, and the clear errors for the rest; what the
server check refuses (no Redis needed: the server's INFO is given)."""

from __future__ import annotations

import pytest

from tasker_dist import Config, ConfigError, Producer
from tasker_dist.redis_url import RedisTarget, Topology, parse_redis_url
from tasker_dist.store.calls import server_problem


def test_single_server_urls_are_kept_as_they_are() -> None:
    for url in ("redis://h:6379/2", "rediss://:pw@h", "unix:///tmp/r.sock?db=1"):
        assert parse_redis_url(url) == RedisTarget(url, Topology.SINGLE)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db() -> None:
    target = parse_redis_url("redis+sentinel://user:p%40ss@s1:26379,s2,[::1]:26380/jobs/3"
                             "?sentinel_password=spw")  # fmt: skip
    assert target.topology is Topology.SENTINEL
    assert target.nodes == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.service, target.db) == ("jobs", 3)
    assert (target.username, target.password, target.sentinel_password) == ("user", "p@ss", "spw")
    assert "p@ss" not in repr(target)
    assert "p%40ss" not in str(target)


def test_a_cluster_url_names_seed_nodes() -> None:
    target = parse_redis_url("redis+cluster://:secret@n1:7000,n2:7001")
    assert target.topology is Topology.CLUSTER
    assert target.nodes == (("n1", 7000), ("n2", 7001))
    assert (target.password, target.db) == ("secret", 0)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:6379", "must start with one of redis://, rediss://, unix://, redis+sentinel"),
        ("redis://h:7000?cluster=true", "for a Redis Cluster write redis+cluster://"),
        ("redis+sentinel://s1:26379", "the master's service name is missing"),
        ("redis+sentinel://s1:26379/jobs/x", "database must be a number"),
        ("redis+sentinel://s1:26379/a/1/2", "too many path parts"),
        ("redis+sentinel://s1:99999/jobs", "port 99999 is out of range"),
        ("redis+cluster://n1:7000/0", "a cluster URL has no path"),
        ("redis+cluster://n1:7000?read_from_replicas=1", "unknown option read_from_replicas"),
        ("redis+cluster://n1:7000,,n2", "'' is not host:port"),
    ],
)
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("+", r"\+").replace("?", r"\?")):
        parse_redis_url(url)


def test_a_bad_url_is_refused_by_config_and_producer_without_showing_the_password() -> None:
    with pytest.raises(ConfigError, match=r"redis_url: the master's service name") as caught:
        Config(on_create=object, redis_url="redis+sentinel://:hunter2hunter2@s1:26379")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="a cluster URL has no path"):
        Producer("redis+cluster://n1:7000/1", "q")


def test_the_server_check_refuses_old_redis_cluster_nodes_and_replicas_by_name() -> None:
    fine = {"redis_version": "7.0.15", "role": "master", "cluster_enabled": 0}
    assert server_problem(fine, "redis://h", cluster_url=False) is None
    old = server_problem({**fine, "redis_version": "6.2.14"}, "redis://h", False)
    assert old is not None
    assert "runs Redis 6.2.14; tasker-dist needs Redis 7.0 or later" in old
    node = server_problem({**fine, "cluster_enabled": 1}, "redis://h", False)
    assert node is not None
    assert "is a node of a Redis Cluster: use redis+cluster://" in node
    assert server_problem({**fine, "cluster_enabled": 1}, "redis+cluster://h", True) is None
    replica = {**fine, "role": "slave", "master_host": "10.0.0.1", "master_port": 6379}
    said = server_problem(replica, "redis://h", False)
    assert said is not None
    assert "is a read-only replica (of 10.0.0.1:6379)" in said
    assert server_problem({"redis_version": "8.1.0"}, "redis://h", False) is None  # Valkey 8
