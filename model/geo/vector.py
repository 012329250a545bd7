"""Polygons: reading them from a vector file with OGR, reprojecting them to a raster's CRS, and
telling which tiles they cover.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Sequence, Union

from ..paths import check_utf8_path
from .areas import PolygonArea
from .crs import parse_crs
from .errors import TilingError
from .gdal_errors import quiet_gdal
from .raster_info import RasterInfo, _is_pipe_or_device
from .tile_sequence import GridLayout

# Polygon edges are cut into pieces no longer than 1/64 of the polygon's envelope before
# reprojection, for the same reason.
POLYGON_SEGMENTS = 64


# --------------------------------------------------------------------------------------------
# Areas of interest (plain data in areas.py; re-exported here)
# --------------------------------------------------------------------------------------------
def read_polygon_file(path: Union[str, Path], layer: Union[str, int, None] = None
                      ) -> PolygonArea:
    """The polygons of a vector file's layer (the first when None) as a :class:`PolygonArea`
    in the layer's CRS."""
    from osgeo import ogr, osr

    path = check_utf8_path(path, "polygons file")
    if _is_pipe_or_device(path):
        raise TilingError(f"polygons file {path} is a pipe or a device, not a file: reading it "
                          "could block for ever. Give a vector file.")
    with quiet_gdal() as last_error:
        source = ogr.Open(path)
        if source is None:
            raise TilingError(f"cannot open polygons file {path}: {last_error()}"
                              ". Give a vector file OGR can read (GeoPackage, Shapefile, "
                              "GeoJSON, ...).")
        chosen = source.GetLayer(0 if layer is None else layer)
        if chosen is None:
            names = [source.GetLayer(i).GetName() for i in range(source.GetLayerCount())]
            raise TilingError(f"polygons file {path} has no layer {layer!r}; its layers: "
                              f"{names}")
        srs = chosen.GetSpatialRef()
        if srs is None:
            raise TilingError(f"layer {chosen.GetName()!r} of {path} has no CRS: assign one "
                              "(e.g. in QGIS, or ogr2ogr -a_srs EPSG:...) and try again.")
        # OGR would otherwise swap to latitude, longitude for EPSG:4326 and friends.
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        wkts = []
        for feature in chosen:
            geometry = feature.GetGeometryRef()
            if geometry is None or geometry.IsEmpty():
                continue
            if geometry.GetDimension() != 2:
                raise TilingError(f"feature {feature.GetFID()} of {path} is a "
                                  f"{geometry.GetGeometryName()}, not a polygon: a polygon "
                                  "area needs polygons.")
            wkts.append(geometry.ExportToWkt())
        if not wkts:
            raise TilingError(f"polygons file {path} (layer {chosen.GetName()!r}) has no "
                              "polygon.")
        return PolygonArea(geometries=tuple(wkts), crs=srs.ExportToWkt(), source=str(path))


def _geojson_geometries(value: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    kind = value.get("type")
    if kind == "FeatureCollection":
        return [g for feature in value.get("features", []) for g in _geojson_geometries(feature)]
    if kind == "Feature":
        geometry = value.get("geometry")
        return [geometry] if geometry else []
    return [value]


def _polygons_in_raster_crs(area: PolygonArea, raster: RasterInfo):
    """The union of the area's polygons as one OGR geometry in the raster's CRS."""
    from osgeo import ogr, osr

    if not area.geometries:
        raise TilingError(f"{area.source} has no polygon.")
    source_crs = parse_crs(area.crs, area.source)
    source_srs = osr.SpatialReference()
    target_srs = osr.SpatialReference()
    with quiet_gdal() as last_error:
        source_srs.ImportFromWkt(source_crs.to_wkt())
        target_srs.ImportFromWkt(raster.crs_wkt)
        for srs in (source_srs, target_srs):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_raster = osr.CoordinateTransformation(source_srs, target_srs)

        pieces = ogr.Geometry(ogr.wkbMultiPolygon)
        for index, item in enumerate(area.geometries):
            parts = ([item] if isinstance(item, str) else _geojson_geometries(item))
            for part in parts:
                if isinstance(part, str):
                    geometry = ogr.CreateGeometryFromWkt(part)
                else:
                    geometry = ogr.CreateGeometryFromJson(json.dumps(part))
                if geometry is None:
                    raise TilingError(f"geometry {index} of {area.source} cannot be read "
                                      f"({last_error()}): give GeoJSON "
                                      "geometries or WKT.")
                if geometry.GetDimension() != 2:
                    raise TilingError(f"geometry {index} of {area.source} is a "
                                      f"{geometry.GetGeometryName()}, not a polygon.")
                geometry = _densified(geometry)
                if geometry.Transform(to_raster) != 0:
                    raise TilingError(f"cannot reproject geometry {index} of {area.source} to the "
                                      f"CRS of {raster.path} ({raster.crs}): "
                                      f"{last_error()}.")
                if not geometry.IsValid():
                    # Self-intersections are the commonest fault of hand-drawn polygons. GEOS's
                    # MakeValid keeps every part of a bow-tie (Buffer(0) keeps one lobe and
                    # loses the other half of the area); it may add lines and points where
                    # the ring crossed itself, which ForceToMultiPolygon then leaves out.
                    geometry = _made_valid(geometry, index, area.source, last_error)
                flat = ogr.ForceToMultiPolygon(geometry)
                for k in range(flat.GetGeometryCount()):
                    pieces.AddGeometry(flat.GetGeometryRef(k))
        union = pieces.UnionCascaded()
    if union is None or union.IsEmpty():
        raise TilingError(f"{area.source} has no polygon with an area.")
    return union


def _made_valid(geometry, index: int, source: str, last_error):
    from osgeo import ogr

    mended = geometry.MakeValid()
    if mended is None:
        raise TilingError(f"geometry {index} of {source} is not a valid polygon and GEOS "
                          f"cannot mend it ({last_error()}): fix it (e.g. QGIS's Fix "
                          "geometries) and try again.")
    # Only the parts with an area: a ring that was flat mends to a line, a bow-tie's crossing
    # may add a point; neither is a polygon.
    parts = ([mended.GetGeometryRef(k) for k in range(mended.GetGeometryCount())]
             if mended.GetGeometryType() in (ogr.wkbGeometryCollection,
                                             ogr.wkbGeometryCollection25D)
             else [mended])
    polygons = ogr.Geometry(ogr.wkbMultiPolygon)
    for part in parts:
        if part.GetDimension() == 2:
            flat = ogr.ForceToMultiPolygon(part)
            for j in range(flat.GetGeometryCount()):
                polygons.AddGeometry(flat.GetGeometryRef(j))
    return polygons


def _densified(geometry):
    """Add vertices along long edges so that reprojection follows curved edges."""
    minx, maxx, miny, maxy = geometry.GetEnvelope()
    longest = max(maxx - minx, maxy - miny)
    if longest > 0:
        geometry = geometry.Clone()
        geometry.Segmentize(longest / POLYGON_SEGMENTS)
    return geometry


def _touches_inside(bounds: Sequence[float], polygons) -> bool:
    """Whether the tile rectangle shares some area with the polygons (not just an edge)."""
    from osgeo import ogr

    left, bottom, right, top = bounds
    minx, maxx, miny, maxy = polygons.GetEnvelope()
    if right <= minx or left >= maxx or top <= miny or bottom >= maxy:
        return False
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)):
        ring.AddPoint_2D(x, y)
    tile = ogr.Geometry(ogr.wkbPolygon)
    tile.AddGeometry(ring)
    return tile.Intersects(polygons) and not tile.Touches(polygons)


def _tiles_meeting(layout: GridLayout, polygons) -> Iterator[int]:
    """The ids of the tiles of ``layout`` that share some area with ``polygons``, row by row.

    A row whose strip misses every polygon is skipped whole, and the tiles of a row are tested
    against the polygons clipped to that strip, so a grid of many rows over a few polygons
    costs little more than its polygons.
    """
    from osgeo import ogr

    minx, maxx, miny, maxy = polygons.GetEnvelope()
    for row in range(layout.rows):
        first = layout.tile(row * layout.cols)
        last = layout.tile(row * layout.cols + layout.cols - 1)
        left, bottom, right, top = (min(first.bounds[0], last.bounds[2]),
                                    min(first.bounds[1], first.bounds[3]),
                                    max(first.bounds[0], last.bounds[2]),
                                    max(first.bounds[1], first.bounds[3]))
        if right <= minx or left >= maxx or top <= miny or bottom >= maxy:
            continue
        strip = ogr.CreateGeometryFromWkt(
            f"POLYGON (({left} {bottom},{right} {bottom},{right} {top},{left} {top},"
            f"{left} {bottom}))")
        in_strip = polygons.Intersection(strip) if polygons.Intersects(strip) else None
        if in_strip is None or in_strip.IsEmpty():
            continue
        for col in range(layout.cols):
            tile_id = row * layout.cols + col
            if _touches_inside(layout.tile(tile_id).bounds, in_strip):
                yield tile_id
