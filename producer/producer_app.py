"""The producer service (``producer/``): a small web app that queues inventory tasks.

Standard library only (``http.server`` + ``json``). One `tasker_dist.Producer` serves every
request; the tasks themselves run on ``tasker-worker worker_tasks:config`` daemons.

    POST /lookup/<sku>               run worker_tasks.lookup: 200 and the item
    POST /restock/<sku>  {"qty": n}  run worker_tasks.restock: 200 and the item
    POST /reserve/<sku>  {"qty": n}  run worker_tasks.reserve: 200, or 409 if out of stock
    POST /enqueue/<sku>              queue a lookup, fire and forget: 202 {"task_id": ...}
    GET  /result/<task_id>[?wait=s]  200 result, 202 still pending, 404 unknown task
    GET  /stats, GET /metrics        the cluster's stats and metrics
    GET  /healthz                    200 if Redis answers, else 503

Errors are JSON ``{"error": "<exception type>", "message": "..."}``: 400 bad input,
404 unknown SKU or task, 409 out of stock, 503 Redis down or shutting down, 504 no result
within $REQUEST_TIMEOUT (the task goes on: poll /result/<task_id>), 500 anything else.

Environment: TASKER_REDIS_URL (required), PORT (8000; 0 picks a free port), HOST
(0.0.0.0), REQUEST_TIMEOUT (seconds, 10), TASKER_QUEUE (see worker_tasks). SIGTERM or
SIGINT stops it: no new connections, waiting requests answered 503, exit 0.

Run from the repo: ``PYTHONPATH=worker TASKER_REDIS_URL=redis://... python
producer/producer_app.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tasker_dist import (
    Producer,
    RedisUnavailable,
    ShuttingDown,
    TaskerError,
    TaskNotFound,
    TaskTimeout,
)

try:
    import worker_tasks
except ModuleNotFoundError as exc:  # pragma: no cover - a deployment mistake
    if exc.name != "worker_tasks":
        raise
    raise SystemExit(
        "producer_app: cannot import worker_tasks (the worker's task module); "
        "run with PYTHONPATH=worker from the repository root"
    ) from exc

__all__ = ["App", "ProducerServer", "Response", "main"]

log = logging.getLogger("producer_app")

MAX_BODY = 64 * 1024
DEFAULT_RESULT_WAIT_S = 1.0
MAX_RESULT_WAIT_S = 30.0

_SKU = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TASK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Response:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(ValueError):
    """The request itself is invalid (400)."""


def error(status: int, exc: BaseException, **extra: Any) -> Response:
    return Response(status, {"error": type(exc).__name__, "message": str(exc), **extra})


def failure(exc: BaseException) -> Response:
    """The response for an exception raised by a task or by the producer."""
    if isinstance(exc, worker_tasks.UnknownSku | TaskNotFound):
        return error(404, exc)
    if isinstance(exc, worker_tasks.OutOfStock):
        return error(409, exc)
    if isinstance(exc, ShuttingDown | RedisUnavailable):
        return error(503, exc)
    if isinstance(exc, TaskTimeout):
        return error(504, exc)
    if isinstance(exc, BadRequest) or (
        isinstance(exc, ValueError) and not isinstance(exc, TaskerError)
    ):
        return error(400, exc)
    return error(500, exc)


class App:
    """The routes, independent of HTTP plumbing: ``handle`` maps a request to a `Response`."""

    def __init__(self, producer: Producer, request_timeout: float) -> None:
        self.producer = producer
        self.request_timeout = request_timeout

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        parts = [unquote(p) for p in path.split("/") if p]
        route = self._route(method, parts)
        if route is None:
            known = self._route("GET", parts) or self._route("POST", parts)
            if known is not None:
                return Response(405, {"error": "MethodNotAllowed", "message": f"{method} {path}"})
            return Response(404, {"error": "NotFound", "message": f"no route {method} {path}"})
        try:
            return route(parts[1:], query, body)
        except Exception as exc:
            response = failure(exc)
            if response.status >= 500:
                log.warning("%s %s: %s: %s", method, path, type(exc).__name__, exc)
            return response

    def _route(
        self, method: str, parts: list[str]
    ) -> Callable[[list[str], dict[str, list[str]], bytes], Response] | None:
        routes: dict[tuple[str, str, int], Callable[..., Response]] = {
            ("POST", "lookup", 2): self.lookup,
            ("POST", "restock", 2): self.restock,
            ("POST", "reserve", 2): self.reserve,
            ("POST", "enqueue", 2): self.enqueue,
            ("GET", "result", 2): self.result,
            ("GET", "stats", 1): self.stats,
            ("GET", "metrics", 1): self.metrics,
            ("GET", "healthz", 1): self.healthz,
        }
        if not parts:
            return None
        return routes.get((method, parts[0], len(parts)))

    # -- routes -------------------------------------------------------------------------
    def lookup(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        return self._run(worker_tasks.lookup, _sku(args[0]))

    def restock(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        return self._run(worker_tasks.restock, _sku(args[0]), _qty(body))

    def reserve(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        return self._run(worker_tasks.reserve, _sku(args[0]), _qty(body))

    def enqueue(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        task_id = self.producer.enqueue(worker_tasks.lookup, _sku(args[0]))
        location = f"/result/{task_id}"
        return Response(202, {"task_id": task_id, "result": location}, {"Location": location})

    def result(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        task_id = args[0]
        if not _TASK_ID.match(task_id):
            raise BadRequest(f"invalid task id {task_id!r}")
        wait = _wait(query)
        try:
            value = self.producer.result(task_id, timeout=wait)
        except TimeoutError:  # TaskTimeout is a TaskerError, not a TimeoutError
            return Response(202, {"task_id": task_id, "status": "pending"})
        return Response(200, {"task_id": task_id, "status": "done", "result": value})

    def stats(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        return Response(200, dataclasses.asdict(self.producer.stats()))

    def metrics(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        return Response(200, dataclasses.asdict(self.producer.metrics()))

    def healthz(self, args: list[str], query: dict[str, list[str]], body: bytes) -> Response:
        try:
            stats = self.producer.stats()
        except RedisUnavailable as exc:
            return Response(503, {"status": "unavailable", "message": str(exc)})
        return Response(
            200, {"status": "ok", "queue": self.producer.queue, "workers": len(stats.workers)}
        )

    # -- helpers ------------------------------------------------------------------------
    def _run(self, fn: Callable[..., Any], *args: Any) -> Response:
        """Queue ``fn(*args)`` and wait up to the request timeout for its result. The
        wait is bounded so that no request thread hangs when no worker is serving."""
        future = self.producer.queue_task_async(fn, *args)
        try:
            value = future.result(self.request_timeout)
        except FutureTimeout:
            location = f"/result/{future.task_id}"
            return Response(
                504,
                {
                    "error": "TimeoutError",
                    "message": f"no result within {self.request_timeout}s; the task is queued",
                    "task_id": future.task_id,
                    "result": location,
                },
                {"Location": location},
            )
        return Response(200, dict(value))


def _sku(sku: str) -> str:
    if not _SKU.match(sku):
        raise BadRequest(f"invalid SKU {sku!r}")
    return sku


def _qty(body: bytes) -> int:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise BadRequest('the body must be JSON, e.g. {"qty": 5}') from None
    qty = data.get("qty") if isinstance(data, dict) else None
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise BadRequest(f'the body must be {{"qty": <positive integer>}}, got {data!r}')
    return qty


def _wait(query: dict[str, list[str]]) -> float:
    raw = query.get("wait", [str(DEFAULT_RESULT_WAIT_S)])[-1]
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequest(f"wait must be a number of seconds, got {raw!r}") from None
    if not 0 <= wait <= MAX_RESULT_WAIT_S:
        raise BadRequest(f"wait must be between 0 and {MAX_RESULT_WAIT_S} seconds, got {raw!r}")
    return wait


class Handler(BaseHTTPRequestHandler):
    server: ProducerServer
    server_version = "tasker-producer/0.1"
    timeout = 30  # seconds a client may take to send its request

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            response = Response(
                413 if length > MAX_BODY else 400,
                {"error": "BadRequest", "message": f"body length must be 0..{MAX_BODY} bytes"},
            )
        else:
            body = self.rfile.read(length) if length else b""
            response = self.server.app.handle(method, url.path, parse_qs(url.query), body)
        self._send(response)

    def _send(self, response: Response) -> None:
        data = json.dumps(response.body, allow_nan=False).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class ProducerServer(ThreadingHTTPServer):
    """One thread per request; `server_close` waits for the requests in flight."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, Handler)
        self.app = app


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    url = os.environ.get("TASKER_REDIS_URL")
    if not url:
        print("producer_app: set TASKER_REDIS_URL (e.g. redis://localhost:6379/0)", file=sys.stderr)
        return 2
    try:
        port = int(os.environ.get("PORT", "8000"))
        request_timeout = float(os.environ.get("REQUEST_TIMEOUT", "10"))
        producer = Producer(url, queue=worker_tasks.QUEUE)
    except ValueError as exc:
        print(f"producer_app: {exc}", file=sys.stderr)
        return 2
    server = ProducerServer(
        (os.environ.get("HOST", "0.0.0.0"), port), App(producer, request_timeout)
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: shutting down", signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, so it cannot run in this thread.
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, bound_port = server.server_address[:2]
    log.info("listening on http://%s:%d (queue %r)", host, bound_port, producer.queue)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        producer.close()  # requests still waiting for a result get 503 (ShuttingDown)
        server.server_close()  # waits for their threads
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
