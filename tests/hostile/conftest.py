"""Fixtures of the hostile-input suite (tests/hostile): files a careless user or a stranger
would hand MapScribe, built by the tests themselves, and the harness that runs the command line
on them and fails on a traceback, a hang or memory past a ceiling.

* ``run_cli(*args)``: the installed ``mapscribe`` in a new process, with a timeout; fails the
  test when the output holds a traceback or the "internal error" of a bug (exit 70).
* ``run_limited(code, limit_mb)``: Python code in a subprocess under ``RLIMIT_AS``, so a
  regression that allocates gigabytes fails the test instead of the machine.
* ``listener``: a local TCP port that fails the test if anything connects to it.
* ``holding_open(path)``: a second process holding a GeoPackage open and locked, as QGIS does.
* ``captions_gpkg``: a small captioned grid made once (copied for each test that changes it).
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from hypothesis import HealthCheck, settings

from locations import MAPSCRIBE, TEST_DATA

RGB_BYTE = TEST_DATA / "RGB.byte.tif"

# What a bug looks like from outside: Python's traceback, or main()'s bug report.
BUG_MARKERS = ("Traceback (most recent call last)", "internal error")


def assert_no_bug(result: subprocess.CompletedProcess) -> None:
    text = (result.stdout or "") + (result.stderr or "")
    for marker in BUG_MARKERS:
        assert marker not in text, f"a bug reached the user (exit {result.returncode}):\n{text}"
    assert result.returncode != 70, text


@pytest.fixture
def run_cli(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``mapscribe ARGS`` as people do; a traceback or a hang fails the test."""

    def run(*args: str, timeout: float = 240, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        env = dict(os.environ, MAPSCRIBE_LOG_DIR=str(tmp_path / "bug-reports"))
        try:
            result = subprocess.run([MAPSCRIBE, *map(str, args)], capture_output=True,
                                    text=True, timeout=timeout, cwd=cwd, env=env,
                                    errors="backslashreplace", stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mapscribe {' '.join(map(str, args))} hung (> {timeout} s)")
        assert_no_bug(result)
        return result

    return run


# Run first in every memory-limited case: ``cap_here(extra_mb)`` tightens the cap to what the
# process uses once its imports are done (torch alone maps gigabytes) plus ``extra_mb``.
LIMITED_PRELUDE = textwrap.dedent("""
    import resource


    def cap_here(extra_mb):
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) for line in status
                        if line.startswith("VmSize:")) * 1024
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = size + extra_mb * 2**20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

""")


@pytest.fixture
def run_limited(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run Python ``code`` in a subprocess whose address space is capped at ``limit_mb``.

    Returns the CompletedProcess; the code prints what the test checks. Allocating past the
    cap raises MemoryError (or torch's error) inside the child, never harms the machine.
    """

    def run(code: str, limit_mb: int, timeout: float = 240) -> subprocess.CompletedProcess:
        limit = limit_mb * 2**20

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        script = tmp_path / f"limited_{time.monotonic_ns()}.py"
        script.write_text(LIMITED_PRELUDE + textwrap.dedent(code))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
        try:
            return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                  timeout=timeout, preexec_fn=cap, cwd=tmp_path, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the memory-limited case hung (> {timeout} s):\n{code}")

    return run


@pytest.fixture
def listener() -> Iterator[str]:
    """``http://127.0.0.1:PORT/…`` of a local TCP listener; any connection fails the test."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    connections: List[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, address = server.accept()
            except (socket.timeout, OSError):
                continue
            connections.append(f"{address[0]}:{address[1]}")
            client.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    yield f"http://127.0.0.1:{port}/crs.wkt"
    stop.set()
    thread.join(2)
    server.close()
    assert not connections, f"MapScribe connected to the listener: {connections}"


@contextmanager
def _held_open(path: Path, exclusive: bool) -> Iterator[subprocess.Popen]:
    """A second process with ``path`` open in a transaction (SQLite's lock), until the block
    ends: what QGIS does while it writes (exclusive) or reads (shared) the GeoPackage."""
    statement = "BEGIN EXCLUSIVE" if exclusive else "BEGIN; SELECT count(*) FROM sqlite_master"
    code = textwrap.dedent(f"""
        import sqlite3, sys
        connection = sqlite3.connect({str(path)!r}, isolation_level=None)
        for part in {statement!r}.split(";"):
            connection.execute(part).fetchall()
        print("locked", flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def holding_open():
    return _held_open


@pytest.fixture(scope="session")
def captions_gpkg_master(tiny_model_path, tmp_path_factory) -> Path:
    """A real captions GeoPackage: RGB.byte.tif in 12 tiles, by the tiny model; also holds a
    second, user's layer ("notes") that nothing may delete."""
    from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster

    folder = tmp_path_factory.mktemp("captions")
    out = folder / "grid.gpkg"
    caption_raster(CaptionRasterParams(raster=str(RGB_BYTE), model=str(tiny_model_path),
                                       output=str(out), tile_size=200,
                                       tile_size_unit="pixels", batch_size=4, beam_size=1))
    _add_user_layer(out)
    return out


def _add_user_layer(path: Path) -> None:
    from osgeo import ogr, osr

    dataset = ogr.Open(str(path), 1)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    layer = dataset.CreateLayer("notes", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("text", ogr.OFTString))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("text", "the user's own layer")
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POINT (1 2)"))
    layer.CreateFeature(feature)
    dataset = None


@pytest.fixture
def captions_gpkg(captions_gpkg_master, tmp_path) -> Path:
    """A copy of the session's captions GeoPackage that the test may change."""
    target = tmp_path / "grid.gpkg"
    shutil.copy(captions_gpkg_master, target)
    return target


def layer_names(path: Path) -> List[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(row[0] for row in connection.execute(
            "SELECT table_name FROM gpkg_contents"))
    finally:
        connection.close()


@pytest.fixture
def gpkg_layers() -> Callable[[Path], List[str]]:
    return layer_names


# -- Hypothesis: no example database in the checkout, time bounds that a loaded CI machine meets.
settings.register_profile(
    "mapscribe", database=None, deadline=10_000, max_examples=60, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.load_profile("mapscribe")


def _address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status
                    if line.startswith("VmSize:")) * 1024


@contextmanager
def _memory_ceiling(extra_mb: int) -> Iterator[None]:
    """Within the block, this process may map at most ``extra_mb`` more than it does now: a
    runaway allocation raises MemoryError (failing the test) instead of exhausting the
    machine. The limit is lifted again afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + extra_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def memory_ceiling():
    return _memory_ceiling
