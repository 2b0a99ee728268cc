"""``python -m tasker_dist.worker``: the same as ``tasker-worker``."""

import sys

from .cli import main

sys.exit(main())
