"""Fixtures shared by the engine's tests (tests/model). Helpers that are imported rather than
injected: rasters.py (generated GeoTIFFs), reference_beam.py, ../locations.py (paths)."""

from __future__ import annotations

import subprocess
from typing import Callable

import pytest

from locations import MAPSCRIBE

CliRunner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def cli() -> CliRunner:
    """Run the installed ``mapscribe`` console script as people do, in a new process:
    ``cli("data", "check", folder)`` → the CompletedProcess, output as text."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([MAPSCRIBE, *args], capture_output=True, text=True,
                              timeout=timeout)

    return run
