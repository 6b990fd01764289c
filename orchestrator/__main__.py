"""``python -m orchestrator`` is the ``adabert`` command."""

import sys

from orchestrator.cli import main

sys.exit(main())
