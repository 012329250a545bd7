"""The tiles of a captions layer as describing and the report see them: one :class:`Tile` per
feature with its level, grid place, status, caption, theme and centre in WGS 84.

Works on today's one-level layers and on a caption pyramid alike: the fields ``level`` (0 = the
coarsest), ``parent_id``, ``theme`` and ``theme_probability`` are read when the layer has them;
a layer without ``level`` is one level, 0. Geometries are not kept (a region's are read again
by feature id when it is dissolved, :mod:`.geometry`), so memory grows with the number of tiles
by a few hundred bytes each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..geo.gdal_errors import ogr_failure, quiet_gdal
from ..output.geopackage import open_geopackage
from ..output.schema import STATUSES, CaptionLayerInfo
from .geometry import layer_srs, wgs84_srs
from .schema import DescribeError

# Fields without which a layer cannot be described; every MapScribe version writes them.
REQUIRED_FIELDS = ("tile_id", "row", "col", "caption", "status")
# Fields read when present: a caption pyramid (level, parent_id), a model with a theme head.
OPTIONAL_FIELDS = ("level", "parent_id", "theme", "theme_probability", "score", "model")
# Beyond this a level number is not a pyramid MapScribe wrote (2 × 2 per level: 2^30 a side).
MAX_LEVEL = 30


@dataclass(frozen=True)
class Tile:
    """One feature of a captions layer."""

    fid: int
    tile_id: int
    level: int
    row: int
    col: int
    parent_id: Optional[int]
    status: str
    caption: Optional[str]
    score: Optional[float]
    theme: Optional[str]                 # as stored in the layer's theme field (None: none)
    theme_probability: Optional[float]
    model: str
    longitude: float                     # of the tile's centre, WGS 84
    latitude: float


@dataclass(frozen=True)
class LayerTiles:
    """Every tile of a captions layer, ordered by (level, tile_id)."""

    info: CaptionLayerInfo
    tiles: Tuple[Tile, ...]
    fields: FrozenSet[str]

    @property
    def levels(self) -> Tuple[int, ...]:
        return tuple(sorted({tile.level for tile in self.tiles})) or (0,)

    @property
    def finest(self) -> int:
        return self.levels[-1]

    @property
    def has_themes(self) -> bool:
        return "theme" in self.fields

    def at_level(self, level: int) -> List[Tile]:
        return [tile for tile in self.tiles if tile.level == level]


def read_layer_tiles(info: CaptionLayerInfo) -> LayerTiles:
    """Read every tile of the captions layer ``info`` describes.

    Raises :class:`DescribeError` naming the layer and field when a field MapScribe needs is
    missing, or a value is not of the type MapScribe writes (a file edited or damaged).
    """
    from osgeo import osr

    dataset = open_geopackage(info.path, update=False)
    if dataset is None:
        raise DescribeError(f"{info.path} cannot be opened as a GeoPackage.")
    try:
        layer = dataset.GetLayerByName(info.layer)
        definition = layer.GetLayerDefn()
        fields = frozenset(definition.GetFieldDefn(i).GetName()
                           for i in range(definition.GetFieldCount()))
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise DescribeError(
                f"layer {info.layer!r} of {info.path} has no field {', '.join(missing)}, which "
                "every MapScribe captions layer has: it was edited, or written by another "
                "program. Caption the raster again into a new file (mapscribe caption RASTER "
                "--model MODEL --out NEW.gpkg).")
        to_wgs84 = osr.CoordinateTransformation(layer_srs(layer), wgs84_srs())
        present = {name for name in OPTIONAL_FIELDS if name in fields}
        tiles = []
        with quiet_gdal() as last_error:
            for feature in layer:
                tiles.append(_tile(feature, info, present, to_wgs84, last_error))
        # OGR ends a loop quietly where SQLite cannot read on: count what was read.
        if len(tiles) != info.feature_count:
            raise DescribeError(f"{info.path} is damaged: {len(tiles)} of the "
                                f"{info.feature_count} tiles of layer {info.layer!r} could be "
                                "read. Use a good copy, or caption the raster again into a new "
                                "file.")
    finally:
        layer = None
        dataset = None
    tiles.sort(key=lambda tile: (tile.level, tile.tile_id))
    return LayerTiles(info, tuple(tiles), fields)


def _tile(feature, info: CaptionLayerInfo, present, to_wgs84, last_error) -> Tile:
    fid = feature.GetFID()

    def wrong(name: str, why: str) -> DescribeError:
        return DescribeError(f"feature {fid} of layer {info.layer!r} of {info.path} has a "
                             f"missing or wrong value in field {name!r} ({why}); the file was "
                             "edited or damaged. Use a good copy, or caption the raster again "
                             "into a new file.")

    def whole(name: str, required: bool = True, minimum: int = 0) -> Optional[int]:
        if feature.IsFieldNull(name):
            if required:
                raise wrong(name, "empty")
            return None
        value = feature.GetField(name)
        if not isinstance(value, int) or value < minimum:
            raise wrong(name, f"{value!r} is not a whole number ≥ {minimum}")
        return value

    def number(name: str) -> Optional[float]:
        if name not in present or feature.IsFieldNull(name):
            return None
        value = feature.GetField(name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong(name, f"{value!r} is not a finite number")
        return float(value)

    def text(name: str) -> Optional[str]:
        if name not in present and name not in REQUIRED_FIELDS:
            return None
        return None if feature.IsFieldNull(name) else str(feature.GetField(name))

    status = text("status") or ""
    if status not in STATUSES:
        raise wrong("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    level = whole("level", required=False) if "level" in present else 0
    if level is not None and level > MAX_LEVEL:
        raise wrong("level", f"{level} is more than {MAX_LEVEL} levels")
    longitude, latitude = _centre(feature, info, to_wgs84, last_error)
    theme = text("theme")
    return Tile(
        fid=fid, tile_id=int(whole("tile_id") or 0), level=level or 0,
        row=int(whole("row") or 0), col=int(whole("col") or 0),
        parent_id=whole("parent_id", required=False) if "parent_id" in present else None,
        status=status, caption=text("caption"), score=number("score"),
        theme=theme.strip() if theme else None,
        theme_probability=number("theme_probability"), model=text("model") or "",
        longitude=longitude, latitude=latitude)


def _centre(feature, info: CaptionLayerInfo, to_wgs84, last_error) -> Tuple[float, float]:
    geometry = feature.GetGeometryRef()
    if geometry is None or geometry.IsEmpty():
        raise DescribeError(f"feature {feature.GetFID()} of layer {info.layer!r} of "
                            f"{info.path} has no geometry; the file was edited or damaged.")
    centre = geometry.Centroid()
    problem = ogr_failure(partial(centre.Transform, to_wgs84), last_error)
    if problem:
        raise DescribeError(f"feature {feature.GetFID()} of layer {info.layer!r} of "
                            f"{info.path} cannot be reprojected from {info.srs_name} to "
                            f"WGS 84: {problem}")
    return centre.GetX(), centre.GetY()


def reading_rows(tiles: List[Tile]) -> List[List[Tile]]:
    """Tiles of one level grouped by grid row, rows from north to south, each from west to
    east. Whether grid row 0 is the north depends on how the raster is stored, so the order
    comes from the tiles' centres, not from the numbers."""
    by_row: Dict[int, List[Tile]] = {}
    for tile in tiles:
        by_row.setdefault(tile.row, []).append(tile)
    groups = [sorted(group, key=lambda t: (t.longitude, t.col)) for group in by_row.values()]
    groups.sort(key=lambda group: (-sum(t.latitude for t in group) / len(group), group[0].row))
    return groups
