"""The MapScribe dock: where the user will pick a raster, a model and an area to caption.

For now it only says what it will do; the captioning controls and the keyboard-navigable caption
list arrive with the captioning issue. The object name is fixed because QGIS stores dock
positions by object name, and tests find the dock by it.
"""

from __future__ import annotations

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

DOCK_OBJECT_NAME = "MapScribeDock"


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeDock", text)


class MapScribeDock(QgsDockWidget):
    """A dock titled "MapScribe"; hidden until its toolbar/menu action opens it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(_tr("MapScribe"), parent)
        self.setObjectName(DOCK_OBJECT_NAME)
        self.setAllowedAreas(Qt.LeftDockWidgetArea | Qt.RightDockWidgetArea)
        # Screen readers announce the accessible name when focus enters the dock, and the
        # description on request: say what the panel is for, not how it looks.
        self.setAccessibleName(_tr("MapScribe captions panel"))
        self.setAccessibleDescription(_tr(
            "Describes raster imagery in words: captions a raster tile by tile into a grid layer "
            "and lists the captions in reading order."))

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.intro = QLabel(_tr(
            "MapScribe will caption the visible extent, the whole layer or chosen polygons of a "
            "raster, tile by tile, and list the captions here so the map can be read without "
            "seeing it."), body)
        self.intro.setObjectName("MapScribeIntro")
        self.intro.setWordWrap(True)
        # Selectable by keyboard so a screen reader can move through the text.
        self.intro.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        self.intro.setFocusPolicy(Qt.StrongFocus)
        layout.addWidget(self.intro)
        layout.addStretch(1)
        self.setWidget(body)
