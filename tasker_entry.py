"""The entry points of the ``tasker`` and ``tasker-worker`` commands.

Stdlib only, and outside the package on purpose: importing tasker_dist takes a while,
and a Ctrl-C (SIGINT) during an import raises KeyboardInterrupt wherever the import
is, also inside a callback that swallows it; the command then runs on as if the signal
never came. So the stop signals are blocked before anything is imported: one sent
meanwhile waits, and is received once the command is ready for it (the worker's signal
inbox counts it; the other commands get Python's usual handling right after import).
"""

from __future__ import annotations

import signal

__all__ = ["tasker", "tasker_worker"]

# What `tasker` handles (ENDING_SIGNALS), and what `tasker-worker` does (STOP_SIGNALS: a
# SIGHUP ends it at once, as its documentation says, so it is not held back).
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WORKER_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def tasker_worker() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
    from tasker_dist.cli.worker import main  # its signal inbox unblocks them

    return main()


def tasker() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    from tasker_dist.cli.tasker import main

    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # one that came is handled here
    return main()
