"""What every MapScribe window shares: its words, its one ParameterError, how a failure reaches
people, and the helpers that make each widget readable by a screen reader and reachable by
keyboard.

* :func:`tr` translates, in one context for the whole plugin.
* :class:`ParameterError` is what a form's request module raises for a value people must change;
  ``field`` names the field, and the form moves the focus to its widget.
* Failures: an engine error (:class:`~mapscribe.model.MapScribeError`) carries a message written
  for people and is shown as it is. Anything else is a bug: :func:`log_bug` puts its traceback in
  the "MapScribe" tab of QGIS's log and :func:`bug_message` tells people so, and where to look.
* Widgets: :func:`describe` gives the accessible name and description (the description is the
  tooltip too), :func:`buddy_label` binds a label so that Alt+letter jumps to its field,
  :func:`reading_label` is read-only text that Tab reaches (so a screen reader reads it).
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import Iterable, List, Optional

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from ..model import MapScribeError

LOG_TAG = "MapScribe"  # the tab of QGIS's log panel
TRANSLATION_CONTEXT = "MapScribe"
# Where people find the log, said in every bug message.
LOG_PLACE = "the MapScribe tab of the log (View > Panels > Log Messages)"


def tr(text: str) -> str:
    """``text`` in the user's language (as it is while MapScribe has no translations)."""
    return QCoreApplication.translate(TRANSLATION_CONTEXT, text)


class ParameterError(MapScribeError, ValueError):
    """A value in a form cannot make a run. The message says what to change; ``field`` names the
    form field at fault (each form maps field names to its widgets)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------------------------
# The log, and bugs
# --------------------------------------------------------------------------------------------
def log_message(text: str, level=Qgis.MessageLevel.Info) -> None:
    """To the "MapScribe" tab of QGIS's log (thread-safe: QGIS queues it to the main thread)."""
    QgsMessageLog.logMessage(text, LOG_TAG, level)


def traceback_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def bug_message(what: str, error: BaseException) -> str:
    """What people are told when ``what`` failed with an exception that is not an engine error:
    that it is a bug, what it said, and where its traceback is."""
    return tr("{what} failed because of a bug in MapScribe ({kind}: {error}). Its details are in "
              "{log}; please report them.").format(what=what, kind=type(error).__name__,
                                                   error=error, log=LOG_PLACE)


def log_bug(what: str, error: BaseException) -> str:
    """Log ``error`` with its traceback as a bug (from any thread) and return the message for
    people (:func:`bug_message`)."""
    message = bug_message(what, error)
    log_message(f"{message}\n\n{traceback_text(error)}", Qgis.MessageLevel.Critical)
    return message


# --------------------------------------------------------------------------------------------
# Widgets for screen readers and keyboards
# --------------------------------------------------------------------------------------------
def describe(widget: QWidget, name: str, description: str = "") -> QWidget:
    """Give ``widget`` an accessible name and, when there is one, a description that is also its
    tooltip (what sighted mouse users read). Returns the widget."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)
    return widget


def named(widget: QWidget, object_name: str, name: str, description: str = "") -> QWidget:
    """:func:`describe`, with the object name tests and style sheets find the widget by."""
    widget.setObjectName(object_name)
    return describe(widget, name, description)


def browse_button(file_widget: QgsFileWidget) -> QToolButton:
    """The browse button of a QgsFileWidget: its last tool button that is not hidden. It has no
    name of its own, so a screen reader would only say "…" until it is described."""
    buttons = [b for b in file_widget.findChildren(QToolButton) if not b.isHidden()]
    return buttons[-1]


def buddy_label(text: str, buddy: QWidget, parent: Optional[QWidget] = None) -> QLabel:
    """A label whose &-letter moves the focus to ``buddy`` (Alt+letter)."""
    label = QLabel(text, parent)
    label.setBuddy(buddy)
    return label


def reading_label(object_name: str, accessible_name: str, parent: Optional[QWidget] = None,
                  *, holds_paths: bool = False, plain: bool = False) -> QLabel:
    """Read-only text that keyboard users reach with Tab and can select, so that a screen
    reader reads it: a description, a status line, what is missing.

    ``holds_paths``: a long file path is one word that cannot wrap; without this it would widen
    the whole form. ``plain``: shown as plain text, never as rich text (pip's or a path's
    characters must not be read as markup)."""
    label = QLabel("", parent)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    if plain:
        label.setTextFormat(Qt.TextFormat.PlainText)
    if holds_paths:
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                  | Qt.TextInteractionFlag.TextSelectableByKeyboard)
    label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    label.setAccessibleName(accessible_name)
    return label


def narrow(combo: QComboBox) -> QComboBox:
    """A combo box as narrow as a dock: its longest entry must not set the form's width."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)
    return combo


def wrapping_form(box: QWidget) -> QFormLayout:
    """A form whose fields go below their labels when there is no room for both side by side."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


def set_tab_order(widgets: Iterable[QWidget]) -> None:
    """Tab moves through ``widgets`` in the order given (Qt skips hidden and disabled ones)."""
    chain: List[QWidget] = list(widgets)
    for first, second in zip(chain, chain[1:]):
        QWidget.setTabOrder(first, second)


def field_default(parameters: type, name: str):
    """The default of field ``name`` of an engine parameter dataclass: forms show the engine's
    defaults rather than restating them."""
    for item in dataclasses.fields(parameters):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            break
    raise KeyError(f"{parameters.__name__} has no field {name!r} with a default")
