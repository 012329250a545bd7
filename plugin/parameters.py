"""What the dock gathers, as plain data, and how it becomes the engine's CaptionRasterParams.

The dock reads its widgets, the map canvas and the layer tree once, when Run is pressed, into a
frozen :class:`CaptionRequest` that holds no QGIS object: it can travel to a worker thread, be
kept for a later Resume, and be checked in tests. :func:`engine_params` turns it into the
engine's ``CaptionRasterParams``; the engine (and torch) is imported there, never at plugin load.

The area keeps the CRS it was drawn in: the visible extent is passed in the map canvas's CRS
and the engine reprojects it to the raster's CRS with a densified transform, so a Web Mercator
canvas over a UTM raster tiles exactly what the canvas shows.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeatureRequest, QgsGeometry,
                       QgsMapLayerType, QgsMultiBandColorRenderer, QgsPointXY,
                       QgsProviderRegistry, QgsRasterLayer, QgsUnitTypes, QgsVectorLayer,
                       QgsWkbTypes)

from ..model.geo.areas import AreaOfInterest, BoundingBox, PolygonArea

CAPTIONS_LAYER = "captions"  # the engine's default layer name inside the GeoPackage
OUTPUT_FOLDER_NAME = "mapscribe"  # under the system's temporary folder, for unsaved projects
# Tiles need at least this many raster pixels a side (the engine's own limit, checked early so
# the dock can say so next to the tile size).
MIN_TILE_PIXELS = 4


class ParameterError(ValueError):
    """What the dock holds cannot make a captioning run; ``field`` names the widget to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------------------------------------
# Areas, as plain data
# ---------------------------------------------------------------------------------------------
# The engine's plain area classes (model/areas.py imports no GDAL, numpy or torch).
Area = AreaOfInterest


@dataclass(frozen=True)
class CaptionRequest:
    """Everything one run needs, read from the dock at the moment Run was pressed.

    ``tile_size`` is in the raster CRS's map units (metres for UTM); ``overlap_percent`` is a
    share of the tile; ``bands`` are the raster bands shown on the map as R, G, B (or one gray).
    """

    raster_path: str
    raster_name: str
    model_path: str
    area: Area
    tile_size: float
    overlap_percent: float
    batch_size: int
    beam_size: int
    device: str
    output_path: str
    bands: Tuple[int, ...] = (1, 2, 3)


def engine_params(request: CaptionRequest, *, overwrite: bool = False, resume: bool = False):
    """The engine's CaptionRasterParams for ``request`` (imports the engine, so torch)."""
    from ..model.jobs.caption_params import CaptionRasterParams
    from ..model.geo.read_plan import BandMapping

    return CaptionRasterParams(
        raster=request.raster_path, model=request.model_path, output=request.output_path,
        area=request.area, tile_size=request.tile_size, tile_size_unit="map",
        overlap=request.overlap_percent, overlap_unit="percent",
        bands=BandMapping(bands=tuple(request.bands)), batch_size=request.batch_size,
        beam_size=request.beam_size, device=request.device, layer=CAPTIONS_LAYER,
        overwrite=overwrite, resume=resume)


# ---------------------------------------------------------------------------------------------
# From QGIS objects to plain data
# ---------------------------------------------------------------------------------------------
def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """An EPSG code where there is one (short, and every library reads it), else WKT."""
    if not crs.isValid():
        raise ParameterError("area", "the map has no valid coordinate reference system: set the "
                                     "project's CRS (Project > Properties > CRS).")
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL)


def visible_extent_area(canvas) -> Area:
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
        raise ParameterError("area", "the map shows nothing yet (its extent is empty): zoom to "
                                     "the raster first, or choose Whole layer.")
    return BoundingBox(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(),
                       extent.yMaximum(), crs)


def polygons_area(layer: Optional[QgsVectorLayer], selected_only: bool) -> PolygonArea:
    """The polygons of ``layer`` (or only its selected ones) as WKT in the layer's CRS."""
    if layer is None:
        raise ParameterError("polygons", "choose a polygon layer for the area, or another kind "
                                         "of area.")
    if (layer.type() != QgsMapLayerType.VectorLayer
            or layer.geometryType() != QgsWkbTypes.PolygonGeometry):
        raise ParameterError("polygons", f"layer {layer.name()!r} holds no polygons: choose a "
                                         "polygon layer.")
    if selected_only:
        if not layer.selectedFeatureCount():
            raise ParameterError("polygons", f"no feature of {layer.name()!r} is selected: select "
                                             "some, or untick 'Only selected features'.")
        features = layer.getSelectedFeatures()
        source = f"the selected polygons of layer {layer.name()!r}"
    else:
        features = layer.getFeatures(QgsFeatureRequest().setNoAttributes())
        source = f"the polygons of layer {layer.name()!r}"
    wkts = tuple(feature.geometry().asWkt() for feature in features
                 if feature.hasGeometry() and not feature.geometry().isEmpty())
    if not wkts:
        raise ParameterError("polygons", f"{source} hold no geometry: choose another layer.")
    return PolygonArea(wkts, crs_text(layer.crs()), source)


def raster_file_path(layer: Optional[QgsRasterLayer]) -> str:
    """The file GDAL reads for ``layer``; the engine reads pixels itself, from that file."""
    if layer is None:
        raise ParameterError("raster", "choose a raster layer to caption (add one to the project "
                                       "first: Layer > Add Layer > Add Raster Layer).")
    if layer.providerType() != "gdal":
        raise ParameterError("raster", f"layer {layer.name()!r} is not read from a file (provider "
                                       f"{layer.providerType()!r}): MapScribe reads rasters from "
                                       "files. Save it as a GeoTIFF first (right-click > Export "
                                       "> Save As…).")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()


def shown_bands(layer: QgsRasterLayer) -> Tuple[int, ...]:
    """The bands the map shows as red, green, blue (or the one gray band): what people see is
    what gets captioned. Falls back to 1, 2, 3 when the renderer says nothing usable."""
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


# ---------------------------------------------------------------------------------------------
# Units and tile sizes
# ---------------------------------------------------------------------------------------------
def units_suffix(crs: QgsCoordinateReferenceSystem) -> str:
    """The abbreviation of the CRS's map unit, e.g. "m", "ft", "°"."""
    unit = crs.mapUnits()
    if unit == QgsUnitTypes.DistanceDegrees:
        return "°"
    text = QgsUnitTypes.toAbbreviatedString(unit)
    return text or "map units"


def map_units_per_metre(crs: QgsCoordinateReferenceSystem) -> float:
    unit = crs.mapUnits()
    if unit == QgsUnitTypes.DistanceUnknownUnit:
        return 1.0
    return QgsUnitTypes.fromUnitToUnitFactor(QgsUnitTypes.DistanceMeters, unit)


def default_tile_size(input_size: int, ground_resolution_m: Optional[float],
                      layer: QgsRasterLayer) -> float:
    """The model's own view of the ground, in the raster's map units: its input size × the
    ground resolution it was trained at; without that hint, its input size in raster pixels."""
    if ground_resolution_m:
        return input_size * ground_resolution_m * map_units_per_metre(layer.crs())
    return input_size * layer.rasterUnitsPerPixelX()


def tile_size_in_pixels(tile_size: float, layer: QgsRasterLayer) -> Tuple[float, float]:
    """How many raster pixels a tile of ``tile_size`` map units spans, across and down."""
    return (tile_size / layer.rasterUnitsPerPixelX(), tile_size / layer.rasterUnitsPerPixelY())


# ---------------------------------------------------------------------------------------------
# The output file
# ---------------------------------------------------------------------------------------------
def _file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem).strip("._") or "raster"
    return stem[:60]


def next_free_path(path: Path) -> Path:
    """``path`` when nothing is there, else the first of name-2.gpkg, name-3.gpkg, … that is
    free: a new name is never a silent overwrite."""
    if not path.exists():
        return path
    stem = re.sub(r"-\d+$", "", path.stem)
    number = 2
    while True:
        candidate = path.with_name(f"{stem}-{number}{path.suffix}")
        if not candidate.exists():
            return candidate
        number += 1


def default_output_path(raster_name: str, project_file: str = "",
                        fallback_folder: Optional[Path] = None) -> Path:
    """``<raster>-captions.gpkg`` beside the saved project, else in a "mapscribe" folder of the
    system's temporary folder; a free name, never one that exists."""
    if project_file:
        folder = Path(project_file).resolve().parent
    else:
        folder = fallback_folder or Path(tempfile.gettempdir()) / OUTPUT_FOLDER_NAME
    return next_free_path(folder / f"{_file_stem(raster_name)}-captions.gpkg")


@dataclass(frozen=True)
class ExistingCaptions:
    """What an output GeoPackage already holds."""

    path: Path
    tiles_done: int
    tiles_planned: int
    raster_name: str

    @property
    def complete(self) -> bool:
        return self.tiles_planned > 0 and self.tiles_done >= self.tiles_planned


def existing_captions(path: Union[str, Path]) -> Optional[ExistingCaptions]:
    """The captions layer already in ``path``, or None when there is none (no file, or a
    GeoPackage without one). Anything else at that path is left for the engine to judge."""
    path = Path(path)
    if not path.is_file():
        return None
    from ..model.output.schema import GridFileError
    from ..model.output.geopackage import find_caption_layers, read_caption_layer_info

    if CAPTIONS_LAYER not in find_caption_layers(path):
        return None
    try:
        info = read_caption_layer_info(path, CAPTIONS_LAYER)
    except GridFileError:
        return None
    raster = (info.run.get("raster") or {}).get("name", "")
    return ExistingCaptions(path, info.feature_count, info.tiles_planned, raster)
