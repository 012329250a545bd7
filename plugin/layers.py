"""Captions and regions layers in the project: added to a "MapScribe" group and styled.

* A captions layer gets resources/captions.qml (tile outlines, word-wrapped caption labels, map
  tips with the caption and its score); with a caption pyramid, only the level that suits the
  map's scale is drawn and labelled (:mod:`.label_levels`).
* A regions layer (written by describing the captions, beside them in the same GeoPackage)
  gets resources/regions.qml: thick outlines and a label naming each region's theme and share,
  above the captions layer.

Layers are marked with custom properties, so the captions panel finds every MapScribe layer of
the project whatever it was renamed to, and a rerun on the same GeoPackage refreshes the layer
that is there instead of adding a second copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

from qgis.core import (
    QgsLayerTreeGroup,
    QgsProject,
    QgsProviderRegistry,
    QgsVectorLayer,
)

from .label_levels import LevelScales, style_levels

GROUP_NAME = "MapScribe"
RESOURCES = Path(__file__).resolve().parents[1] / "resources"
STYLE_PATH = RESOURCES / "captions.qml"
REGIONS_STYLE_PATH = RESOURCES / "regions.qml"
CAPTIONS_PROPERTY = "mapscribe/captions"  # custom layer property: "1" on our layers
# On a regions layer: the name of the captions layer it describes.
REGIONS_PROPERTY = "mapscribe/regions-of"


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
    """Take the layer showing ``gpkg_path`` out of the project, and its regions layer (before
    the file is replaced or resumed, so QGIS holds no connection to it while the engine
    writes)."""
    project = project or QgsProject.instance()
    remove_regions_layers(gpkg_path, layer_name, project)
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


def apply_style(layer: QgsVectorLayer) -> List[LevelScales]:
    """Load resources/captions.qml, then give each level of the layer its scales (the level
    that suits the map's scale is the one drawn and labelled); returns the levels."""
    message, ok = layer.loadNamedStyle(str(STYLE_PATH))
    if not ok:
        raise LayerError(f"the captions style {STYLE_PATH} cannot be loaded: {message}")
    return style_levels(layer)


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
        apply_style(existing)  # a resumed run may have added a level
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


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------
def regions_layers(gpkg_path: Union[str, Path], captions_layer: str,
                   project: Optional[QgsProject] = None) -> List[QgsVectorLayer]:
    """The project's regions layers describing ``captions_layer`` of ``gpkg_path``."""
    wanted = Path(gpkg_path).resolve()
    found = []
    for layer in (project or QgsProject.instance()).mapLayers().values():
        if (isinstance(layer, QgsVectorLayer)
                and str(layer.customProperty(REGIONS_PROPERTY, "")) == captions_layer):
            path, _ = layer_source(layer)
            if path.exists() and path.resolve() == wanted:
                found.append(layer)
    return found


def remove_regions_layers(gpkg_path: Union[str, Path], captions_layer: str,
                          project: Optional[QgsProject] = None) -> int:
    """Take the regions layers of ``captions_layer`` out of the project (before describing
    replaces them in the file); returns how many there were."""
    project = project or QgsProject.instance()
    found = regions_layers(gpkg_path, captions_layer, project)
    for layer in found:
        project.removeMapLayer(layer.id())
    return len(found)


def style_regions_layer(layer: QgsVectorLayer, captions_layer: str) -> None:
    """resources/regions.qml (outlines, theme labels, the sentence as map tip), and the mark
    that says which captions layer the regions describe."""
    message, ok = layer.loadNamedStyle(str(REGIONS_STYLE_PATH))
    if not ok:
        raise LayerError(f"the regions style {REGIONS_STYLE_PATH} cannot be loaded: {message}")
    layer.setCustomProperty(REGIONS_PROPERTY, captions_layer)


def add_regions_layer(gpkg_path: Union[str, Path], regions_layer: str, captions_layer: str,
                      display_name: Optional[str] = None,
                      project: Optional[QgsProject] = None) -> QgsVectorLayer:
    """Show the regions layer ``regions_layer`` of ``gpkg_path`` in the "MapScribe" group,
    above its captions layer, styled; an earlier copy of it in the project is replaced."""
    project = project or QgsProject.instance()
    remove_regions_layers(gpkg_path, captions_layer, project)
    layer = QgsVectorLayer(layer_uri(gpkg_path, regions_layer),
                           display_name or f"{Path(gpkg_path).stem} regions", "ogr")
    if not layer.isValid():
        raise LayerError(f"{gpkg_path} (layer {regions_layer}) cannot be opened as a vector "
                         "layer.")
    style_regions_layer(layer, captions_layer)
    project.addMapLayer(layer, False)
    mapscribe_group(project).insertLayer(0, layer)
    return layer
