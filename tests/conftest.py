"""Fixtures and set-up shared by every test.

``tests/plugin`` goes on ``sys.path``: it holds ``chronik_dictstore``, a third-party
backend, beside its ``chronik_dictstore-0.1.0.dist-info``, so that
``importlib.metadata`` finds the distribution and its entry point
(``chronik.backends``: ``dict``) as it would an installed package's.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN = str(Path(__file__).with_name("plugin"))
if PLUGIN not in sys.path:
    sys.path.append(PLUGIN)
