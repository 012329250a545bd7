"""Where the tests' data is: the committed samples (tests/data) and the real datasets
(../shared/data). A plain module that tests, conftest.py files and benchmarks import by name
(pytest puts tests/ on sys.path; importing from a conftest.py is what pytest advises against).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
UCM_SAMPLE = TEST_DATA / "ucm-sample"  # 8 UCM-captions images (6 train, 1 val, 1 test)
# The console script that `pip install -e .` put beside the interpreter running the tests.
MAPSCRIBE = str(Path(sys.executable).with_name("mapscribe"))


def _shared_data() -> Path:
    configured = os.environ.get("MAPSCRIBE_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()


def require_shared(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test saying what is missing and why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read real RSICD/UCM data from ../shared/data "
                    "(set MAPSCRIBE_SHARED_DATA to its location)")
    return path
