"""Exports of a real captioned grid: GeoJSON (RFC 7946), CSV and the accessible HTML report."""

from __future__ import annotations

import csv
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from osgeo import gdal, ogr, osr
from rasterio.warp import transform_bounds

from mapscribe.model.geo.areas import WholeRaster
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
from mapscribe.model.jobs.caption import caption_raster
from mapscribe.model.jobs.caption_params import CaptionRasterParams
from mapscribe.model.output.exports import (
    CSV_COLUMNS,
    ExportError,
    export_captions,
    format_from_suffix,
)
from mapscribe.model.output.report import recurring_subjects
from mapscribe.model.output.rows import CaptionRow, reading_order
from rasters import RGB_BYTE

TILES = 42  # RGB.byte.tif (791 × 718 px) in 128-pixel tiles: 6 rows × 7 columns


@pytest.fixture(scope="module")
def grid_gpkg(tiny_model_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "grid.gpkg"
    caption_raster(CaptionRasterParams(raster=RGB_BYTE, model=tiny_model_path, output=out,
                                       tile_size=128, tile_size_unit="pixels", batch_size=8,
                                       beam_size=1, max_length=12, device="cpu"))
    return out


@pytest.fixture
def grid_copy(grid_gpkg, tmp_path) -> Path:
    copy = tmp_path / "copy.gpkg"
    shutil.copy(grid_gpkg, copy)
    return copy


def _tiles():
    return plan_tiles(RasterInfo.from_path(RGB_BYTE), WholeRaster(),
                      TileGridParams(tile_size=128, tile_size_unit="pixels")).tiles


def _edit(path, edit):
    """Apply ``edit(layer)`` to the captions layer of ``path`` (kept open while editing)."""
    dataset = ogr.Open(str(path), 1)
    edit(dataset.GetLayerByName("captions"))
    dataset = None


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------
def _ring_area(ring):
    """Shoelace area: positive for a counter-clockwise ring."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:])) / 2


def test_geojson_is_rfc7946_lon_lat_without_crs(grid_gpkg, tmp_path):
    out = tmp_path / "captions.geojson"
    result = export_captions(grid_gpkg, "geojson", out)
    assert result.tiles == TILES and result.path == out
    document = json.loads(out.read_text())
    assert document["type"] == "FeatureCollection" and "crs" not in document
    features = document["features"]
    assert [f["properties"]["tile_id"] for f in features] == [t.tile_id for t in _tiles()]
    expected = {t.tile_id: transform_bounds("EPSG:32618", "EPSG:4326", *t.bounds,
                                            densify_pts=21) for t in _tiles()}
    for feature in features:
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1]
        assert _ring_area(ring) > 0  # RFC 7946: exterior rings counter-clockwise
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        # Longitude first: the Bahamas are near 77-79° W, 23-25.5° N.
        assert all(-79.5 < x < -76 for x in lons) and all(23 < y < 25.6 for y in lats)
        west, south, east, north = expected[feature["properties"]["tile_id"]]
        assert (min(lons), min(lats), max(lons), max(lats)) == pytest.approx(
            (west, south, east, north), abs=2e-3)
        properties = feature["properties"]
        assert properties["status"] in ("captioned", "unfinished", "nodata")
        assert (properties["caption"] is None) == (properties["status"] == "nodata")
        assert properties["created"].endswith("Z") and "T" in properties["created"]
    assert isinstance(features[0]["properties"]["is_edge"], bool)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
def test_csv_has_captions_centres_in_lon_lat_and_wkt(grid_gpkg, tmp_path):
    out = tmp_path / "captions.csv"
    export_captions(grid_gpkg, "csv", out)
    text = out.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    rows = list(reader)
    assert [int(r["tile_id"]) for r in rows] == [t.tile_id for t in _tiles()]
    for row, tile in zip(rows, _tiles()):
        assert (int(row["row"]), int(row["col"])) == (tile.row, tile.col)
        polygon = ogr.CreateGeometryFromWkt(row["wkt"])
        assert polygon is not None and polygon.GetGeometryName() == "POLYGON"
        centre = polygon.Centroid()
        assert float(row["longitude"]) == pytest.approx(centre.GetX(), abs=1e-3)
        assert float(row["latitude"]) == pytest.approx(centre.GetY(), abs=1e-3)
        assert -79.5 < float(row["longitude"]) < -76 and 23 < float(row["latitude"]) < 25.6
        if row["status"] == "nodata":
            assert row["caption"] == "" and row["score"] == ""
        else:
            assert row["caption"] and float(row["score"]) <= 0
    # The centre of tile (0, 0) is the UTM centre of its bounds, reprojected.
    left, bottom, right, top = _tiles()[0].bounds
    to_wgs84 = osr.CoordinateTransformation(_srs(32618), _srs(4326))
    lon, lat, _ = to_wgs84.TransformPoint((left + right) / 2, (bottom + top) / 2)
    assert (float(rows[0]["longitude"]), float(rows[0]["latitude"])) == pytest.approx(
        (lon, lat), abs=1e-6)


def _srs(code):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                 "source", "track", "wbr"}


class StrictHTML(HTMLParser):
    """html.parser made strict: every element closed in order, no stray end tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.elements, self.doctype = [], [], [], None
        self.rows, self._cells, self._cell_text = [], None, None
        self.text = []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes, len(self.stack)))
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)
        # A tile of the reading-order lists: its place and its text.
        if tag == "li" and "data-tile" in attributes:
            self._cells = {"row": int(attributes["data-row"]), "col": int(attributes["data-col"]),
                           "level": int(attributes["data-level"]), "cells": []}
            self._cell_text = []

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.errors.append(f"<{tag}/> is not a void element")
        self.elements.append((tag, dict(attrs), len(self.stack)))

    def handle_endtag(self, tag):
        if tag in VOID_ELEMENTS:
            self.errors.append(f"end tag for void <{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        if tag == "li" and self._cells is not None:
            self._cells["cells"].append("".join(self._cell_text).strip())
            self._cell_text = None
            self.rows.append(self._cells)
            self._cells = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell_text is not None:
            self._cell_text.append(data)

    def tags(self, name):
        return [attributes for tag, attributes, _ in self.elements if tag == name]


def _parse(text):
    parser = StrictHTML()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


def test_html_report_is_valid_navigable_and_in_reading_order(grid_gpkg, tmp_path):
    out = tmp_path / "report.html"
    result = export_captions(grid_gpkg, "html", out)
    assert result.tiles == TILES
    text = out.read_text(encoding="utf-8")
    page = _parse(text)
    assert page.doctype.lower() == "doctype html"
    assert page.elements[0][0] == "html" and page.elements[0][1]["lang"] == "en"
    assert page.tags("meta")[0] == {"charset": "utf-8"}
    assert "Captions of RGB.byte.tif" in text.split("<title>")[1].split("</title>")[0]
    # Landmarks and headings: one h1, then h2s, no level skipped.
    for landmark in ("header", "main", "footer"):
        assert len(page.tags(landmark)) == 1, landmark
    headings = [int(tag[1]) for tag, _, _ in page.elements if tag in ("h1", "h2", "h3", "h4")]
    assert headings[0] == 1 and headings.count(1) == 1 and headings.count(2) >= 2
    assert all(b - a <= 1 for a, b in zip(headings, headings[1:]))
    # From the overview to the details: overview, regions, tiles of each region, tiles by level.
    order = [a["id"] for tag, a, _ in page.elements if tag == "h2"]
    assert order[:2] == ["overview-heading", "regions-heading"]
    assert order.index("tiles-heading") > order.index("regions-heading")
    ids = [a["id"] for _, a, _ in page.elements if "id" in a]
    assert len(ids) == len(set(ids))
    for _, attributes, _ in page.elements:
        if "aria-labelledby" in attributes:
            assert attributes["aria-labelledby"] in ids
        if attributes.get("href", "").startswith("#"):
            assert attributes["href"][1:] in ids
    # Every tile once in the lists by level, each row under its heading ("Row 1 of 6").
    assert len(page.rows) == TILES and {r["level"] for r in page.rows} == {0}
    assert sum(1 for tag, _, _ in page.elements if tag == "h4") == 6
    # Reading order: this raster is north-up, so grid rows top to bottom, columns left to right.
    order = [(r["row"], r["col"]) for r in page.rows]
    assert order == sorted(order)
    assert page.rows[0]["cells"][0].startswith("Column 1: ")
    # The overview's counts agree with the lists.
    nodata = sum(1 for r in page.rows if r["cells"][0].endswith("(no data)"))
    words = " ".join(page.text)
    assert f"{nodata} tiles hold too little imagery" in words
    assert f"{TILES - nodata} tiles have a caption" in words
    assert "° N" in words and "° W" in words  # the area's extent
    assert "Subjects that recur most" in words and "tiny.mscap" in words
    assert "not finished" not in words
    # Files are named by their names, never by local paths.
    assert str(grid_gpkg.parent) not in text and str(RGB_BYTE.parent) not in text
    assert "grid.gpkg (layer captions)" in words


def test_html_escapes_captions_and_reports_an_unfinished_grid(grid_copy, tmp_path):
    def edit(layer):
        layer.SetAttributeFilter("status <> 'nodata'")
        feature = layer.GetNextFeature()
        feature.SetField("caption", '<script>alert("x")</script> & a "road"')
        layer.SetFeature(feature)
        layer.SetAttributeFilter(None)
        for fid in [f.GetFID() for f in layer][-5:]:
            layer.DeleteFeature(fid)

    _edit(grid_copy, edit)
    out = tmp_path / "report.html"
    export_captions(grid_copy, "html", out)
    text = out.read_text(encoding="utf-8")
    page = _parse(text)
    # One script: the report's own (the search field), never a caption.
    assert len(page.tags("script")) == 1 and "&lt;script&gt;" in text
    assert text.count("<script>") == 1 and 'alert("x")</script>' not in text
    assert any('<script>alert("x")</script> & a "road"' in cell
               for row in page.rows for cell in row["cells"])
    words = " ".join(page.text)
    assert f"5 of {TILES} tiles have no caption yet" in words and "--resume" in words
    assert len(page.rows) == TILES - 5


# --------------------------------------------------------------------------------------------
# Pieces of the report
# --------------------------------------------------------------------------------------------
def _row(row, col, lon, lat):
    return CaptionRow(tile_id=row * 10 + col, row=row, col=col, caption="x", score=-1.0,
                      status="captioned", valid_fraction=1.0, is_edge=False, model="m",
                      created="", longitude=lon, latitude=lat, wkt="")


def test_reading_order_follows_the_ground_not_the_grid_numbers():
    # A raster stored south-up with columns running west: grid row 0 is the southern one and
    # column 0 the eastern one. Reading order is still north to south, west to east.
    rows = [_row(0, 0, 5.1, 10.0), _row(0, 1, 5.0, 10.0), _row(1, 0, 5.1, 10.1),
            _row(1, 1, 5.0, 10.1)]
    order = [[(r.row, r.col) for r in group] for group in reading_order(rows)]
    assert order == [[(1, 1), (1, 0)], [(0, 1), (0, 0)]]


def test_recurring_subjects_count_content_words_once_per_caption():
    captions = ["many buildings and green trees are around a road",
                "a road near buildings buildings", "the buildings are dense",
                "there is a lot of green trees"]
    assert recurring_subjects(captions, top=4) == [("buildings", 3), ("green", 2),
                                                   ("road", 2), ("trees", 2)]


def test_format_from_suffix():
    assert format_from_suffix("a/b.GeoJSON") == "geojson" and format_from_suffix("x.json") == \
        "geojson"
    assert format_from_suffix("x.csv") == "csv" and format_from_suffix("r.htm") == "html"
    assert format_from_suffix("x.txt") is None


# --------------------------------------------------------------------------------------------
# Errors and atomic writes
# --------------------------------------------------------------------------------------------
def test_inputs_that_are_not_captions_geopackages_are_refused(grid_copy, tmp_path):
    out = tmp_path / "x.csv"
    with pytest.raises(ExportError, match="no such file"):
        export_captions(tmp_path / "missing.gpkg", "csv", out)
    text_file = tmp_path / "notes.gpkg"
    text_file.write_text("hello")
    with pytest.raises(ExportError, match="is not a GeoPackage"):
        export_captions(text_file, "csv", out)
    plain = tmp_path / "plain.gpkg"
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(plain))
    dataset.CreateLayer("roads", _srs(4326), ogr.wkbLineString)
    dataset = None
    with pytest.raises(ExportError, match=r"holds no MapScribe captions layer.*roads"):
        export_captions(plain, "csv", out)
    with pytest.raises(ExportError, match="unknown export format 'pdf'"):
        export_captions(grid_copy, "pdf", out)
    with pytest.raises(ExportError, match="would replace the GeoPackage"):
        export_captions(grid_copy, "csv", grid_copy)
    assert not out.exists()

    # A second captions layer (ogr2ogr copies layer metadata): the layer must then be named.
    gdal.VectorTranslate(str(grid_copy), str(grid_copy), accessMode="update",
                         layerName="second", layers=["captions"])
    with pytest.raises(ExportError, match=r"several MapScribe captions layers.*--layer"):
        export_captions(grid_copy, "csv", out)
    assert export_captions(grid_copy, "csv", out, layer="second").tiles == TILES
    with pytest.raises(ExportError, match="layer 'nope'.*does not exist"):
        export_captions(grid_copy, "csv", out, layer="nope")


def test_exports_replace_an_existing_file_atomically(grid_gpkg, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old report")
    # Not an earlier export: replaced only when asked (tests/hostile/test_exports.py).
    export_captions(grid_gpkg, "html", out, overwrite=True)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary left
