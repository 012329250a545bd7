"""Plain values read from QGIS objects: a CRS as text, what the map canvas shows, the polygons of
a layer, the file behind a raster layer and the bands the map shows.

What these return holds no QGIS object, so it can travel to a worker thread and into the
engine's parameters. The area keeps the CRS it was drawn in (the engine reprojects it to the
raster's CRS with a densified transform), so a Web Mercator canvas over a UTM raster tiles
exactly what the canvas shows. A value that cannot be used raises
:class:`~.ui.ParameterError` naming the form field to fix.
"""

from __future__ import annotations

from typing import Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsGeometry,
    QgsMapLayerType,
    QgsMultiBandColorRenderer,
    QgsPointXY,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsUnitTypes,
    QgsVectorLayer,
    QgsWkbTypes,
)

from ..model import AreaOfInterest, BoundingBox, PolygonArea, WholeRaster
from .ui import ParameterError, tr

# The kinds of area a form offers (see :func:`area_of_kind`).
AREA_EXTENT, AREA_LAYER, AREA_POLYGONS = "extent", "layer", "polygons"


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """An EPSG code where there is one (short, and every library reads it), else WKT."""
    if not crs.isValid():
        raise ParameterError("area", tr("the map has no valid coordinate reference system: set "
                                        "the project's CRS (Project > Properties > CRS)."))
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED_GDAL)


def units_suffix(crs: QgsCoordinateReferenceSystem) -> str:
    """The abbreviation of the CRS's map unit, e.g. "m", "ft", "°" (a label, not a conversion)."""
    unit = crs.mapUnits()
    if unit == QgsUnitTypes.DistanceUnit.DistanceDegrees:
        return "°"
    return QgsUnitTypes.toAbbreviatedString(unit) or tr("map units")


def visible_extent_area(canvas) -> AreaOfInterest:
    """What the map canvas shows, in the canvas's CRS.

    A rotated map shows a rotated rectangle: its exact outline goes as a polygon, so that the
    tiles cover what is on screen and not the larger box around it.
    """
    settings = canvas.mapSettings()
    crs = crs_text(settings.destinationCrs())
    if canvas.rotation():
        outline = [QgsPointXY(point) for point in settings.visiblePolygon()]
        geometry = QgsGeometry.fromPolygonXY([outline])
        return PolygonArea((geometry.asWkt(),), crs, "the visible map (rotated)")
    extent = canvas.extent()
    if extent.isEmpty():
        raise ParameterError("area", tr("the map shows nothing yet (its extent is empty): zoom "
                                        "to the raster first, or choose Whole layer."))
    return BoundingBox(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(),
                       extent.yMaximum(), crs)


def polygons_area(layer: Optional[QgsVectorLayer], selected_only: bool) -> PolygonArea:
    """The polygons of ``layer`` (or only its selected ones) as WKT in the layer's CRS."""
    if layer is None:
        raise ParameterError("polygons", tr("choose a polygon layer for the area, or another "
                                            "kind of area."))
    name = layer.name()
    if (layer.type() != QgsMapLayerType.VectorLayer
            or layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry):
        raise ParameterError("polygons", tr("layer {name!r} holds no polygons: choose a polygon "
                                            "layer.").format(name=name))
    if selected_only:
        if not layer.selectedFeatureCount():
            raise ParameterError("polygons", tr(
                "no feature of {name!r} is selected: select some, or untick 'Only selected "
                "features'.").format(name=name))
        features = layer.getSelectedFeatures()
        source = tr("the selected polygons of layer {name!r}").format(name=name)
    else:
        features = layer.getFeatures(QgsFeatureRequest().setNoAttributes())
        source = tr("the polygons of layer {name!r}").format(name=name)
    wkts = tuple(feature.geometry().asWkt() for feature in features
                 if feature.hasGeometry() and not feature.geometry().isEmpty())
    if not wkts:
        raise ParameterError("polygons", tr("{source} hold no geometry: choose another "
                                            "layer.").format(source=source))
    return PolygonArea(wkts, crs_text(layer.crs()), source)


def area_of_kind(kind: str, canvas, polygon_layer: Optional[QgsVectorLayer],
                 selected_only: bool) -> AreaOfInterest:
    """The area a form chose: AREA_LAYER (the whole raster), AREA_POLYGONS (of
    ``polygon_layer``) or AREA_EXTENT (what ``canvas`` shows)."""
    if kind == AREA_LAYER:
        return WholeRaster()
    if kind == AREA_POLYGONS:
        return polygons_area(polygon_layer, selected_only)
    if canvas is None:
        raise ParameterError("area", tr("there is no map canvas here: choose Whole raster "
                                        "layer or polygons."))
    return visible_extent_area(canvas)


def raster_file_path(layer: Optional[QgsRasterLayer]) -> str:
    """The file GDAL reads for ``layer``; the engine reads pixels itself, from that file."""
    if layer is None:
        raise ParameterError("raster", tr("choose a raster layer to caption (add one to the "
                                          "project first: Layer > Add Layer > Add Raster "
                                          "Layer)."))
    if layer.providerType() != "gdal":
        raise ParameterError("raster", tr(
            "layer {name!r} is not read from a file (provider {provider!r}): MapScribe reads "
            "rasters from files. Save it as a GeoTIFF first (right-click > Export > Save "
            "As…).").format(name=layer.name(), provider=layer.providerType()))
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()


def raster_file_or_name(layer: QgsRasterLayer) -> str:
    """The raster's file for naming an output; its layer name when it is not a file."""
    try:
        return raster_file_path(layer)
    except ParameterError:
        return layer.name()


def shown_bands(layer: QgsRasterLayer) -> Tuple[int, ...]:
    """The bands the map shows as red, green, blue (or the one gray band): what people see is
    what gets captioned. Falls back to 1, 2, 3 when the renderer says nothing usable; a web
    service's images are always read as R, G, B."""
    if layer.providerType() == "wms":
        return (1, 2, 3)
    renderer = layer.renderer()
    if isinstance(renderer, QgsMultiBandColorRenderer):
        bands = (renderer.redBand(), renderer.greenBand(), renderer.blueBand())
        if all(band > 0 for band in bands):
            return bands
    elif renderer is not None:
        used = [band for band in renderer.usesBands() if band > 0]
        if len(used) == 1:
            return (used[0],)
    return (1, 2, 3) if layer.bandCount() >= 3 else (1,)
