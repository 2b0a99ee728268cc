"""``python -m tasker_dist.worker``: the same as ``tasker-worker`` (an entry point, so it
belongs to the command line layer wherever it sits)."""

import sys

from ..cli.worker import main

sys.exit(main())
