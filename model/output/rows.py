"""The rows of a captions layer as exports see them: one :class:`CaptionRow` per tile with its
centre in WGS 84, in reading order (rows north to south, west to east).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Dict, Iterable, List, Optional

from ..geo.gdal_errors import ogr_failure, quiet_gdal
from .geopackage import open_geopackage
from .schema import CaptionLayerInfo, ExportError

# Decimals of degrees in the CSV and the report: 1e-7° is about a centimetre.
COORDINATE_DECIMALS = 7


@dataclass(frozen=True)
class CaptionRow:
    """One tile as exports see it; coordinates in WGS 84."""

    tile_id: int
    row: int
    col: int
    caption: Optional[str]
    score: Optional[float]
    status: str
    valid_fraction: Optional[float]
    is_edge: bool
    model: str
    created: str  # ISO 8601, e.g. 2024-05-01T12:00:00Z
    longitude: float  # of the tile's centre
    latitude: float
    wkt: str  # the tile polygon, longitude/latitude


# --------------------------------------------------------------------------------------------
# Reading the layer
# --------------------------------------------------------------------------------------------
def _wgs84():
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    # GDAL 3 gives EPSG:4326 latitude first; exports want longitude first, as RFC 7946 does.
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def read_caption_rows(info: CaptionLayerInfo) -> List[CaptionRow]:
    """Every tile of the layer, ordered by tile_id, with WGS 84 centres and polygons."""
    from osgeo import osr

    dataset = open_geopackage(info.path, update=False)
    if dataset is None:
        raise ExportError(f"{info.path} cannot be opened.")
    try:
        layer = dataset.GetLayerByName(info.layer)
        source = layer.GetSpatialRef()
        source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_wgs84 = osr.CoordinateTransformation(source, _wgs84())
        rows: List[CaptionRow] = []
        for feature in layer:
            rows.append(_caption_row(feature, info, to_wgs84))
        # OGR ends a loop quietly where SQLite cannot read on: count what was read.
        if len(rows) != info.feature_count:
            raise ExportError(f"{info.path} is damaged: {len(rows)} of the "
                              f"{info.feature_count} tiles of layer {info.layer!r} could be "
                              "read. Export a good copy, or caption the raster again into a "
                              "new file.")
    finally:
        dataset = None
    rows.sort(key=lambda r: r.tile_id)
    return rows


def _caption_row(feature, info: CaptionLayerInfo, to_wgs84) -> CaptionRow:
    try:
        return _convert_row(feature, info, to_wgs84)
    except (KeyError, TypeError, ValueError) as error:  # a NULL tile_id, a field gone …
        raise ExportError(f"feature {feature.GetFID()} of layer {info.layer!r} of {info.path} "
                          f"has a missing or wrong value ({error}); the file was edited or "
                          "damaged.") from None


def _convert_row(feature, info: CaptionLayerInfo, to_wgs84) -> CaptionRow:
    geometry = feature.GetGeometryRef()
    if geometry is None or geometry.IsEmpty():
        raise ExportError(f"tile {feature.GetField('tile_id')} of {info.path} has no "
                          "geometry; the file was edited or damaged.")
    centre = geometry.Centroid()
    polygon = geometry.Clone()
    with quiet_gdal() as last_error:
        problem = (ogr_failure(partial(centre.Transform, to_wgs84), last_error)
                   or ogr_failure(partial(polygon.Transform, to_wgs84), last_error))
    if problem:
        raise ExportError(f"tile {feature.GetField('tile_id')} of {info.path} cannot "
                          f"be reprojected from {info.srs_name} to WGS 84: {problem}")
    return CaptionRow(
        tile_id=int(feature.GetField("tile_id")), row=int(feature.GetField("row")),
        col=int(feature.GetField("col")), caption=_text_or_none(feature, "caption"),
        score=(None if feature.IsFieldNull("score")
               else float(feature.GetField("score"))),
        status=feature.GetField("status") or "",
        valid_fraction=(None if feature.IsFieldNull("valid_fraction")
                        else float(feature.GetField("valid_fraction"))),
        is_edge=bool(feature.GetField("is_edge")),
        model=feature.GetField("model") or "",
        created=_iso_datetime(feature, "created"),
        longitude=round(centre.GetX(), COORDINATE_DECIMALS),
        latitude=round(centre.GetY(), COORDINATE_DECIMALS),
        wkt=polygon.ExportToIsoWkt())


def _text_or_none(feature, name: str) -> Optional[str]:
    return None if feature.IsFieldNull(name) else feature.GetField(name)


def _iso_datetime(feature, name: str) -> str:
    if feature.IsFieldNull(name):
        return ""
    year, month, day, hour, minute, second, tz = feature.GetFieldAsDateTime(name)
    text = (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:"
            f"{int(second):02d}")
    if tz == 100:
        return text + "Z"
    if tz > 100:
        offset = (tz - 100) * 15
    elif tz > 1:
        offset = -(100 - tz) * 15
    else:
        return text  # local or unknown time zone
    sign = "+" if offset >= 0 else "-"
    return text + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
def reading_order(rows: Iterable[CaptionRow]) -> List[List[CaptionRow]]:
    """Tiles grouped by grid row, rows from north to south, each row from west to east.

    Grid rows follow the raster's pixel rows; whether row 0 is the north depends on how the
    raster is stored, so the order comes from the tiles' centres, not from the numbers.
    """
    by_row: Dict[int, List[CaptionRow]] = {}
    for row in rows:
        by_row.setdefault(row.row, []).append(row)
    groups = [sorted(group, key=lambda r: r.longitude) for group in by_row.values()]
    groups.sort(key=lambda group: -sum(r.latitude for r in group) / len(group))
    return groups
