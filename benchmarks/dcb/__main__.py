"""``python -m benchmarks.dcb``: see ``benchmarks.dcb.cli``."""

import sys

from benchmarks.dcb.cli import main

sys.exit(main())
