"""The worker service's tasks and their long-lived resource (``worker/``).

``tasker-worker worker_tasks:config`` serves them (the worker image's command). Each worker
slot owns one `Inventory`: a connection to a small SQLite stock database, opened by
``on_create`` and closed by ``on_destroy``. Every daemon of a host (and, in
docker-compose, every worker container, through a shared volume) opens the same database
file, so a restock made by one slot is seen by all of them.

The producer app (``producer/producer_app.py``) imports this module to queue the task
functions below: they are shipped by reference (``worker_tasks.lookup``), so the module must
be importable under this name on both sides (``PYTHONPATH=worker`` in the repo,
``/app/worker`` in the images).

Environment:
    TASKER_QUEUE        queue served (and used by the producer app), default "inventory"
    TASKER_WORKERS      base worker slots per daemon, default 4
    TASKER_MAX_WORKERS  burst limit per daemon, default: no bursting
    TASKER_MAX_RETRIES  retries after an unhealthy (database) error, default 3
    INVENTORY_DB        SQLite file, default <tmpdir>/tasker-inventory.sqlite3
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

from tasker_dist import Config, TaskContext

__all__ = [
    "QUEUE",
    "Inventory",
    "Item",
    "OutOfStock",
    "UnknownSku",
    "close_inventory",
    "config",
    "healthy",
    "lookup",
    "open_inventory",
    "reserve",
    "restock",
]

log = logging.getLogger("worker_tasks")

#: The catalogue a new database starts with: (sku, name, quantity in stock).
SEED: tuple[tuple[str, str, int], ...] = (
    ("widget", "Widget, 10 mm", 120),
    ("gadget", "Gadget, standard", 35),
    ("sprocket", "Sprocket, 24 teeth", 8),
    ("gizmo", "Gizmo (discontinued)", 0),
)

#: How long a writer waits for another connection's lock before SQLite gives up.
BUSY_TIMEOUT_S = 5.0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {raw!r}") from None


QUEUE = os.environ.get("TASKER_QUEUE", "inventory")


class Item(TypedDict):
    """What the inventory tasks return (msgpack-friendly, JSON-friendly)."""

    sku: str
    name: str
    qty: int
    served_by: str  # host:pid of the worker daemon that ran the task


class UnknownSku(LookupError):
    """No product with this SKU."""

    def __init__(self, sku: str) -> None:
        super().__init__(sku)  # args == (sku,), so the exception pickles and unpickles
        self.sku = sku

    def __str__(self) -> str:
        return f"unknown SKU {self.sku!r}"


class OutOfStock(Exception):
    """A reservation asked for more than is in stock."""

    def __init__(self, sku: str, wanted: int, available: int) -> None:
        super().__init__(sku, wanted, available)
        self.sku = sku
        self.wanted = wanted
        self.available = available

    def __str__(self) -> str:
        return f"only {self.available} of {self.sku!r} in stock, {self.wanted} wanted"


class Inventory:
    """One slot's connection to the stock database. Not thread-safe: a slot uses its
    resource from its own thread only, which is what sqlite3 requires."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.served_by = f"{socket.gethostname()}:{os.getpid()}"
        # Autocommit mode: transactions are opened explicitly by `transaction`.
        self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stock ("
                " sku TEXT PRIMARY KEY,"
                " name TEXT NOT NULL,"
                " qty INTEGER NOT NULL CHECK (qty >= 0))"
            )
            conn.executemany("INSERT OR IGNORE INTO stock (sku, name, qty) VALUES (?, ?, ?)", SEED)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken at once (BEGIN IMMEDIATE), so two slots never both
        read a quantity and then both write it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("rollback failed on %s", self.path, exc_info=True)
            raise
        self.conn.execute("COMMIT")

    def row(self, sku: str) -> tuple[str, str, int]:
        found: tuple[str, str, int] | None = self.conn.execute(
            "SELECT sku, name, qty FROM stock WHERE sku = ?", (sku,)
        ).fetchone()
        if found is None:
            raise UnknownSku(sku)
        return found

    def item(self, sku: str) -> Item:
        sku, name, qty = self.row(sku)
        return Item(sku=sku, name=name, qty=qty, served_by=self.served_by)

    def close(self) -> None:
        self.conn.close()


# -- resource hooks ------------------------------------------------------------------------
def open_inventory() -> Inventory:
    path = os.environ.get("INVENTORY_DB") or os.path.join(
        tempfile.gettempdir(), "tasker-inventory.sqlite3"
    )
    inventory = Inventory(path)
    log.info("opened inventory %s", path)
    return inventory


def close_inventory(inventory: Inventory) -> None:
    inventory.close()
    log.info("closed inventory %s", inventory.path)


def healthy(exc: BaseException) -> bool:
    """False for errors that mean the connection itself is broken or unusable (the slot
    then opens a fresh one and the task is retried); True for everything else, such as an
    unknown SKU or a constraint violation, which fail the task at once."""
    return not isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError)


# -- tasks: fn(ctx, resource, *args) ------------------------------------------------------------
def _check_qty(qty: object) -> int:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise ValueError(f"qty must be a positive integer, got {qty!r}")
    return qty


def lookup(ctx: TaskContext, db: Inventory, sku: str) -> Item:
    """The product and its stock level; `UnknownSku` if there is none."""
    return db.item(sku)


def restock(ctx: TaskContext, db: Inventory, sku: str, qty: int) -> Item:
    """Add ``qty`` units to the stock of ``sku``; returns the product after the change."""
    qty = _check_qty(qty)
    with db.transaction() as conn:
        db.row(sku)
        conn.execute("UPDATE stock SET qty = qty + ? WHERE sku = ?", (qty, sku))
        return db.item(sku)


def reserve(ctx: TaskContext, db: Inventory, sku: str, qty: int) -> Item:
    """Take ``qty`` units out of stock, all or nothing; `OutOfStock` if there are fewer."""
    qty = _check_qty(qty)
    with db.transaction() as conn:
        available = db.row(sku)[2]
        if available < qty:
            raise OutOfStock(sku, qty, available)
        conn.execute("UPDATE stock SET qty = qty - ? WHERE sku = ?", (qty, sku))
        item = db.item(sku)
        # The caller may have given up (kill or deadline): then commit nothing.
        ctx.raise_if_cancelled()
    return item


config: Config[Inventory] = Config(
    on_create=open_inventory,
    on_destroy=close_inventory,
    worker_count=_env_int("TASKER_WORKERS", 4),
    max_worker_count=_env_int("TASKER_MAX_WORKERS", 0) or None,
    check_health=healthy,
    max_retries=_env_int("TASKER_MAX_RETRIES", 3),
    queue=QUEUE,
)
