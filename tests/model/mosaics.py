"""Captions layers whose layout is known, written with the engine's own writer: blocks of tiles
captioned with the real captions of the committed UCM sample (tests/data/ucm-sample), each
block of a known class, placed where the test says. For the describing step and the report.

A layout is a list of text rows, north first, one character per tile (see LEGEND): ::

    write_mosaic(path, ["FFAA",
                        "FFAA",
                        "RR..",
                        "RR.?"])

Optional fields that newer layers have are added when asked: ``theme``/``theme_probability``
(a model with a theme head) and ``level``/``parent_id`` (a caption pyramid).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

from osgeo import ogr, osr
from rasterio.windows import Window

from locations import UCM_SAMPLE
from mapscribe.model.data.themes import SCENE_THEMES, scene_of
from mapscribe.model.geo.tile_sequence import TileWindow
from mapscribe.model.output.plan import plan_output
from mapscribe.model.output.schema import TileRecord
from mapscribe.model.output.writer import open_grid_layer

# Fields of a captions layer that later MapScribe versions added; an older layer lacks them.
ADDED_FIELDS = ("theme", "theme_probability", "confidence", "level", "parent_id")


def _sample_captions() -> Dict[str, Tuple[str, ...]]:
    document = json.loads((UCM_SAMPLE / "annotations.json").read_text())
    return {image["filename"]: tuple(s["raw"] for s in image["sentences"])
            for image in document["images"]}


SAMPLE = _sample_captions()

# character → (status, sample image whose captions the tiles get, or None)
LEGEND: Dict[str, Tuple[str, Optional[str]]] = {
    "F": ("captioned", "1.tif"),       # farmland
    "A": ("captioned", "105.jpg"),     # airplanes: airport
    "B": ("captioned", "305.jpg"),     # beach: sea or beach
    "G": ("captioned", "905.jpg"),     # golf course: sports ground
    "I": ("captioned", "1105.jpg"),    # intersection: roads and bridges
    "R": ("captioned", "1650.jpg"),    # river
    "T": ("captioned", "1905.jpg"),    # storage tanks
    "C": ("captioned", "2005.jpg"),    # tennis court: sports ground
    "?": ("uncertain", "1105.jpg"),
    "u": ("unfinished", "1.tif"),
    ".": ("nodata", None),
    "x": ("failed", None),
}


def theme_of(character: str) -> Optional[str]:
    """The theme of a legend character's sample image (UC Merced's class, via data.themes)."""
    image = LEGEND[character][1]
    return SCENE_THEMES[scene_of("UCM-captions", image)] if image else None


def write_mosaic(path: Path, layout: Sequence[str], *, tile_m: float = 100.0,
                 epsg: int = 32633, origin: Tuple[float, float] = (500_000.0, 5_000_000.0),
                 north_up: bool = True, layer: str = "captions",
                 themes: Optional[Mapping[str, Optional[str]]] = None,
                 probability: float = 0.9, models: Optional[Mapping[str, str]] = None,
                 captions: Optional[Mapping[str, str]] = None, older: bool = False) -> Path:
    """Write a captions layer with one tile per character of ``layout``.

    ``themes``: when given, the layer gets ``theme`` and ``theme_probability`` fields, with the
    theme of each character from this mapping (characters not in it: None). ``north_up=False``
    stores the grid south-up: grid row 0 is then the southern row (the layout is still drawn
    north first). ``models``: another model label for the tiles of some characters;
    ``captions``: one caption for all tiles of some characters, instead of the sample's.
    ``older``: without the fields that later versions added (theme, …), as an older MapScribe
    wrote them.
    """
    rows, cols = len(layout), len(layout[0])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    records = []
    x0, y0 = origin
    for drawn_row, line in enumerate(layout):
        assert len(line) == cols, "every row of a layout has the same length"
        row = drawn_row if north_up else rows - 1 - drawn_row
        for col, character in enumerate(line):
            status, image = LEGEND[character]
            caption = None
            if image:
                choices = SAMPLE[image]
                caption = (captions or {}).get(character) or choices[(row + col) % len(choices)]
            top = y0 - drawn_row * tile_m
            tile = TileWindow(row=row, col=col, tile_id=row * cols + col,
                              window=Window(col * 10, row * 10, 10, 10),
                              bounds=(x0 + col * tile_m, top - tile_m, x0 + (col + 1) * tile_m,
                                      top), is_edge=False)
            records.append(TileRecord(tile, status, caption,
                                      None if caption is None else -0.5))
    grid = {"signature": f"mosaic-{rows}x{cols}", "tiles": rows * cols, "rows": rows,
            "cols": cols, "tile_size": [10, 10], "tile_size_map": [tile_m, tile_m]}
    run = {"raster": {"name": "mosaic.tif", "path": "/home/someone/private/mosaic.tif"},
           "model": {"name": "mosaic.mscap", "sha256": "0" * 64}}
    with open_grid_layer(plan_output(path, layer), source_crs_wkt=srs.ExportToWkt(),
                         output_crs=None, grid=grid, run=run, model_label="mosaic.mscap",
                         description="a test mosaic") as writer:
        writer.write(records)
    by_id = {record.tile.tile_id: layout[record.tile.row if north_up
                                         else rows - 1 - record.tile.row][record.tile.col]
             for record in records}
    if themes is not None or models:
        _edit(path, layer, by_id, themes, probability, models or {})
    if older:
        dataset = ogr.Open(str(path), 1)
        written = dataset.GetLayerByName(layer)
        for name in ADDED_FIELDS:
            index = written.GetLayerDefn().GetFieldIndex(name)
            if index >= 0:
                assert written.DeleteField(index) == 0
        dataset = None
    return path


def _edit(path, layer_name, by_id, themes, probability, models) -> None:
    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayerByName(layer_name)
    if themes is not None:
        add_field(layer, "theme", ogr.OFTString)
        add_field(layer, "theme_probability", ogr.OFTReal)
    dataset.StartTransaction()
    for feature in layer:
        character = by_id[feature.GetField("tile_id")]
        if themes is not None and themes.get(character):
            feature.SetField("theme", themes[character])
            feature.SetField("theme_probability", probability)
        if character in models:
            feature.SetField("model", models[character])
        layer.SetFeature(feature)
    dataset.CommitTransaction()
    dataset = None


def add_field(layer, name: str, kind: int) -> None:
    """Add a field unless the layer has it (newer writers may write it already)."""
    if layer.GetLayerDefn().GetFieldIndex(name) < 0:
        assert layer.CreateField(ogr.FieldDefn(name, kind)) == 0


def add_coarse_levels(path: Path, layer_name: str = "captions",
                      captions: Sequence[str] = ()) -> int:
    """Turn a one-level mosaic (a square grid of 2^k tiles a side) into a caption pyramid: its
    tiles become the finest level k, and levels k-1 … 0 are added, each tile covering 2 × 2
    of the level below, captioned with ``captions[level]`` (or the sample's farmland).
    Returns the finest level."""
    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayerByName(layer_name)
    add_field(layer, "level", ogr.OFTInteger)
    add_field(layer, "parent_id", ogr.OFTInteger64)
    tiles = {}
    for feature in layer:
        tiles[(feature.GetField("row"), feature.GetField("col"))] = (
            feature.GetFID(), feature.GetGeometryRef().Clone(), feature.GetField("tile_id"))
    side = max(row for row, _ in tiles) + 1
    finest = side.bit_length() - 1
    assert 2 ** finest == side, "a pyramid mosaic is 2^k tiles a side"
    dataset.StartTransaction()
    for feature in layer:
        feature.SetField("level", finest)
        layer.SetFeature(feature)
    next_id = 1_000_000
    level_tiles = {cell: (geometry, tile_id) for cell, (_, geometry, tile_id) in tiles.items()}
    for level in range(finest - 1, -1, -1):
        coarse = {}
        for row in range(2 ** level):
            for col in range(2 ** level):
                children = [level_tiles[(2 * row + dr, 2 * col + dc)]
                            for dr in (0, 1) for dc in (0, 1)]
                union = ogr.Geometry(ogr.wkbMultiPolygon)
                for geometry, _ in children:
                    union.AddGeometry(geometry)
                geometry = union.UnionCascaded()
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetField("tile_id", next_id)
                feature.SetField("row", row)
                feature.SetField("col", col)
                feature.SetField("level", level)
                feature.SetField("status", "captioned")
                feature.SetField("caption", captions[level] if level < len(captions)
                                 else SAMPLE["1.tif"][0])
                feature.SetField("score", -0.5)
                feature.SetField("valid_fraction", 1.0)
                feature.SetField("is_edge", 0)
                feature.SetField("model", "mosaic.mscap")
                feature.SetGeometry(geometry)
                assert layer.CreateFeature(feature) == 0
                coarse[(row, col)] = (geometry, next_id)
                next_id += 1
        level_tiles = coarse
    dataset.CommitTransaction()
    dataset = None
    return finest
