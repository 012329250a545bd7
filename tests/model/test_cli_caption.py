"""`mapscribe caption` and `mapscribe export`: exit codes, messages, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from locations import MAPSCRIBE
from mapscribe.model.cli.main import main
from rasters import NAIP, RGB_BYTE

BOX = ["--bbox", "-78.0", "24.0", "-77.5", "24.5", "--bbox-crs", "EPSG:4326"]
FAST = ["--tile-size", "64", "--tile-size-unit", "pixels", "--beam", "1", "--max-length", "12",
        "--device", "cpu"]


def _count(gpkg, layer="captions"):
    with sqlite3.connect(gpkg) as db:
        return db.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0]


def test_caption_then_refuse_then_resume_then_export(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "grid.gpkg"
    args = ["caption", str(RGB_BYTE), "--model", str(tiny_model_path), *BOX, *FAST,
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "Done: " in printed.out and "— 9 tiles in" in printed.out
    assert f"Written to {out.resolve()} (layer 'captions')" in printed.out
    assert "Grid: 3 rows × 3 columns, 9 tiles of 64×64 px" in printed.out
    assert "A few captions:" in printed.out and "Next: mapscribe export" in printed.out
    assert "captioning" in printed.err and "9/9" in printed.err  # the progress bar's last line
    assert _count(out) == 9

    assert main(args) == 1
    printed = capsys.readouterr()
    assert "mapscribe caption: error:" in printed.err and "already holds captions" in printed.err
    assert "--resume" in printed.err and "Traceback" not in printed.err

    assert main(args + ["--resume"]) == 0
    assert "9 already in the file" in capsys.readouterr().out
    assert _count(out) == 9

    for name, extra in (("report.html", []), ("grid.json", ["--format", "geojson"]),
                        ("grid.csv", [])):
        target = tmp_path / name
        assert main(["export", str(out), "--out", str(target), *extra]) == 0
        assert "Wrote 9 tiles as" in capsys.readouterr().out and target.exists()
    assert len(json.loads((tmp_path / "grid.json").read_text())["features"]) == 9


def test_polygons_and_output_crs_options(tiny_model_path, tmp_path, capsys):
    polygons = tmp_path / "aoi.geojson"
    polygons.write_text(json.dumps({"type": "Polygon", "coordinates": [
        [[-78.0, 24.0], [-77.6, 24.0], [-77.6, 24.4], [-78.0, 24.0]]]}))
    out = tmp_path / "poly.gpkg"
    assert main(["caption", str(RGB_BYTE), "--model", str(tiny_model_path), "--polygons",
                 str(polygons), *FAST, "--out-crs", "EPSG:3857", "--layer", "aoi",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer CRS EPSG:3857" in printed and "(layer 'aoi')" in printed
    assert 0 < _count(out, "aoi") < 9


@pytest.mark.parametrize("args, message", [
    (["caption", "missing.tif", "--model", "m.mscap", "--out", "o.gpkg"],
     "cannot open raster missing.tif"),
    (["caption", str(RGB_BYTE), "--model", "m.mscap", "--out", "o.gpkg", "--bbox-crs",
      "EPSG:4326"], "--bbox-crs needs --bbox"),
    (["caption", str(RGB_BYTE), "--model", "missing.mscap", "--out", "o.gpkg"],
     "no such model file"),
    (["caption", str(RGB_BYTE), "--model", "m", "--out", "o.gpkg", "--beam", "0"],
     "beam_size must be a whole number"),
    (["export", "missing.gpkg", "--out", "x.html"], "no such file"),
    (["export", str(RGB_BYTE), "--out", "x.txt"], "cannot tell the format"),
    (["export", str(RGB_BYTE), "--out", "x.csv"], "is not a GeoPackage"),
])
def test_bad_input_exits_1_with_a_message_and_no_traceback(args, message, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.gpkg").exists()


@pytest.mark.parametrize("args", [
    ["caption", "r.tif", "--model", "m", "--out", "o.gpkg", "--overwrite", "--resume"],
    ["caption", "r.tif", "--model", "m"],
    ["caption", "r.tif", "--model", "m", "--out", "o.gpkg", "--bbox", "1", "2", "3", "4",
     "--polygons", "p.gpkg"],
    ["export", "g.gpkg", "--out", "x", "--format", "pdf"],
])
def test_wrong_usage_exits_2(args, capsys):
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2


def test_ctrl_c_stops_after_the_batch_in_hand_and_says_how_to_resume(tiny_model_path,
                                                                      tmp_path):
    out = tmp_path / "grid.gpkg"
    # NAIP in 32-pixel tiles: 690 tiles, far more than can be done before the Ctrl-C.
    process = subprocess.Popen(
        [MAPSCRIBE, "caption", str(NAIP), "--model", str(tiny_model_path), "--tile-size", "32",
         "--tile-size-unit", "pixels", "--batch-size", "2", "--beam", "1", "--device", "cpu",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, MAPSCRIBE_THREADS="1"))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if out.exists() and _count(out) > 0:
                    break
            except sqlite3.Error:  # the layer is still being created
                pass
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "stopping after the batch in hand" in stderr
    assert "run the same command with --resume" in stderr and "Traceback" not in stderr
    assert stdout.startswith("Stopped: ")
    done = _count(out)
    assert 0 < done < 690 and f"— {done} tiles in" in stdout
