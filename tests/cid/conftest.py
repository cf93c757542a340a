"""Reuses the compat suite's node fixtures (tests/compat/conftest.py): one raleph node per
session, started from $RALEPH_BIN with a temp data dir; its log tail is attached to failures.

The compat conftest is loaded under another module name so the two conftest files never clash.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

COMPAT = Path(__file__).resolve().parent.parent / "compat"
if str(COMPAT) not in sys.path:
    sys.path.insert(0, str(COMPAT))  # the compat conftest imports compat_helpers

_spec = importlib.util.spec_from_file_location("raleph_compat_conftest", COMPAT / "conftest.py")
_compat = importlib.util.module_from_spec(_spec)
sys.modules["raleph_compat_conftest"] = _compat
_spec.loader.exec_module(_compat)

node = _compat.node
node_url = _compat.node_url
http = _compat.http
pytest_runtest_makereport = _compat.pytest_runtest_makereport
