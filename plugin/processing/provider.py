"""The MapScribe Processing provider.

It makes MapScribe's algorithms available in the Processing toolbox, in models and in
``qgis_process``. It has none yet: the captioning and training issues add them in
:meth:`MapScribeProvider.loadAlgorithms`.
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

    def id(self) -> str:  # noqa: A003 (QGIS API name)
        return PROVIDER_ID

    def name(self) -> str:
        return "MapScribe"

    def longName(self) -> str:  # noqa: N802
        return "MapScribe: describe imagery in words"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON_PATH)

    def loadAlgorithms(self) -> None:  # noqa: N802
        """Register the algorithms (called by QGIS on load and on refresh)."""
        # No algorithms yet; later issues add them with self.addAlgorithm(...).
