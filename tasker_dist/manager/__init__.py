"""`TaskManager`: a producer and a worker runtime on one queue, in one object. Imports
every layer below it (client and worker included); nothing imports it but the package's
public API and the command line.
"""

from .task_manager import TaskManager

__all__ = ["TaskManager"]
