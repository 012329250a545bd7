"""What the captions panel does to the map: centre it on a tile or a region and flash it, fit
the whole captioned area after a run, and say in words what the map shows at its scale.

The map keeps its scale when the panel moves it to a tile or a region (people chose that
scale); Enter on a region larger than the view zooms out until all of it is in sight.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

from qgis.core import (
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from ..label_levels import LevelScales, level_name, level_shown
from ..ui import tr

# Room around the captioned area when the map is fitted to it (a share of its size).
FIT_MARGIN = 0.05


def _to_canvas(canvas, layer: QgsVectorLayer) -> QgsCoordinateTransform:
    return QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                  QgsProject.instance())


def _extent(geometries: Iterable[QgsGeometry]) -> QgsRectangle:
    extent = QgsRectangle()
    extent.setMinimal()
    for geometry in geometries:
        extent.combineExtentWith(geometry.boundingBox())
    return extent


def show_on_map(canvas, layer: QgsVectorLayer, geometries: List[QgsGeometry],
                fit: bool = False) -> None:
    """Centre the map on ``geometries`` (in the layer's CRS), keeping its scale, and flash
    them; with ``fit``, zoom out first when they do not fit in the view."""
    if canvas is None or layer is None or not geometries:
        return
    transform = _to_canvas(canvas, layer)
    if len(geometries) == 1:
        centre = QgsGeometry(geometries[0].centroid())
        centre.transform(transform)
        point = centre.asPoint()
    else:
        point = transform.transformBoundingBox(_extent(geometries)).center()
    wanted = transform.transformBoundingBox(_extent(geometries)) if fit else None
    view = canvas.extent()
    if wanted is not None and (wanted.width() > view.width()
                               or wanted.height() > view.height()):
        wanted.scale(1 + 2 * FIT_MARGIN)
        canvas.setExtent(wanted)
    else:
        canvas.setCenter(point)
    canvas.refresh()
    canvas.flashGeometries(geometries, layer.crs())


def show_whole_area(canvas, layer: QgsVectorLayer) -> bool:
    """Fit the map to the layer's tiles (with a little room around them); False when there is
    no canvas or no tile."""
    if canvas is None or layer is None:
        return False
    layer.updateExtents()
    extent = layer.extent()
    if extent.isNull() or extent.isEmpty():
        return False
    wanted = _to_canvas(canvas, layer).transformBoundingBox(extent)
    wanted.scale(1 + 2 * FIT_MARGIN)
    canvas.setExtent(wanted)
    canvas.refresh()
    return True


def labels_text(scale: float, levels: List[LevelScales], has_regions: bool) -> str:
    """What the map shows at ``scale``, in words: which tiles are labelled, and the regions."""
    shown: Optional[LevelScales] = level_shown(levels, scale)
    if len(levels) > 1 and shown is not None:
        text = tr("At 1:{scale:,.0f} the map outlines and labels the captions of {level}; "
                  "zoom in for smaller tiles, out for larger ones.").format(
                      scale=scale, level=level_name(shown, levels))
    else:
        text = tr("At 1:{scale:,.0f} each tile's caption is written on it, where there is "
                  "room (zoom in to read them all).").format(scale=scale)
    if has_regions:
        text += " " + tr("Regions are outlined with dashes and named by their theme.")
    return text
