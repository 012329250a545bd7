"""What a screen reader says for a widget: its accessible name and description.

The dock, the training dialog and their panels name every widget they make through these two
helpers, so that a name is set the same way everywhere.
"""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QToolButton, QWidget


def describe(widget: QWidget, name: str, description: str = "") -> QWidget:
    """Give ``widget`` an accessible name and, when there is one, a description that is also
    its tooltip (what sighted mouse users read). Returns the widget."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)
    return widget


def browse_button(file_widget: QgsFileWidget) -> QToolButton:
    """The browse button of a QgsFileWidget: its last tool button that is not hidden. It has no
    name of its own, so a screen reader would only say "…" until it is described."""
    buttons = [b for b in file_widget.findChildren(QToolButton) if not b.isHidden()]
    return buttons[-1]
