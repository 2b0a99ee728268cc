"""The worker runtime: slots that own resources, fetching, running and completing tasks,
heartbeats and leases, bursting, and the ``tasker-worker`` supervisor and worker
processes. Imports the core, wire, metrics and store layers; never the client side.
"""

from .lease_keeper import LeaseKeeper
from .process import STOP_SIGNALS, serve
from .runtime import WorkerRuntime
from .supervisor import supervise

__all__ = ["STOP_SIGNALS", "LeaseKeeper", "WorkerRuntime", "serve", "supervise"]
