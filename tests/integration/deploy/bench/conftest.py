"""The bench's modules import as ``deploy.bench.*``, as ``python -m deploy.bench`` run from
the repository root imports them: ``deploy`` is not an installed package, so the root
goes on ``sys.path`` for these tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[4])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
