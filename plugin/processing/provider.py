"""The MapScribe Processing provider.

It makes MapScribe's algorithms available in the Processing toolbox, in batch mode, in models
and in ``qgis_process`` (``qgis_process run mapscribe:caption_raster -- INPUT=... OUTPUT=...``):
caption_raster, describe_captions, export_captions, train_captioner and evaluate_captioner.
Loading it imports Qt and QGIS only; each algorithm imports the engine (and torch) when it
runs.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

PROVIDER_ID = "mapscribe"
# plugin/processing/provider.py -> the plugin root, whatever the folder is called on disk.
ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icon.svg"


class MapScribeProvider(QgsProcessingProvider):
    """Algorithms appear as ``mapscribe:<name>``; the provider itself only names them."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "MapScribe"

    def longName(self) -> str:
        return "MapScribe: describe imagery in words"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def loadAlgorithms(self) -> None:
        """Register the algorithms (called by QGIS on load and on refresh)."""
        from .caption_raster import CaptionRasterAlgorithm
        from .describe_captions import DescribeCaptionsAlgorithm
        from .evaluate_captioner import EvaluateCaptionerAlgorithm
        from .export_captions import ExportCaptionsAlgorithm
        from .train_captioner import TrainCaptionerAlgorithm

        for algorithm in (CaptionRasterAlgorithm, DescribeCaptionsAlgorithm,
                          ExportCaptionsAlgorithm, TrainCaptionerAlgorithm,
                          EvaluateCaptionerAlgorithm):
            self.addAlgorithm(algorithm())

    # The engine writes GeoPackages only: Processing then offers .gpkg for vector outputs and
    # makes a temporary output a .gpkg file rather than a memory layer.
    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"

    def supportsNonFileBasedOutput(self) -> bool:
        return False
