"""Distributed captioning under the real ``torchrun`` (two ranks, gloo, this machine's CPU).

Every run is a new process as people start it: ``torchrun --nproc-per-node 2 --standalone -m
mapscribe caption …``. The tiny session model, beam 1, 64-px tiles of
RGB.byte.tif in a caption pyramid of two levels (156 detail tiles, about half of them nodata,
under 42 coarser ones) keep each run to seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from affine import Affine
from osgeo import ogr

from mapscribe.model.geo.tile_sequence import GridLayout, TileSequence
from mapscribe.model.jobs.distributed import (
    DistributedError,
    RankInfo,
    distributed_rank,
    split_evenly,
)
from mapscribe.model.output.merge_parts import leftover_parts, part_path, settle_leftover_parts
from mapscribe.model.output.schema import GridWriteError
from rasters import RGB_BYTE

TORCHRUN = Path(sys.executable).parent / "torchrun"
# One thread in every process, the ranks' and the reference's alike: sums added up by two
# threads come out in another order, and the tiny model's close word probabilities can then
# flip a word.
ENV = {**os.environ, "MAPSCRIBE_THREADS": "1"}
OPTIONS = ("--tile-size", "64", "--tile-size-unit", "pixels", "--beam", "1", "--max-length",
           "12", "--device", "cpu", "--runtime", "torch", "--no-describe", "--levels", "2")
TILES = 156 + 42
# Reading order is coarsest first (ids 156 … 197, then 0 … 155); rank 1 takes the second half.
RANK_1_IDS = set((list(range(156, TILES)) + list(range(156)))[TILES // 2:])


def _torchrun(model, out, *extra, batch=4) -> list:
    return [str(TORCHRUN), "--nproc-per-node", "2", "--standalone", "-m",
            "mapscribe", "caption", str(RGB_BYTE), "--model", str(model),
            "--out", str(out), "--batch-size", str(batch), *OPTIONS, *extra]


def _rows(path):
    """(tile_id, row, col, caption, status) of every row, and the scores by tile_id."""
    with sqlite3.connect(path) as db:
        rows = sorted(db.execute("SELECT tile_id, row, col, caption, status, score "
                                 "FROM captions"))
    return [row[:5] for row in rows], {row[0]: row[5] for row in rows}


def _same_run(found, expected):
    """The same tiles and captions; scores equal but for float rounding (batches of other
    tiles)."""
    assert found[0] == expected[0]
    assert {tile_id: pytest.approx(score, abs=1e-3) if score is not None else None
            for tile_id, score in expected[1].items()} == found[1]


def _check_file(path):
    """Intact, one row per tile, the R-tree complete, no part file left beside it."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        count, distinct = db.execute("SELECT count(*), count(DISTINCT tile_id) FROM captions"
                                     ).fetchone()
        assert count == distinct
        assert db.execute("SELECT count(*) FROM rtree_captions_geom").fetchone() == (count,)
    assert leftover_parts(path) == []


@pytest.fixture(scope="module")
def reference_run(tiny_model_path, tmp_path_factory, cli):
    """One process's run: the tiles and captions every distributed run must give."""
    out = tmp_path_factory.mktemp("reference") / "grid.gpkg"
    done = cli("caption", str(RGB_BYTE), "--model", str(tiny_model_path), "--out", str(out),
               "--batch-size", "4", *OPTIONS)
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert len(rows[0]) == TILES and any(row[3] for row in rows[0])
    return rows, out


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run[0]


@pytest.fixture(scope="module")
def cli():
    # The module-scoped fixture above needs the runner at module scope too.
    from locations import MAPSCRIBE

    def run(*args, timeout=300):
        return subprocess.run([MAPSCRIBE, *args], capture_output=True, text=True,
                              timeout=timeout, env=ENV)

    return run


def test_two_ranks_give_the_tiles_and_captions_of_one_process(reference, tiny_model_path,
                                                              tmp_path):
    out = tmp_path / "grid.gpkg"
    done = subprocess.run(_torchrun(tiny_model_path, out), capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr
    _same_run(_rows(out), reference)
    _check_file(out)
    assert "merged from the part files of 2 torchrun ranks" in done.stdout
    # Rank 0 alone speaks: one summary, one progress line.
    assert done.stdout.count("Done: ") == 1
    assert done.stderr.count("captioning ") == 1, done.stderr
    with sqlite3.connect(out) as db:
        run = db.execute("SELECT metadata FROM gpkg_metadata WHERE metadata LIKE "
                         "'%MAPSCRIBE_RUN%'").fetchone()[0]
    assert '\\"world_size\\": 2' in run or '"world_size": 2' in run


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of torchrun's worker with RANK=rank (a child of the launcher)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no worker with RANK={rank} under torchrun {launcher}")


def _committed_rows(part: Path) -> int:
    """Rows in a part file being written, read without taking a lock (immutable=1): a
    reader's lock could make the rank's commit fail."""
    try:
        with sqlite3.connect(f"file:{part}?immutable=1", uri=True) as db:
            return db.execute("SELECT count(*) FROM captions").fetchone()[0]
    except sqlite3.Error:
        return 0


def _interrupt_when_rank_1_has_written(command, part: Path, stop
                                       ) -> subprocess.CompletedProcess:
    """Start torchrun, wait until rank 1 has committed a batch to ``part``, call
    ``stop(launcher)``, and wait for torchrun to end."""
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not (part.exists() and _committed_rows(part) >= 2):
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "rank 1 wrote nothing in 2 minutes"
            time.sleep(0.05)
        stop(launcher)
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    return subprocess.CompletedProcess(command, launcher.returncode, stdout, stderr)


def test_a_rank_killed_mid_run_then_one_process_resumes(reference, tiny_model_path, tmp_path,
                                                        cli):
    out = tmp_path / "grid.gpkg"
    part = part_path(out, 1, 2)
    launcher = _interrupt_when_rank_1_has_written(
        _torchrun(tiny_model_path, out, batch=2), part,
        lambda launcher: os.kill(_rank_pid(launcher.pid, 1), signal.SIGKILL))
    stderr = launcher.stderr
    assert launcher.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr or "exitcode  : -9" in stderr, stderr[-3000:]
    assert part.exists() and out.exists()  # nothing merged: every committed tile is in a part
    assert 0 < _committed_rows(part) < TILES
    resumed = cli("caption", str(RGB_BYTE), "--model", str(tiny_model_path), "--out", str(out),
                  "--batch-size", "4", "--resume", *OPTIONS)
    assert resumed.returncode == 0, resumed.stderr
    assert "already in the file" in resumed.stdout
    _same_run(_rows(out), reference)  # no tile missing, none twice, the same captions
    _check_file(out)


def test_ctrl_c_stops_every_rank_after_its_batch_and_keeps_their_tiles(reference,
                                                                       tiny_model_path,
                                                                       tmp_path):
    out = tmp_path / "grid.gpkg"
    # torchrun passes the signal on to every rank, as it does a terminal's Ctrl-C.
    launcher = _interrupt_when_rank_1_has_written(
        _torchrun(tiny_model_path, out, batch=2), part_path(out, 1, 2),
        lambda launcher: launcher.send_signal(signal.SIGINT))
    stderr = launcher.stderr
    assert launcher.returncode != 0
    # Rank 0 alone speaks; the ranks' tiles are merged, the parts gone.
    assert stderr.count("stopping after the batch in hand") == 1, stderr
    assert stderr.count("To finish, run the same command with --resume") == 1, stderr
    rows, _ = _rows(out)
    assert 2 <= len(rows) < TILES and any(row[0] in RANK_1_IDS for row in rows)
    assert set(rows) <= set(reference[0])
    _check_file(out)


def test_bad_input_under_torchrun_is_said_once_by_rank_0(tiny_model_path, tmp_path):
    missing = tmp_path / "no-such-scene.tif"
    command = _torchrun(tiny_model_path, tmp_path / "grid.gpkg")
    command[command.index(str(RGB_BYTE))] = str(missing)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode != 0
    assert done.stderr.count("mapscribe caption: error:") == 1, done.stderr
    assert str(missing) in done.stderr
    # torchrun reports the failed process with its own traceback; MapScribe's code is in none.
    assert "/model/" not in "".join(line for line in done.stderr.splitlines(True)
                                    if line.lstrip().startswith("File "))
    assert not (tmp_path / "grid.gpkg").exists()


def test_the_split_is_contiguous_even_and_complete():
    layout = GridLayout(rows=7, cols=5, origin=(0, 0), tile_size=(4, 4), step=(4, 4),
                        transform=Affine.identity(), raster_width=20, raster_height=28)
    tiles = TileSequence(layout).without({3, 4, 17})
    shares = [list(split_evenly(tiles, rank, 3).tile_ids()) for rank in range(3)]
    assert sum(shares, []) == list(tiles.tile_ids())
    assert [len(share) for share in shares] == [10, 11, 11]
    assert shares == [list(split_evenly(tiles, rank, 3).tile_ids()) for rank in range(3)]


def test_rank_from_the_environment():
    assert RankInfo.from_env({}) is None
    assert distributed_rank(False, {}) is None
    assert distributed_rank(True, {"RANK": "0", "WORLD_SIZE": "1"}) is None  # a world of one
    info = distributed_rank(False, {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                                    "LOCAL_WORLD_SIZE": "2"})
    assert info == RankInfo(1, 4, 1, 2, "")
    with pytest.raises(DistributedError, match="needs the processes that torchrun starts"):
        distributed_rank(True, {})
    with pytest.raises(DistributedError, match="RANK=5 and WORLD_SIZE=2"):
        RankInfo.from_env({"RANK": "5", "WORLD_SIZE": "2"})


def _sql(path, statement):
    # Through GDAL: the layer's R-tree triggers call its SQL functions (ST_IsEmpty …).
    dataset = ogr.Open(str(path), 1)
    dataset.ExecuteSQL(statement)
    dataset = None


def _keep(path, where):
    _sql(path, f"DELETE FROM captions WHERE NOT ({where})")


def test_leftover_parts_merged_on_resume_removed_on_overwrite_else_named(reference_run,
                                                                          tmp_path):
    rows, captioned = reference_run
    out = tmp_path / "grid.gpkg"
    shutil.copy(captioned, out)
    _keep(out, "tile_id < 78")
    # A tile whose imagery could not be read: a part's row replaces it.
    _sql(out, "UPDATE captions SET status = 'failed', caption = NULL WHERE tile_id = 20")
    shutil.copy(captioned, part_path(out, 0, 2))
    _keep(part_path(out, 0, 2), "tile_id >= 78 AND tile_id < 120")
    shutil.copy(captioned, part_path(out, 1, 2))  # every tile: those already there are skipped
    with pytest.raises(GridWriteError, match="--resume to keep them"):
        settle_leftover_parts(out, "captions", resume=False, overwrite=False)
    merged = settle_leftover_parts(out, "captions", resume=True, overwrite=False)
    new_in_part_1 = TILES - 120  # part 0 adds 42 tiles, part 1 the rest and tile 20
    assert (merged.added, merged.replaced, merged.skipped) == (
        42 + new_in_part_1 + 1, 1, TILES - new_in_part_1 - 1)
    _same_run(_rows(out), rows)
    _check_file(out)

    stranger = part_path(out, 0, 3)
    stranger.write_text("someone else's file")
    shutil.copy(captioned, part_path(out, 1, 3))
    with pytest.raises(GridWriteError, match="never deletes a file it did not write"):
        settle_leftover_parts(out, "captions", resume=False, overwrite=True)
    assert stranger.exists() and part_path(out, 1, 3).exists()
    stranger.unlink()
    settle_leftover_parts(out, "captions", resume=False, overwrite=True)
    assert leftover_parts(out) == [] and out.exists()


@pytest.mark.parametrize("world_size, finalised", [("2", False), ("1", True)])
def test_a_rank_ends_without_python_finalisation(world_size, finalised):
    """gloo's threads may still release the last collective's tensors while Python shuts down,
    which aborted a finished rank now and then (SIGABRT): a torchrun rank skips finalisation,
    its output flushed; one process ends as usual."""
    script = ("import atexit, torch.distributed\n"
              "from mapscribe.model.cli.main import exit_with\n"
              "atexit.register(lambda: print('finalised'))\n"
              "print('flushed', end='')\n"
              "exit_with(3)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**ENV, "WORLD_SIZE": world_size})
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("flushed")
    assert ("finalised" in done.stdout) == finalised
