"""The captions panel's search box and the line that says how many regions and tiles match.

The count is a live status: it is the text of a label and, since Qt widgets have no ARIA live
region, also the accessible description of that label and of the search box itself, so a
screen reader hears the new count while the focus stays in the box (Qt sends a
description-changed event for each).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from qgis.PyQt.QtCore import QEvent, QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QLabel, QLineEdit, QWidget

from ..ui import named, tr
from .captions_entries import RegionEntry, TileEntry
from .captions_tree import count_matches, search_words

SEARCH_HELP = ("Words to look for in the regions and the captions, e.g. parking or river; the "
               "tree keeps what holds every word. Down or Enter goes to the first match, "
               "Escape clears the search.")


def _regions(n: int) -> str:
    return tr("1 region") if n == 1 else tr("{n} regions").format(n=f"{n:,}")


def _tiles(n: int) -> str:
    return tr("1 tile") if n == 1 else tr("{n} tiles").format(n=f"{n:,}")


def count_text(regions: Optional[Sequence[RegionEntry]], tiles: Sequence[TileEntry],
               words: Sequence[str], text: str) -> str:
    """'3 regions and 17 tiles match “parking”.', 'Nothing matches “xyz”.', or (no search)
    how many there are."""
    shown_regions = regions or ()
    if not words:
        if regions is None:
            return tr("{tiles}; type words to search their captions.").format(
                tiles=_tiles(len(tiles)))
        return tr("{regions} and {tiles}; type words to search them.").format(
            regions=_regions(len(shown_regions)), tiles=_tiles(len(tiles)))
    found = count_matches(shown_regions, tiles, words)
    query = " ".join(text.split())
    if not found.regions and not found.tiles:
        return tr("Nothing matches “{query}”.").format(query=query)
    if regions is None:
        return tr("{tiles} match “{query}”.").format(tiles=_tiles(found.tiles), query=query)
    return tr("{regions} and {tiles} match “{query}”.").format(
        regions=_regions(found.regions), tiles=_tiles(found.tiles), query=query)


class SearchBox(QObject):
    """The search field (``edit``) and its count (``status``). Down or Enter in the field
    asks to go to the results (``goToResults``); Escape clears the search."""

    goToResults = pyqtSignal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.edit = named(QLineEdit(parent), "MapScribeCaptionsSearch",
                          tr("Search regions and tiles"), tr(SEARCH_HELP))
        self.edit.setClearButtonEnabled(True)
        self.edit.setPlaceholderText(tr("e.g. parking, river"))
        self.status = QLabel("", parent)
        self.status.setObjectName("MapScribeSearchStatus")
        self.status.setWordWrap(True)
        self.status.setAccessibleName(tr("Search results"))
        self.last_count = ""
        self.edit.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.edit and event.type() == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.goToResults.emit()
                return True
            if event.key() == Qt.Key.Key_Escape and self.edit.text():
                self.edit.clear()
                return True
        return super().eventFilter(watched, event)

    def words(self) -> List[str]:
        return search_words(self.edit.text())

    def say_count(self, regions: Optional[Sequence[RegionEntry]], tiles: Sequence[TileEntry],
                  words: Sequence[str], text: str) -> str:
        said = count_text(regions, tiles, words, text)
        self.last_count = said
        self.status.setText(said)
        self.status.setAccessibleDescription(said)
        self.edit.setAccessibleDescription(f"{said} {tr(SEARCH_HELP)}")
        return said
