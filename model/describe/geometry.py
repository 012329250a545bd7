"""The geometry of describing: tiles dissolved into a region with GEOS, and areas on the
ellipsoid.

GDAL 3.6 has no geodesic area, so a region's area is the planar area of the region reprojected
to a Lambert azimuthal equal-area projection of the WGS 84 ellipsoid centred on the region
itself: equal-area everywhere, and least distorted in shape near its centre (for a region of a
few hundred kilometres the area is exact to far better than a per mille).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable, Optional

from ..geo.gdal_errors import ogr_failure, quiet_gdal
from ..output.geopackage import open_geopackage
from .schema import DescribeError

# Longest edge, in degrees, of a polygon in a geographic CRS before it is projected.
GEOGRAPHIC_STEP = 0.01


def wgs84_srs():
    """WGS 84 with longitude first, as exports and people's coordinates go."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def equal_area_srs(latitude: float, longitude: float):
    """A Lambert azimuthal equal-area projection of WGS 84 centred on (latitude, longitude),
    in metres. Built from numbers, never parsed from text."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.SetProjCS("MapScribe equal-area")
    srs.SetWellKnownGeogCS("WGS84")
    srs.SetLAEA(max(-90.0, min(90.0, latitude)), max(-180.0, min(180.0, longitude)), 0.0, 0.0)
    srs.SetLinearUnits("metre", 1.0)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def layer_srs(layer):
    """The layer's CRS, x before y (longitude before latitude)."""
    from osgeo import osr

    srs = layer.GetSpatialRef()
    if srs is None:
        raise DescribeError(f"layer {layer.GetName()!r} has no CRS; the file was edited or "
                            "damaged.")
    srs = srs.Clone()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


class TileShapes:
    """The tile polygons of one captions layer, read by feature id: dissolving a region reads
    only its own tiles. Use as a context manager."""

    def __init__(self, path: Path, layer_name: str):
        from osgeo import osr

        self.path, self.layer_name = Path(path), layer_name
        self._dataset = open_geopackage(self.path, update=False)
        if self._dataset is None:
            raise DescribeError(f"{path} cannot be opened as a GeoPackage.")
        self._layer = self._dataset.GetLayerByName(layer_name)
        if self._layer is None:
            raise DescribeError(f"{path} has no layer {layer_name!r}.")
        self.srs = layer_srs(self._layer)
        self._to_wgs84 = osr.CoordinateTransformation(self.srs, wgs84_srs())

    def __enter__(self) -> "TileShapes":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._layer = None
        self._dataset = None

    def dissolve(self, fids: Iterable[int]):
        """The union of the tiles ``fids`` as one OGR MultiPolygon in the layer's CRS."""
        from osgeo import ogr

        parts = ogr.Geometry(ogr.wkbMultiPolygon)
        for fid in fids:
            feature = self._layer.GetFeature(int(fid))
            geometry = feature.GetGeometryRef() if feature is not None else None
            if geometry is None or geometry.IsEmpty():
                raise DescribeError(f"tile (feature {fid}) of layer {self.layer_name!r} of "
                                    f"{self.path} has no geometry; the file was edited or "
                                    "damaged.")
            flat = ogr.GT_Flatten(geometry.GetGeometryType())
            if flat == ogr.wkbPolygon:
                parts.AddGeometry(geometry)
            elif flat == ogr.wkbMultiPolygon:
                for index in range(geometry.GetGeometryCount()):
                    parts.AddGeometry(geometry.GetGeometryRef(index))
            else:
                raise DescribeError(f"tile (feature {fid}) of layer {self.layer_name!r} of "
                                    f"{self.path} is a {geometry.GetGeometryName()}, not a "
                                    "polygon; the file was edited or damaged.")
        with quiet_gdal() as last_error:
            union = parts.UnionCascaded() if parts.GetGeometryCount() > 1 else parts.Clone()
            if union is None:
                raise DescribeError(f"GEOS could not dissolve tiles of layer "
                                    f"{self.layer_name!r} of {self.path}: {last_error()}")
        return ogr.ForceToMultiPolygon(union)

    def area_km2(self, geometry) -> float:
        """The area of ``geometry`` (in the layer's CRS) on the WGS 84 ellipsoid, in km²."""
        centre = self.centre(geometry)
        if centre is None:
            return 0.0
        from osgeo import osr

        projected = geometry.Clone()
        if self.srs.IsGeographic():
            # Edges of a tile in degrees follow parallels and meridians, which curve once
            # projected: add points along them first.
            projected.Segmentize(GEOGRAPHIC_STEP)
        to_equal_area = osr.CoordinateTransformation(self.srs, equal_area_srs(centre[1],
                                                                              centre[0]))
        with quiet_gdal() as last_error:
            problem = ogr_failure(partial(projected.Transform, to_equal_area), last_error)
        if problem:
            raise DescribeError(f"a region of layer {self.layer_name!r} of {self.path} cannot "
                                f"be projected to measure its area: {problem}")
        return projected.GetArea() / 1e6

    def centre(self, geometry) -> Optional[tuple]:
        """The (longitude, latitude) of the geometry's centroid, or None when it has none."""
        if geometry is None or geometry.IsEmpty():
            return None
        point = geometry.Centroid()
        with quiet_gdal() as last_error:
            problem = ogr_failure(partial(point.Transform, self._to_wgs84), last_error)
        if problem:
            raise DescribeError(f"a region of layer {self.layer_name!r} of {self.path} cannot "
                                f"be reprojected to WGS 84: {problem}")
        return point.GetX(), point.GetY()
