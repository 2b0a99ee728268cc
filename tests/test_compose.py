"""The deployable services of SPEC §2: docker-compose.yml, worker/ and producer/.

No Docker engine is needed: the compose file and Dockerfiles are checked as text, and the
commands the containers would run (read from the Dockerfiles' CMD/ENTRYPOINT and ENV, and
the compose file's environment) are run here as plain processes against the test Redis,
then driven over HTTP like a user of the compose stack would. `docker compose config` is
run only where an engine with the compose plugin is present.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasker_dist import Producer
from tests.conftest import ROOT, TEST_SECRET, ChildProcess, wait_until

COMPOSE_FILE = ROOT / "docker-compose.yml"
WORKER_DOCKERFILE = ROOT / "worker" / "Dockerfile"
PRODUCER_DOCKERFILE = ROOT / "producer" / "Dockerfile"
# The images' WORKDIR, whose layout mirrors the repository (checked below).
IMAGE_APP_DIR = "/app"
COMPOSE_REDIS_URL = "redis://redis:6379/0"

# -- reading the files ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"no service {name!r} in docker-compose.yml"
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def service_env(svc: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, in either of compose's two forms (mapping or list)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {k: v for k, _, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


@dataclass
class Dockerfile:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""

    path: Path
    instructions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        df = cls(path)
        pending = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue  # also inside a continuation, as Docker does
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            keyword, _, rest = (pending + line).partition(" ")
            df.instructions.append((keyword.upper(), rest.strip()))
            pending = ""
        assert not pending, f"{path}: dangling line continuation"
        return df

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """CMD or ENTRYPOINT, which must be in exec (JSON) form: in shell form the process
        would run under /bin/sh, which does not pass SIGTERM on, so `docker stop` would
        end in SIGKILL instead of a graceful stop."""
        rest = self.last(keyword)
        if rest is None:
            return []
        try:
            argv = json.loads(rest)
        except ValueError:
            pytest.fail(f"{self.path}: {keyword} must be in exec form, got {rest!r}")
        assert isinstance(argv, list), rest
        assert all(isinstance(a, str) for a in argv), rest
        return argv

    def command(self) -> list[str]:
        """What the container runs: ENTRYPOINT followed by CMD."""
        argv = self.exec_form("ENTRYPOINT") + self.exec_form("CMD")
        assert argv, f"{self.path} has neither CMD nor ENTRYPOINT"
        return argv

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.all("ENV"):
            words = shlex.split(rest)
            if words and "=" not in words[0]:  # legacy form: ENV KEY value words
                env[words[0]] = rest.split(None, 1)[1] if len(words) > 1 else ""
                continue
            for word in words:
                key, sep, value = word.partition("=")
                assert sep, f"{self.path}: cannot read ENV {rest!r}"
                env[key] = value
        return env

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of each COPY that reads the build context."""
        result = []
        for rest in self.all("COPY"):
            words = shlex.split(rest)
            if any(w.startswith("--from") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], paths[-1]))
        return result


def to_host(container_path: str) -> str:
    """A path inside the images, as the same path in this repository."""
    if container_path == IMAGE_APP_DIR:
        return str(ROOT)
    if container_path.startswith(IMAGE_APP_DIR + "/"):
        return str(ROOT / container_path[len(IMAGE_APP_DIR) + 1 :])
    return container_path


def host_command(df: Dockerfile) -> list[str]:
    """The Dockerfile's command, runnable here: the same program from this interpreter's
    environment, the same arguments (paths are relative to WORKDIR, i.e. the repo root)."""
    argv = df.command()
    program = argv[0]
    if program in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    local = Path(sys.executable).parent / program
    assert local.exists(), f"{df.path} runs {program!r}, which is not installed here"
    return [str(local), *argv[1:]]


def host_env(
    df: Dockerfile, svc: dict[str, Any], redis_url: str, **overrides: str
) -> dict[str, str]:
    """The container's environment (Dockerfile ENV, then compose ``environment``) with
    image paths mapped into the repo and the compose Redis replaced by the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    for key, value in df.env().items():
        if key == "PYTHONPATH":
            env[key] = os.pathsep.join(to_host(p) for p in value.split(":"))
        else:
            env[key] = to_host(value)
    compose_env = service_env(svc)
    assert compose_env.get("TASKER_REDIS_URL") == COMPOSE_REDIS_URL
    # what `TASKER_SECRET=... docker compose up` interpolates into ${TASKER_SECRET:?...}
    assert compose_env.get("TASKER_SECRET", "").startswith("${TASKER_SECRET:?")
    compose_env["TASKER_SECRET"] = TEST_SECRET
    env.update(compose_env)
    env["TASKER_REDIS_URL"] = redis_url
    env.update(overrides)
    return env


# -- (a) the compose file and the Dockerfiles, as text ---------------------------------------


def test_compose_has_redis_workers_and_producer() -> None:
    assert set(compose()["services"]) == {"redis", "worker", "producer"}

    redis_svc = service("redis")
    assert str(redis_svc["image"]).startswith("redis:7-alpine")
    argv = as_argv(redis_svc["command"])
    assert argv[0] == "redis-server"
    assert "--maxmemory-policy" in argv
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"

    for name in ("worker", "producer"):
        svc = service(name)
        build = svc["build"]
        assert build["context"] == "."
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), build
        assert service_env(svc)["TASKER_REDIS_URL"] == COMPOSE_REDIS_URL
        # both sign and verify with the one secret the operator exports
        assert service_env(svc)["TASKER_SECRET"].startswith("${TASKER_SECRET:?")
        depends = svc["depends_on"]
        assert "redis" in (depends if isinstance(depends, list | dict) else [depends])
    assert service("worker")["build"]["dockerfile"] == "worker/Dockerfile"
    assert service("producer")["build"]["dockerfile"] == "producer/Dockerfile"

    # `docker compose up --scale worker=N`: nothing that exists once per host.
    worker = service("worker")
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "hostname" not in worker

    ports = [str(p) for p in service("producer")["ports"]]
    assert "8000:8000" in ports


def test_compose_worker_volume_holds_the_inventory() -> None:
    """Every worker container opens the same SQLite file: it must be on the shared volume."""
    db_dir = os.path.dirname(Dockerfile.read(WORKER_DOCKERFILE).env()["INVENTORY_DB"])
    targets = [str(v).split(":")[1] for v in service("worker").get("volumes", [])]
    assert db_dir in targets


@pytest.mark.parametrize(
    "path", [WORKER_DOCKERFILE, PRODUCER_DOCKERFILE], ids=["worker", "producer"]
)
def test_dockerfile_shape(path: Path) -> None:
    df = Dockerfile.read(path)
    assert df.all("FROM") == ["python:3.11-slim"]
    assert any("pip install" in run for run in df.all("RUN"))
    assert df.last("STOPSIGNAL") == "SIGTERM"
    user = df.last("USER")
    assert user is not None, "must not run as root"
    assert user.split(":")[0] not in ("root", "0"), "must not run as root"
    # Every COPY from the context names files that exist, and what lands under WORKDIR
    # keeps its repository path, which is what lets the tests below run the same command.
    assert df.last("WORKDIR") == IMAGE_APP_DIR
    for sources, dest in df.copies():
        for src in sources:
            assert src == "." or (ROOT / src).exists(), f"{path}: COPY {src}: no such file"
            if dest.startswith(IMAGE_APP_DIR + "/"):
                landed = Path(to_host(dest))
                if dest.endswith("/"):
                    landed /= Path(src).name
                assert landed == ROOT / src, f"{path}: COPY {src} {dest}"
    assert df.env()["PYTHONPATH"] == f"{IMAGE_APP_DIR}/worker"
    df.command()  # exec form


def test_dockerfile_commands() -> None:
    assert Dockerfile.read(WORKER_DOCKERFILE).command() == ["tasker-worker", "worker_tasks:config"]
    assert Dockerfile.read(PRODUCER_DOCKERFILE).command()[-1] == "producer/producer_app.py"


def test_dockerignore_keeps_what_the_images_copy() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "tasker_dist", "worker", "producer"):
        assert needed not in ignored


# -- (b) docker compose itself, where there is one ------------------------------------------------


def _docker_compose_available() -> bool:
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_docker_compose_config_is_valid() -> None:
    if not _docker_compose_available():
        pytest.skip("`docker compose version` failed: no Docker compose plugin on this machine")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- the example task module on its own -----------------------------------------------------------


def _load_worker_tasks() -> Any:
    spec = importlib.util.spec_from_file_location(
        "_worker_tasks_copy", ROOT / "worker" / "worker_tasks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_tasks_health_check() -> None:
    wt = _load_worker_tasks()
    assert wt.config.check_health is wt.healthy
    assert wt.healthy(sqlite3.OperationalError("database is locked")) is False
    assert wt.healthy(sqlite3.ProgrammingError("Cannot operate on a closed database.")) is False
    assert wt.healthy(sqlite3.IntegrityError("CHECK constraint failed")) is True
    assert wt.healthy(wt.UnknownSku("nope")) is True
    assert wt.healthy(ValueError("qty")) is True


# -- (c) the containers' commands as plain processes ------------------------------------------


class Stack:
    """The compose stack without Docker: the test Redis, worker daemons and the web app."""

    def __init__(self, redis_url: str, queue: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.queue = queue
        self.tmp_path = tmp_path
        self.services: list[ChildProcess] = []
        self.workers: list[ChildProcess] = []
        self.base_url = ""
        # Shared by every worker of this test, as the compose volume is by the containers.
        self._common = {"TASKER_QUEUE": queue, "INVENTORY_DB": str(tmp_path / "inventory.sqlite3")}

    def _start(self, name: str, df_path: Path, overrides: dict[str, str]) -> ChildProcess:
        df = Dockerfile.read(df_path)
        env = host_env(df, service(name), self.redis_url, **self._common, **overrides)
        log_path = self.tmp_path / f"{name}-{len(self.services)}.log"
        svc = ChildProcess(host_command(df), env, log_path, name=name)
        self.services.append(svc)
        return svc

    def start_worker(self) -> ChildProcess:
        worker = self._start("worker", WORKER_DOCKERFILE, {})
        self.workers.append(worker)
        return worker

    def start_producer(self, **env: str) -> ChildProcess:
        """The web app, once it listens on `base_url`."""
        # PORT=0: the app binds a free port and logs it, so no port is guessed.
        overrides = {"PORT": "0", "HOST": "127.0.0.1", **env}
        producer = self._start("producer", PRODUCER_DOCKERFILE, overrides)

        def listening() -> str | None:
            assert producer.proc.poll() is None, f"producer exited:\n{producer.output()}"
            found = re.search(r"listening on http://([\d.]+):(\d+)", producer.output())
            return f"http://{found[1]}:{found[2]}" if found else None

        self.base_url = str(wait_until(listening, timeout=15, message="the producer to listen"))
        return producer

    def served_by_ours(self, pid: int) -> bool:
        return any(w.owns(pid) for w in self.workers)

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.name} ({s.log_path.name}) ---\n{s.output()}" for s in self.services
        )

    def close(self) -> None:
        for svc in self.services:  # all at once, then each waited for
            svc.terminate()
        for svc in self.services:
            svc.stop()


@pytest.fixture
def stack(redis_url: str, queue: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(redis_url, queue, tmp_path)
    yield s
    s.close()
    print(s.logs())  # shown by pytest only when the test failed


_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def call(stack: Stack, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(stack.base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with _http.open(request, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def served_by_pid(item: dict[str, Any]) -> int:
    return int(item["served_by"].rsplit(":", 1)[1])


def wait_for_workers(stack: Stack) -> dict[str, Any]:
    """Until /stats lists the worker daemons this test started, each of them, and no other."""

    def ready() -> dict[str, Any] | None:
        status, stats = call(stack, "GET", "/stats")
        assert status == 200, stats
        pids = [w["pid"] for w in stats["workers"]]
        everyone_ours = all(stack.served_by_ours(pid) for pid in pids)
        all_present = all(any(w.owns(pid) for pid in pids) for w in stack.workers)
        return stats if pids and everyone_ours and all_present else None

    return dict(wait_until(ready, timeout=15, message="the worker daemons in /stats"))


def test_lookup_restock_and_stats_through_worker_daemons(stack: Stack) -> None:
    stack.start_worker()
    stack.start_worker()
    stack.start_producer()
    stats = wait_for_workers(stack)

    slots = int(service_env(service("worker"))["TASKER_WORKERS"])
    daemons = stats["workers"]
    assert len(daemons) >= 2
    assert len({w["worker_id"] for w in daemons}) == len(daemons)
    assert all(w["base_workers"] == slots for w in daemons)
    assert stats["base_workers"] == slots * len(daemons)
    assert {w["host"] for w in daemons} == {socket.gethostname()}

    status, item = call(stack, "POST", "/lookup/widget")
    assert status == 200, (item, stack.logs())
    assert item["sku"] == "widget"
    assert item["name"] == "Widget, 10 mm"
    assert item["qty"] == 120
    assert stack.served_by_ours(served_by_pid(item))  # computed by a daemon, not the app

    # Writes through one slot are seen by every slot of every daemon (one shared database).
    status, item = call(stack, "POST", "/restock/sprocket", {"qty": 5})
    assert (status, item["qty"]) == (200, 13), item
    for _ in range(8):
        status, item = call(stack, "POST", "/lookup/sprocket")
        assert (status, item["qty"]) == (200, 13), item
    status, item = call(stack, "POST", "/reserve/sprocket", {"qty": 13})
    assert (status, item["qty"]) == (200, 0), item

    # Task errors come back as the task's own exception, named in the JSON.
    status, body = call(stack, "POST", "/reserve/sprocket", {"qty": 1})
    assert status == 409
    assert body["error"] == "OutOfStock"
    assert "only 0 of 'sprocket' in stock" in body["message"]
    status, body = call(stack, "POST", "/lookup/no-such-sku")
    assert (status, body["error"]) == (404, "UnknownSku"), body
    status, body = call(stack, "POST", "/restock/widget", {"qty": -1})
    assert status == 400, body

    status, metrics = call(stack, "GET", "/metrics")
    assert status == 200
    assert metrics["total_tasks_completed"] == 11
    assert metrics["total_tasks_failed"] == 2  # OutOfStock, UnknownSku (the 400 never ran)
    assert metrics["total_tasks_arrived"] == 13
    assert 0 < metrics["p50_execution_time"] <= metrics["max_execution_time"]

    status, health = call(stack, "GET", "/healthz")
    assert (status, health["status"], health["workers"]) == (200, "ok", len(daemons))


def test_enqueue_waits_in_redis_until_a_worker_serves_it(stack: Stack) -> None:
    stack.start_producer()

    status, body = call(stack, "POST", "/enqueue/gadget")
    assert status == 202, body
    task_id = body["task_id"]
    assert body["result"] == f"/result/{task_id}"

    # No worker yet: the task is known and pending, not lost and not an error.
    status, body = call(stack, "GET", f"/result/{task_id}?wait=0.2")
    assert (status, body["status"]) == (202, "pending"), body
    status, stats = call(stack, "GET", "/stats")
    assert (status, stats["queued_tasks"], stats["workers"]) == (200, 1, []), stats

    status, body = call(stack, "GET", "/result/" + "0" * 32)
    assert (status, body["error"]) == (404, "TaskNotFound"), body

    worker = stack.start_worker()

    def done() -> dict[str, Any] | None:
        status, body = call(stack, "GET", f"/result/{task_id}?wait=1")
        assert status in (200, 202), body
        return body if status == 200 else None

    body = dict(wait_until(done, timeout=20, message="the enqueued task's result"))
    assert body["status"] == "done"
    assert body["result"]["sku"] == "gadget"
    assert body["result"]["qty"] == 35
    assert worker.owns(served_by_pid(body["result"]))

    # A result can be read again (any process, any time before it expires).
    status, again = call(stack, "GET", f"/result/{task_id}")
    assert (status, again["result"]) == (200, body["result"])

    # An enqueued task that fails: the error is its own, by name.
    status, body = call(stack, "POST", "/enqueue/no-such-sku")
    assert status == 202, body
    status, body = call(stack, "GET", f"/result/{body['task_id']}?wait=10")
    assert (status, body["error"]) == (404, "UnknownSku"), body


def test_sigterm_stops_worker_and_producer_cleanly(
    stack: Stack, redis_url: str, queue: str
) -> None:
    worker = stack.start_worker()
    producer = stack.start_producer()
    wait_for_workers(stack)
    status, item = call(stack, "POST", "/lookup/gizmo")
    assert (status, item["qty"]) == (200, 0), item

    for svc in (worker, producer):
        svc.terminate()
    assert worker.wait(15) == 0, stack.logs()
    assert producer.wait(15) == 0, stack.logs()

    out = worker.output()
    slots = int(service_env(service("worker"))["TASKER_WORKERS"])
    assert out.count("opened inventory") == out.count("closed inventory") == slots, out
    assert "stopped" in producer.output()

    # The daemon left the cluster at once, not at its heartbeat's expiry.
    with Producer(redis_url, queue=queue) as p:
        assert p.stats().workers == ()


def test_lookup_with_no_worker_times_out_and_completes_later(stack: Stack) -> None:
    stack.start_producer(REQUEST_TIMEOUT="0.3")
    status, body = call(stack, "POST", "/lookup/widget")
    assert (status, body["error"]) == (504, "TimeoutError"), body
    assert body["result"] == f"/result/{body['task_id']}"

    worker = stack.start_worker()
    status, body = call(stack, "GET", f"{body['result']}?wait=10")
    assert status == 200, (body, stack.logs())
    assert body["result"]["qty"] == 120
    assert worker.owns(served_by_pid(body["result"]))


def test_producer_sigterm_answers_requests_still_waiting(stack: Stack) -> None:
    """No worker serves the queue: a lookup waits; SIGTERM answers it 503, not a hang or a
    dropped connection, the app exits 0, and the queued task stays queued."""
    producer = stack.start_producer(REQUEST_TIMEOUT="30")
    answers: list[tuple[int, Any]] = []
    waiting = threading.Thread(target=lambda: answers.append(call(stack, "POST", "/lookup/widget")))
    waiting.start()

    def queued() -> bool:
        return bool(call(stack, "GET", "/stats")[1]["queued_tasks"] == 1)

    wait_until(queued, timeout=10, message="the lookup to be queued")
    producer.terminate()
    waiting.join(15)
    assert answers, "the waiting request got no answer"
    status, body = answers[0]
    assert (status, body["error"]) == (503, "ShuttingDown"), body
    assert producer.wait(15) == 0, stack.logs()

    with Producer(stack.redis_url, queue=stack.queue) as p:
        assert p.stats().queued_tasks == 1
