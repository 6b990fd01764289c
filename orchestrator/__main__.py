"""``python -m orchestrator`` is the ``adabert`` command (used by Ray jobs on a cluster)."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main())
