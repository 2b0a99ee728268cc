"""The worker side of ``tasker demo``: a resource with a cost to create, and tasks."""

from __future__ import annotations

import os
import random
import time

from ..config import Config
from ..context import TaskContext

__all__ = ["Inventory", "config", "price_order"]


class Inventory:
    """Stands in for a long-lived resource such as a database connection."""

    def __init__(self) -> None:
        time.sleep(0.05)  # connecting is the expensive part, done once per slot
        self.prices = {f"sku-{i}": 1.0 + i % 17 for i in range(1000)}


def price_order(ctx: TaskContext, inventory: Inventory, order: int) -> float:
    """Price a random order; about 1 in 200 refers to an unknown item and fails."""
    rng = random.Random(order)
    time.sleep(rng.uniform(0.001, 0.02))
    if rng.random() < 0.005:
        raise KeyError(f"order {order}: unknown item")
    items = [f"sku-{rng.randrange(1000)}" for _ in range(rng.randint(1, 5))]
    return round(sum(inventory.prices[i] for i in items), 2)


config = Config(
    on_create=Inventory,
    worker_count=int(os.environ.get("TASKER_DEMO_SLOTS", "4")),
    max_worker_count=int(os.environ.get("TASKER_DEMO_MAX_SLOTS", "8")),
    queue="demo",
)
