"""Port of the seed example "Custom health check".

``check_health`` decides which task errors mean the resource itself is broken. Here a
``processor_crash`` error is judged unhealthy: the worker destroys its `ImageProcessor`,
creates a new one, and the task is retried (``max_retries=1``). Other errors would be
plain task failures.

To show the replacement every time, the task always crashes on its first attempt
(``ctx.attempt == 0``); its retry crashes at random, as the whole task does in the Go
example, so the task either completes or fails with "max retries exceeded". Processor
ids come from a counter rather than ``rand.Intn(1000)`` so a new processor never reuses
the id of the one it replaces.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from dataclasses import dataclass

from tasker_dist import Config, TaskContext, TaskManager


def say(message: str) -> None:
    """Print a line in one write, so lines that worker threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


_processor_ids = itertools.count(1)


class ProcessorCrash(Exception):
    """The image processing service crashed; the processor must be replaced."""


@dataclass
class ImageProcessor:
    """A resource for image manipulation (a connection to an image service)."""

    id: int
    is_healthy: bool = True


def create_image_processor() -> ImageProcessor:
    processor = ImageProcessor(next(_processor_ids))
    say(f"INFO: Creating ImageProcessor {processor.id}")
    return processor


def destroy_image_processor(processor: ImageProcessor) -> None:
    say(f"INFO: Destroying ImageProcessor {processor.id}")


def check_image_processor_health(error: BaseException) -> bool:
    """A "processor_crash" error means the processor is unhealthy; others do not."""
    if str(error) == "processor_crash":
        say(f"WARN: Detected unhealthy error: {error}. Worker will be replaced.")
        return False
    return True


def process_problematic_image(ctx: TaskContext, processor: ImageProcessor) -> str:
    say(f"Worker {processor.id} processing problematic image (might crash), attempt {ctx.attempt}")
    time.sleep(0.1)
    if ctx.attempt == 0 or random.randrange(2) == 0:
        raise ProcessorCrash("processor_crash")  # check_health returns False for this
    return "problematic_image_processed.jpg"


def main() -> None:
    say("\n--- Intermediate Usage: Image Processing ---")

    config = Config(
        on_create=create_image_processor,
        on_destroy=destroy_image_processor,
        worker_count=2,
        check_health=check_image_processor_health,
        max_retries=1,
        resource_pool_size=1,
    )
    with TaskManager(config) as manager:
        say("Queueing a task that might crash a worker (unhealthy error)...")
        try:
            result = manager.queue_task(process_problematic_image)
        except Exception as exc:
            say(f"Problematic Image Task Failed: {exc}")
        else:
            say(f"Problematic Image Task Completed: {result}")


if __name__ == "__main__":
    main()
