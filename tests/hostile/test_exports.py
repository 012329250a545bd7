"""Exports of a GeoPackage from anyone (points 3, 4, 5, 9 and 13 of issue 9): an existing file
is replaced only when it is an earlier export of the same kind (or with --overwrite); the CRS
text in the run metadata is never handed to GDAL's parser of people's input; CSV cells cannot
start a formula; a damaged file is reported, not exported in part; bad metadata is a message."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from locations import TEST_DATA
from mapscribe.model.output.exports import captions_csv, spreadsheet_safe
from mapscribe.model.output.rows import CaptionRow

RGB_BYTE = TEST_DATA / "RGB.byte.tif"


def _set_metadata(path: Path, key: str, change) -> None:
    """Change the JSON metadata item ``key`` of the captions layer (as a stranger could)."""
    from osgeo import ogr

    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayerByName("captions")
    value = json.loads(layer.GetMetadataItem(key))
    changed = change(value)
    layer.SetMetadataItem(key, changed if isinstance(changed, str) else json.dumps(value))
    dataset = None


def _sql(path: Path, statement: str) -> None:
    """Run SQL on the GeoPackage through GDAL (its triggers need GDAL's ST_ functions)."""
    from osgeo import ogr

    dataset = ogr.Open(str(path), 1)
    dataset.ExecuteSQL(statement)
    dataset = None


# -- point 3: exports never replace what they did not write ----------------------------------------
def test_export_does_not_replace_a_file_that_is_no_earlier_export(run_cli, captions_gpkg,
                                                                  tiny_model_path, tmp_path):
    raster = tmp_path / "scene.csv"
    shutil.copy(RGB_BYTE, raster)
    model = tmp_path / "model.html"
    shutil.copy(tiny_model_path, model)
    for target in (raster, model):
        before = target.read_bytes()
        result = run_cli("export", captions_gpkg, "--out", target)
        assert result.returncode == 1
        assert "is not an earlier MapScribe" in result.stderr and "--overwrite" in result.stderr
        assert target.read_bytes() == before
    # An earlier export of the same kind is replaced; another kind is not.
    report = tmp_path / "report.html"
    assert run_cli("export", captions_gpkg, "--out", report).returncode == 0
    assert run_cli("export", captions_gpkg, "--out", report).returncode == 0
    as_csv = run_cli("export", captions_gpkg, "--out", report, "--format", "csv")
    assert as_csv.returncode == 1 and "not an earlier MapScribe csv export" in as_csv.stderr
    geojson = tmp_path / "captions.geojson"
    assert run_cli("export", captions_gpkg, "--out", geojson).returncode == 0
    assert run_cli("export", captions_gpkg, "--out", geojson).returncode == 0
    # --overwrite says so.
    forced = run_cli("export", captions_gpkg, "--out", raster, "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert raster.read_text().startswith("tile_id,row,col,caption")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_export_into_a_pipe_is_refused_without_blocking(run_cli, captions_gpkg, tmp_path):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    result = run_cli("export", captions_gpkg, "--out", fifo, "--overwrite", timeout=120)
    assert result.returncode == 1 and "not a regular file" in result.stderr


# -- point 4: CRS text from the file is data, never fetched or opened ------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_crs_text_in_the_metadata_is_never_fetched_or_opened(run_cli, captions_gpkg, tmp_path,
                                                             listener):
    fifo = tmp_path / "blocks-for-ever"
    os.mkfifo(fifo)
    for crs in (listener, str(fifo), f"file://{fifo}", "/etc/passwd", "/dev/stdin",
                f'PROJCS["x",GEOGCS["y",DATUM["z",SPHEROID["s",1,0]],PRIMEM["p",0],'
                f'UNIT["degree",0.01745]],EXTENSION["PROJ4","+init={fifo}:1"]]'):
        _set_metadata(captions_gpkg, "MAPSCRIBE_GRID", lambda grid, crs=crs: grid.update(crs=crs))
        out = tmp_path / "report.html"
        result = run_cli("export", captions_gpkg, "--out", out, timeout=120)
        assert result.returncode == 0, result.stderr
        # The report still says how big tiles are, in plain "map units".
        assert "map units" in out.read_text()


def test_a_crs_code_or_wkt_in_the_metadata_is_still_read():
    from mapscribe.model.geo.crs import srs_from_file_text

    assert srs_from_file_text("EPSG:32618").GetAuthorityCode(None) == "32618"
    from osgeo import osr

    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    assert srs_from_file_text(wgs84.ExportToWkt()).IsGeographic()
    for hostile in ("http://example.com/crs", "/etc/passwd", "+proj=longlat +init=epsg:4326",
                    "EPSG:4326 /etc/passwd", "", None, 4326, "x" * 100_000):
        assert srs_from_file_text(hostile) is None


# -- point 5: CSV cells cannot start a formula -----------------------------------------------------
def _row(caption: str, status: str = "captioned") -> CaptionRow:
    return CaptionRow(tile_id=1, row=0, col=1, caption=caption, score=-1.25, status=status,
                      valid_fraction=1.0, is_edge=False, model="m", created="",
                      longitude=-78.5, latitude=-25.25, wkt="POLYGON ((0 0,1 0,1 1,0 0))")


def test_csv_cells_that_would_start_a_formula_are_neutralised():
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
               "\tTAB", "\rCR"]
    parsed = list(csv.reader(io.StringIO(captions_csv([_row(text) for text in hostile]))))
    assert [row[3] for row in parsed[1:]] == ["'" + text for text in hostile]
    # Numbers MapScribe wrote stay numbers; ordinary captions stay as they are.
    assert parsed[1][4] == "-1.2500" and parsed[1][6] == "-78.5000000"
    assert spreadsheet_safe("a farm beside a river") == "a farm beside a river"


def test_csv_export_of_a_strangers_captions_is_neutralised(run_cli, captions_gpkg, tmp_path):
    _sql(captions_gpkg, "UPDATE captions SET caption = '=1+2' WHERE status != 'nodata'")
    out = tmp_path / "captions.csv"
    assert run_cli("export", captions_gpkg, "--out", out).returncode == 0
    cells = [row[3] for row in csv.reader(io.StringIO(out.read_text()))][1:]
    assert "'=1+2" in cells and "=1+2" not in cells


# -- point 9: a damaged file is reported, never exported in part or trusted on resume --------------
@pytest.fixture
def damaged_gpkg(tiny_model_path, tmp_path):
    """A captions GeoPackage of 156 tiles with one of its table's pages overwritten."""
    from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster

    out = tmp_path / "damaged.gpkg"
    caption_raster(CaptionRasterParams(raster=str(RGB_BYTE), model=str(tiny_model_path),
                                       output=str(out), tile_size=64, tile_size_unit="pixels",
                                       beam_size=1, batch_size=32))
    connection = sqlite3.connect(out)
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    pages = [row[0] for row in connection.execute(
        "SELECT pageno FROM dbstat WHERE name = 'captions' AND pagetype = 'leaf'")]
    connection.close()
    assert len(pages) > 3
    with open(out, "r+b") as stream:
        stream.seek(page_size * (pages[len(pages) // 2] - 1))
        stream.write(b"\xff" * page_size)
    return out


def test_a_damaged_geopackage_is_not_exported_in_part(run_cli, damaged_gpkg, tmp_path):
    for name in ("captions.csv", "captions.html", "captions.geojson"):
        result = run_cli("export", damaged_gpkg, "--out", tmp_path / name)
        assert result.returncode == 1 and "is damaged" in result.stderr
        assert not (tmp_path / name).exists()


def test_resume_does_not_trust_a_damaged_geopackage(run_cli, damaged_gpkg, tiny_model_path):
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out", damaged_gpkg,
                     "--tile-size", "64", "--tile-size-unit", "pixels", "--resume")
    assert result.returncode == 1 and "is damaged" in result.stderr


# -- point 13: bad metadata is a message, not a traceback ------------------------------------------
@pytest.mark.parametrize("key, change", [
    ("MAPSCRIBE_GRID", lambda grid: grid.update(tiles="many")),
    ("MAPSCRIBE_GRID", lambda grid: grid.update(rows=-3)),
    ("MAPSCRIBE_GRID", lambda grid: grid.update(tile_size_map=["a", None])),
    ("MAPSCRIBE_RUN", lambda run: run.update(raster="scene.tif")),
    ("MAPSCRIBE_RUN", lambda run: run.update(model={"name": 5, "training_images": "x"})),
    ("MAPSCRIBE_RUN", lambda run: "[" * 100_000),
    ("MAPSCRIBE_GRID", lambda run: "{}" + " " * 2_000_000),
])
def test_bad_metadata_is_reported_as_a_damaged_file(run_cli, captions_gpkg, tmp_path, key,
                                                    change):
    _set_metadata(captions_gpkg, key, change)
    result = run_cli("export", captions_gpkg, "--out", tmp_path / "report.html")
    assert result.returncode == 1
    assert "edited" in result.stderr or "damaged" in result.stderr


def test_null_values_in_the_rows_are_reported(run_cli, captions_gpkg, tmp_path):
    _sql(captions_gpkg, "UPDATE captions SET tile_id = NULL WHERE tile_id = 0")
    result = run_cli("export", captions_gpkg, "--out", tmp_path / "captions.csv")
    assert result.returncode == 1 and "wrong value" in result.stderr
