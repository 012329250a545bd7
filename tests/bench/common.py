"""Shared pieces of the benchmarks: where data is, how results are recorded."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "model")]

from locations import SHARED_DATA, TEST_DATA  # noqa: E402 - found through the line above

__all__ = ["REPO", "RESULTS", "SHARED_DATA", "TEST_DATA", "machine", "record", "require"]

RESULTS = REPO / "tests" / "bench" / "results"


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def record(name: str, figures: dict) -> Path:
    """Print the figures and keep them in tests/bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": machine(), **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=1))
    print(json.dumps(document, indent=1))
    return path


def require(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is absent: this benchmark needs ../shared/data")
    return path
