"""Helpers the plugin tests share (imported by their bare name: pytest puts this folder on
sys.path); the fixtures themselves are in conftest.py.

The test rasters are used through copies (the session fixture ``raster_copies`` makes them):
QGIS computes band statistics when it shows a raster and writes them beside it (.aux.xml), and
tests/data must stay as committed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict

from pytest_qgis.utils import process_events
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapRendererSequentialJob,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

REPO = Path(__file__).resolve().parents[2]
RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"  # EPSG:32618, 791 × 718 px of ~300 m
NAIP = REPO / "tests" / "data" / "naip_m_4709963_se_14_1_20200831_5m.tif"  # EPSG:26914, 5 m
UCM_SAMPLE = REPO / "tests" / "data" / "ucm-sample"  # 8 images in RSICD format

_COPIES: Dict[Path, Path] = {}


def copy_rasters(folder: Path) -> Dict[Path, Path]:
    """Copy the test rasters into ``folder``; add_raster() uses the copies from then on."""
    for source in (RGB_BYTE, NAIP):
        copy = folder / source.name
        shutil.copyfile(source, copy)
        _COPIES[source] = copy
    return _COPIES


def add_raster(path: Path = RGB_BYTE) -> QgsRasterLayer:
    """Add (a copy of) the raster ``path`` to the project."""
    path = _COPIES.get(path, path)
    layer = QgsRasterLayer(str(path), path.stem)
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


def set_canvas(canvas, crs: str, extent: QgsRectangle) -> None:
    """Show ``extent`` in ``crs`` on the map canvas (the project in that CRS too)."""
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem(crs))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    canvas.setExtent(extent)
    canvas.refresh()
    process_events()


def raster_extent_in(layer: QgsRasterLayer, crs: str, shrink: float = 0.3) -> QgsRectangle:
    """The middle of the raster (without ``shrink`` of each side), in ``crs``."""
    transform = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem(crs),
                                       QgsProject.instance())
    extent = layer.extent()
    inner = QgsRectangle(extent)
    inner.scale(1 - 2 * shrink)
    return transform.transformBoundingBox(inner)


def placed_labels(canvas, layer) -> list:
    """The labels QGIS places for ``layer`` when it draws it as ``canvas`` shows the map now
    (its extent, scale and size): what people see written on the map."""
    settings = canvas.mapSettings()
    settings.setLayers([layer])
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    results = job.takeLabelingResults()
    return [label for label in results.allLabels()
            if label.layerID == layer.id() and not label.isUnplaced]
