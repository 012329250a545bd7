"""Areas of interest: which part of a raster to caption, as plain data.

No GDAL, numpy or torch here, so every front door (the QGIS dock at start-up included) can
describe an area cheaply; :mod:`.tiling` turns one into tiles and :func:`.vector.read_polygon_file`
reads one from a vector file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple, Union


@dataclass(frozen=True)
class WholeRaster:
    """Tile the whole raster."""


@dataclass(frozen=True)
class BoundingBox:
    """A rectangle in ``crs`` (any CRS string rasterio understands: "EPSG:4326", WKT, PROJ)."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    crs: str


@dataclass(frozen=True)
class PolygonArea:
    """Polygons in ``crs``; tiles that miss every polygon are left out.

    Each geometry is a GeoJSON-like mapping (a geometry, a Feature or a FeatureCollection) or a
    WKT string. Coordinates are x, y (longitude, latitude for geographic CRSs), as in GeoJSON.
    ``source`` names where they came from, for error messages.
    """

    geometries: Tuple[Union[str, Mapping[str, Any]], ...]
    crs: str
    source: str = "polygon area"


AreaOfInterest = Union[WholeRaster, BoundingBox, PolygonArea]
