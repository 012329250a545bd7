"""Polygons: reading them from a vector file with OGR, reprojecting them to a raster's CRS, and
telling which tiles they cover.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Mapping, Sequence, Union

from .areas import PolygonArea
from .crs import _parse_crs
from .errors import TilingError
from .gdal_errors import quiet_gdal
from .raster_info import RasterInfo

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

    with quiet_gdal() as last_error:
        source = ogr.Open(str(path))
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
    source_crs = _parse_crs(area.crs, area.source)
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
                    # Buffer(0) mends self-intersections, the commonest fault in hand-drawn
                    # polygons, without moving valid edges.
                    geometry = geometry.Buffer(0)
                flat = ogr.ForceToMultiPolygon(geometry)
                for k in range(flat.GetGeometryCount()):
                    pieces.AddGeometry(flat.GetGeometryRef(k))
        union = pieces.UnionCascaded()
    if union is None or union.IsEmpty():
        raise TilingError(f"{area.source} has no polygon with an area.")
    return union


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
