"""The "Caption a raster" tab: the scrolled form above the run bar, and what a finished run
shows there.

The form scrolls; its run bar (the run's tiles and time, Run, Cancel and Resume, the progress
bar, the status line) stays below it, always in sight, even on a laptop's 768 pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from ...model import CANCELLED
from .. import layers
from ..tasks import CaptionRasterTask
from ..ui import tr
from .form import CaptionForm
from .request import outcome_text


def caption_page(parent: QWidget, form: CaptionForm) -> Tuple[QWidget, QScrollArea]:
    """The tab's page: ``form`` scrolled, its run bar below the scrolled part."""
    page = QWidget(parent)
    page.setObjectName("MapScribeCaptionPage")
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea(page)
    scroll.setObjectName("MapScribeFormScroll")
    scroll.setWidgetResizable(True)
    # The form fits the width.
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(form)
    scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    layout.addWidget(scroll, 1)
    layout.addWidget(form.run_bar)
    return page, scroll


def show_result(dock, task: CaptionRasterTask) -> None:
    """What a finished run (done, cancelled or failed) shows in ``dock`` (the MapScribeDock):
    its layer added and listed, the status, the progress bar, Resume when it was stopped."""
    form, result = dock.form, task.result
    if result is None:
        form.progress.setValue(0)
        form.resume_button.setVisible(False)
        if task.error is None:
            dock.show_status(tr("Cancelled before any tile was captioned."))
        else:
            dock.show_status(tr("Failed: {error}").format(error=task.error), error=True)
        return
    try:
        layer = layers.add_caption_layer(result.output, result.layer,
                                         f"{Path(result.output).stem} captions")
    except layers.LayerError as error:
        dock.show_status(str(error), error=True)
        return
    stopped = result.stopped == CANCELLED
    form.resume_button.setVisible(stopped)
    dock.show_status(outcome_text(result))
    # Cancelled: the bar starts again from nothing (the status says what is kept).
    form.progress.setValue(0 if stopped else 100)
    if not stopped:
        if form.output_is_default:  # the next run gets a new file, not this one
            dock.refresh_default_output()
    dock.captions_panel.refresh_layers()
    dock.captions_panel.set_layer(layer)
