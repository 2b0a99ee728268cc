"""`Config` validation (SPEC §3): every invalid value raises `ConfigError` naming its field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tasker_dist.config import (
    REDIS_URL_ENV,
    Config,
    check_queue_name,
    check_redis_url,
    resolve_redis_url,
)
from tasker_dist.errors import ConfigError, TaskerError


def make() -> object:
    return object()


def config(**overrides: Any) -> Config[object]:
    kwargs: dict[str, Any] = {"on_create": make, **overrides}
    return Config(**kwargs)


INVALID: list[tuple[str, object]] = [
    ("worker_count", 0),
    ("worker_count", -1),
    ("worker_count", True),
    ("worker_count", 1.5),
    ("worker_count", "2"),
    ("worker_count", None),
    ("max_retries", -1),
    ("max_retries", 1.0),
    ("max_retries", False),
    ("max_retries", None),
    ("resource_pool_size", -1),
    ("resource_pool_size", True),
    ("resource_pool_size", 2.0),
    ("max_worker_count", 0),
    ("max_worker_count", -3),
    ("max_worker_count", True),
    ("max_worker_count", 4.0),
    ("burst_interval", 0),
    ("burst_interval", -1),
    ("burst_interval", math.nan),
    ("burst_interval", math.inf),
    ("burst_interval", -math.inf),
    ("burst_interval", True),
    ("burst_interval", "1"),
    ("burst_interval", None),
    ("queue", ""),
    ("queue", "a{b}"),
    ("queue", "{default}"),
    ("queue", "my queue"),
    ("queue", " default"),
    ("queue", "x" * 129),
    ("queue", "caf\u00e9"),
    ("queue", "a/b"),
    ("queue", None),
    ("queue", 7),
    ("redis_url", "http://localhost:6379"),
    ("redis_url", "localhost:6379"),
    ("redis_url", ""),
    ("redis_url", "REDIS://localhost"),
    ("redis_url", 6379),
    ("result_ttl", 0),
    ("result_ttl", -5),
    ("result_ttl", math.nan),
    ("result_ttl", math.inf),
    ("result_ttl", None),
    ("result_ttl", True),
    ("task_timeout", 0),
    ("task_timeout", -0.5),
    ("task_timeout", math.nan),
    ("task_timeout", math.inf),
    ("task_timeout", "10"),
    ("heartbeat_interval", 0),
    ("heartbeat_interval", -1),
    ("heartbeat_interval", math.nan),
    ("heartbeat_interval", None),
    ("hung_after", 0),
    ("hung_after", -1),
    ("hung_after", math.nan),
    ("hung_after", "60"),
    ("kill_grace", 0),
    ("kill_grace", -2),
    ("kill_grace", math.inf),
    ("kill_grace", None),
    ("connect_timeout", 0),
    ("connect_timeout", -1.0),
    ("connect_timeout", math.nan),
    ("connect_timeout", None),
    ("on_create", None),
    ("on_create", 42),
    ("on_create", "module:function"),
    ("on_destroy", 1),
    ("on_destroy", "close"),
    ("check_health", True),
    ("check_health", "always"),
]


@pytest.mark.parametrize(("field", "value"), INVALID)
def test_invalid_value_raises_config_error_naming_field(field: str, value: object) -> None:
    kwargs: dict[str, Any] = {"on_create": make, field: value}
    with pytest.raises(ConfigError, match=field) as info:
        Config(**kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TaskerError)


def test_max_worker_count_below_worker_count_names_both_fields() -> None:
    with pytest.raises(ConfigError, match="max_worker_count") as info:
        config(worker_count=4, max_worker_count=3)
    assert "worker_count (4)" in str(info.value)


def test_max_worker_count_equal_to_worker_count_is_valid() -> None:
    assert config(worker_count=3, max_worker_count=3).burst_limit == 3


def test_defaults_are_valid() -> None:
    c = config()
    assert c.worker_count == 1
    assert c.max_retries == 3
    assert c.queue == "default"
    assert c.redis_url is None
    assert c.on_destroy is None
    assert c.check_health is None
    assert c.resource_pool_size is None
    assert c.max_worker_count is None
    assert c.task_timeout is None
    assert c.hung_after == 60.0
    assert Config(on_create=dict, hung_after=None).hung_after is None
    assert c.burst_interval > 0
    assert c.result_ttl > 0
    assert c.heartbeat_interval > 0
    assert c.kill_grace > 0
    assert c.connect_timeout > 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"worker_count": 8, "max_worker_count": 16},
        {"max_retries": 0},
        {"resource_pool_size": 0},
        {"burst_interval": 0.05},
        {"burst_interval": 2},
        {"queue": "a.b:c-d_E9"},
        {"queue": "x" * 128},
        {"redis_url": "redis://localhost:6379/0"},
        {"redis_url": "rediss://user:pw@host:6380"},
        {"redis_url": "unix:///tmp/redis.sock"},
        {"task_timeout": 0.5},
        {"on_destroy": print, "check_health": bool},
        {"result_ttl": 1},
    ],
)
def test_valid_values_are_accepted(overrides: dict[str, Any]) -> None:
    c = config(**overrides)
    for name, value in overrides.items():
        assert getattr(c, name) == value


def test_async_on_create_is_accepted() -> None:
    async def create() -> int:
        return 1

    assert Config(on_create=create).on_create is create


def test_config_is_frozen() -> None:
    c = config()
    with pytest.raises(AttributeError):
        c.worker_count = 5  # type: ignore[misc]


def test_burst_limit_is_max_worker_count_or_worker_count() -> None:
    assert config(worker_count=3).burst_limit == 3
    assert config(worker_count=3, max_worker_count=7).burst_limit == 7


def test_pool_size_defaults_to_worker_count() -> None:
    assert config(worker_count=5).pool_size == 5
    assert config(worker_count=5, resource_pool_size=2).pool_size == 2
    assert config(worker_count=5, resource_pool_size=0).pool_size == 0


@pytest.mark.parametrize("queue", ["abc\n", "x" * 128 + "\n"])
def test_queue_with_trailing_newline_is_refused(queue: str) -> None:
    with pytest.raises(ConfigError, match="queue"):
        config(queue=queue)


def test_result_ttl_that_rounds_to_zero_ms_is_refused() -> None:
    with pytest.raises(ConfigError, match="result_ttl"):
        config(result_ttl=0.0004)


def test_seconds_too_large_for_a_float_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="burst_interval"):
        config(burst_interval=10**400)


def test_check_queue_name_uses_given_field_name() -> None:
    with pytest.raises(ConfigError, match="--queue"):
        check_queue_name("bad name", "--queue")
    assert check_queue_name("good") == "good"


def test_check_redis_url_uses_given_field_name() -> None:
    with pytest.raises(ConfigError, match="--redis-url"):
        check_redis_url("tcp://x", "--redis-url")
    assert check_redis_url("redis://x") == "redis://x"


def test_resolve_redis_url_prefers_the_given_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://from-env:6379")
    assert resolve_redis_url("redis://given:6379") == "redis://given:6379"


def test_resolve_redis_url_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://from-env:6379/2")
    assert resolve_redis_url(None) == "redis://from-env:6379/2"


def test_resolve_redis_url_is_none_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    assert resolve_redis_url(None) is None
    monkeypatch.setenv(REDIS_URL_ENV, "")
    assert resolve_redis_url(None) is None


def test_resolve_redis_url_checks_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "http://nope")
    with pytest.raises(ConfigError, match=REDIS_URL_ENV):
        resolve_redis_url(None)


def test_resolve_redis_url_checks_given_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://fine:6379")
    with pytest.raises(ConfigError, match="redis_url"):
        resolve_redis_url("memcached://x")


def test_hung_after_must_exceed_a_heartbeat_waiting_on_a_silent_redis() -> None:
    with pytest.raises(ConfigError, match=r"hung_after \(20 s\) must be over .* \(21 s\)"):
        Config(on_create=dict, hung_after=20)
    with pytest.raises(ConfigError, match="hung_after"):
        Config(on_create=dict, connect_timeout=30)  # the default 60 s is too short then
    assert Config(on_create=dict, connect_timeout=30, hung_after=None).hung_after is None
    assert Config(on_create=dict, hung_after=21.5).hung_after == 21.5


# -- several queues -----------------------------------------------------------------------


def test_a_worker_serves_queue_alone_by_default() -> None:
    c = config(queue="jobs")
    assert c.queues == ()
    assert c.served_queues == ("jobs",)
    assert c.queue_weights is None


def test_queues_without_weights_are_served_in_strict_order() -> None:
    c = config(queues=("a", "b", "jobs.0"))
    assert c.served_queues == ("a", "b", "jobs.0")
    assert c.queue_weights is None
    assert c.queue == "default"  # where a TaskManager queues: unchanged


def test_any_weight_makes_the_order_weighted_and_a_name_alone_weighs_one() -> None:
    c = config(queues=(("a", 3), "b", ("c", 2)))
    assert c.served_queues == ("a", "b", "c")
    assert c.queue_weights == (3, 1, 2)


def test_a_list_of_queues_is_kept_as_a_tuple() -> None:
    c = config(queues=["a", ("b", 2)])
    assert c.queues == ("a", ("b", 2))
    assert hash(c.queues)


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ("ab", r"queues must be a tuple of queue names or \(name, weight\) pairs, got 'ab'"),
        (None, "queues must be a tuple"),
        (("a", "a"), "queues: queue 'a' is listed twice"),
        (("a", ("a", 2)), "queues: queue 'a' is listed twice"),
        (("a", "b c"), r"queues\[1\] must be 1-128 characters"),
        (("a", "{b}"), r"queues\[1\] must be 1-128 characters"),
        (("a", ""), r"queues\[1\] must be 1-128 characters"),
        ((("a", 0),), r"queues\[0\]: the weight of 'a' must be an int >= 1, got 0"),
        ((("a", -2),), r"queues\[0\]: the weight of 'a' must be an int >= 1, got -2"),
        ((("a", 1.5),), r"queues\[0\]: the weight of 'a' must be an int >= 1, got 1.5"),
        ((("a", True),), r"queues\[0\]: the weight of 'a' must be an int >= 1, got True"),
        ((("a", "3"),), r"queues\[0\]: the weight of 'a' must be an int >= 1, got '3'"),
        ((("a", 1, 2),), r"queues\[0\] must be a queue name or a \(name, weight\) pair"),
        ((7,), r"queues\[0\] must be a queue name or a \(name, weight\) pair, got 7"),
        (((3, "a"),), r"queues\[0\] must be 1-128 characters .* got 3"),
    ],
)
def test_bad_queues_raise_config_error_saying_what_is_wrong(queues: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(queues=queues)
