"""Captions layers in the project: added to a "MapScribe" group and styled from
resources/captions.qml (tile outlines, word-wrapped caption labels when zoomed in, map tips with
the caption and its score).

A layer is marked with a custom property, so the captions panel finds every MapScribe layer of
the project whatever it was renamed to, and a rerun on the same GeoPackage refreshes the layer
that is there instead of adding a second copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

from qgis.core import (QgsFeatureRequest, QgsLayerTreeGroup, QgsProject, QgsProviderRegistry,
                       QgsUnitTypes, QgsVectorLayer)

GROUP_NAME = "MapScribe"
STYLE_PATH = Path(__file__).resolve().parents[1] / "resources" / "captions.qml"
CAPTIONS_PROPERTY = "mapscribe/captions"  # custom layer property: "1" on our layers
# A label is drawn once its tile is at least this wide on screen: narrower tiles would cut a
# caption into a tower of one-word lines that hides the imagery.
LABEL_MIN_TILE_PIXELS = 160
# Metres per screen pixel at QGIS's scale computation (96 dpi): 0.0254 m per inch / 96.
METRES_PER_SCREEN_PIXEL = 0.0254 / 96


class LayerError(RuntimeError):
    """The captions GeoPackage cannot be shown as a layer; the message says why."""


def layer_uri(gpkg_path: Union[str, Path], layer_name: str) -> str:
    return f"{Path(gpkg_path)}|layername={layer_name}"


def layer_source(layer: QgsVectorLayer) -> tuple:
    """(GeoPackage path, layer name) of an OGR layer."""
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    return Path(parts.get("path", "")), parts.get("layerName") or ""


def is_captions_layer(layer) -> bool:
    return (isinstance(layer, QgsVectorLayer)
            and str(layer.customProperty(CAPTIONS_PROPERTY, "")) == "1")


def caption_layers(project: Optional[QgsProject] = None) -> List[QgsVectorLayer]:
    """Every MapScribe captions layer of the project, in the layer tree's order."""
    project = project or QgsProject.instance()
    return [layer for layer in project.layerTreeRoot().layerOrder() if is_captions_layer(layer)]


def find_caption_layer(gpkg_path: Union[str, Path], layer_name: str,
                       project: Optional[QgsProject] = None) -> Optional[QgsVectorLayer]:
    """The project's layer showing ``layer_name`` of ``gpkg_path``, if there is one."""
    wanted = (Path(gpkg_path).resolve(), layer_name)
    for layer in (project or QgsProject.instance()).mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and layer.providerType() == "ogr":
            path, name = layer_source(layer)
            if path.exists() and (path.resolve(), name) == wanted:
                return layer
    return None


def remove_caption_layer(gpkg_path: Union[str, Path], layer_name: str,
                         project: Optional[QgsProject] = None) -> bool:
    """Take the layer showing ``gpkg_path`` out of the project (before the file is replaced or
    resumed, so QGIS holds no connection to it while the engine writes)."""
    project = project or QgsProject.instance()
    layer = find_caption_layer(gpkg_path, layer_name, project)
    if layer is None:
        return False
    project.removeMapLayer(layer.id())
    return True


def mapscribe_group(project: Optional[QgsProject] = None) -> QgsLayerTreeGroup:
    """The "MapScribe" group at the top of the layer tree (created when missing)."""
    root = (project or QgsProject.instance()).layerTreeRoot()
    group = root.findGroup(GROUP_NAME)
    return group if group is not None else root.insertGroup(0, GROUP_NAME)


def apply_style(layer: QgsVectorLayer) -> None:
    """Load resources/captions.qml, then fit the label scale to the layer's tile size."""
    message, ok = layer.loadNamedStyle(str(STYLE_PATH))
    if not ok:
        raise LayerError(f"the captions style {STYLE_PATH} cannot be loaded: {message}")
    fit_label_scale(layer)


def tile_width_metres(layer: QgsVectorLayer) -> Optional[float]:
    """The width of the layer's first tile, in metres (roughly, for a geographic CRS)."""
    request = QgsFeatureRequest().setLimit(1).setNoAttributes()
    for feature in layer.getFeatures(request):
        width = feature.geometry().boundingBox().width()
        factor = QgsUnitTypes.fromUnitToUnitFactor(layer.crs().mapUnits(),
                                                   QgsUnitTypes.DistanceMeters)
        return width * factor if width > 0 else None
    return None


def fit_label_scale(layer: QgsVectorLayer) -> Optional[float]:
    """Show labels only at scales where a tile spans LABEL_MIN_TILE_PIXELS on screen; returns
    that most zoomed-out scale (its denominator), or None when the layer has no tile yet."""
    width = tile_width_metres(layer)
    labeling = layer.labeling()
    if width is None or labeling is None:
        return None
    settings = labeling.settings()
    settings.scaleVisibility = True
    # QgsPalLayerSettings.minimumScale is the most zoomed-out scale at which labels are drawn.
    settings.minimumScale = width / (LABEL_MIN_TILE_PIXELS * METRES_PER_SCREEN_PIXEL)
    settings.maximumScale = 0
    labeling.setSettings(settings)
    return settings.minimumScale


def add_caption_layer(gpkg_path: Union[str, Path], layer_name: str = "captions",
                      display_name: Optional[str] = None,
                      project: Optional[QgsProject] = None) -> QgsVectorLayer:
    """Show ``layer_name`` of ``gpkg_path`` in the "MapScribe" group, styled; when the project
    already shows it, reload that layer (its new tiles appear) instead of adding another."""
    project = project or QgsProject.instance()
    existing = find_caption_layer(gpkg_path, layer_name, project)
    if existing is not None:
        existing.dataProvider().reloadData()
        existing.updateExtents()
        fit_label_scale(existing)
        existing.triggerRepaint()
        return existing
    layer = QgsVectorLayer(layer_uri(gpkg_path, layer_name),
                           display_name or f"{Path(gpkg_path).stem} captions", "ogr")
    if not layer.isValid():
        raise LayerError(f"{gpkg_path} (layer {layer_name}) cannot be opened as a vector layer.")
    apply_style(layer)
    layer.setCustomProperty(CAPTIONS_PROPERTY, "1")
    project.addMapLayer(layer, False)
    mapscribe_group(project).insertLayer(0, layer)
    return layer
