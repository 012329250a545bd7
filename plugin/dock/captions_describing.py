"""How the captions panel gets its overview and regions: the overview stored with a layer, read
at once, and the engine's description, made in a :class:`~..describe_task.DescribeCaptionsTask`.

One description at a time counts: a newer request supersedes the one in flight (whose result
is then dropped). A description that only reads (a layer described before) is scheduled for
the next turn of the event loop rather than started at once, so that a run's own description,
asked for right after its layer is shown, replaces it before it starts: two describers never
share the GeoPackage while one of them writes. A description that writes first takes the
regions layer of the captions out of the project (the engine replaces it in the file) and
shows the new one in the "MapScribe" group when it is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QObject, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QFrame, QPushButton, QScrollArea, QVBoxLayout, QWidget

from ...model import MapScribeError, read_overview
from .. import layers as caption_layers_module
from ..describe_task import DescribeCaptionsTask
from ..tasks import stop_and_wait
from ..ui import buddy_label, log_message, named, reading_label, tr

# How long unload waits for a description to end (milliseconds); it cannot stop half-way.
DESCRIBE_WAIT_MS = 20_000


def stored_overview(gpkg: Path, layer: str) -> Tuple[str, str, bool]:
    """(overview text, what the regions heading says meanwhile, whether the layer was
    described before) for the captions layer ``layer`` of ``gpkg``."""
    try:
        stored = read_overview(gpkg, layer or None)
    except MapScribeError as error:
        return (tr("This layer cannot be described: {error}").format(error=error),
                tr("none (the layer cannot be described)"), False)
    if stored is None:
        return (tr("Not described yet: press Describe area (Alt+D) for an overview and the "
                   "regions of one theme."), tr("not described yet"), False)
    return stored.text, tr("being read…"), True


def overview_text(description) -> str:
    """The overview's sentences, one paragraph."""
    return description.text


def notes_text(description) -> str:
    """What people should know about how the description was made, one note a line."""
    return "\n".join(tr("Note: {note}").format(note=note) for note in description.notes)


class Describer(QObject):
    """Runs the panel's descriptions; ``finished`` hands over the task whose result is the
    latest asked for (``task.layer_id`` says for which layer)."""

    finished = pyqtSignal(object)  # the DescribeCaptionsTask

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.task: Optional[DescribeCaptionsTask] = None
        self._pending: Optional[Tuple[Path, str, str]] = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._start_pending)

    def schedule_read(self, gpkg: Path, layer: str, layer_id: str) -> None:
        """Read the description of a layer described before, on the next turn of the loop."""
        self._pending = (Path(gpkg), layer, layer_id)
        self._timer.start()

    def cancel_scheduled(self) -> None:
        self._timer.stop()
        self._pending = None

    def _start_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.start(*pending, write=False)

    def start(self, gpkg: Path, layer: str, layer_id: str, *, write: bool
              ) -> DescribeCaptionsTask:
        """Describe ``layer`` of ``gpkg`` in a task (``write``: store the regions layer and the
        overview in the GeoPackage and show the regions on the map)."""
        self.cancel_scheduled()
        if write:  # QGIS must not show a regions layer the engine is about to replace
            caption_layers_module.remove_regions_layers(gpkg, layer)
        if self.task is not None:
            self.task.detach()  # superseded: its result is not shown
        task = DescribeCaptionsTask(Path(gpkg), layer, write=write,
                                    on_finished=self._task_finished)
        task.layer_id = layer_id
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _task_finished(self, task: DescribeCaptionsTask) -> None:
        if task is not self.task:
            return
        self.task = None
        description = task.description
        if task.write and description is not None and description.regions_layer:
            try:
                caption_layers_module.add_regions_layer(
                    task.gpkg, description.regions_layer, task.layer,
                    f"{task.gpkg.stem} regions")
            except caption_layers_module.LayerError as error:
                log_message(str(error))
        self.finished.emit(task)

    def shutdown(self) -> None:
        """Before the panel goes: nothing more starts, and a description in flight ends
        without it (waited for, bounded)."""
        self.cancel_scheduled()
        task, self.task = self.task, None
        if task is not None:
            task.detach()
            stop_and_wait(task, DESCRIBE_WAIT_MS)


class OverviewBox(QScrollArea):
    """The overview (read first), where to look on the map, and *Describe area*; they scroll
    when long, so that the tree below keeps its room."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeOverviewScroll")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        box = QWidget(self)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.overview = reading_label("MapScribeOverview", tr("Overview"), box, plain=True)
        layout.addWidget(buddy_label(tr("O&verview:"), self.overview, box))
        layout.addWidget(self.overview)
        self.where = reading_label("MapScribeWhereToLook", tr("Where to look"), box, plain=True)
        layout.addWidget(self.where)
        self.describe_button = named(QPushButton(tr("&Describe area"), box),
                                     "MapScribeDescribe", tr("Describe area"), tr(
            "Tells each tile's theme, outlines the regions of one theme and writes the "
            "overview, into the layer's GeoPackage."))
        layout.addWidget(self.describe_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.setWidget(box)

    @staticmethod
    def say(label, text: str) -> None:
        """Show ``text`` in ``label``; a screen reader reads it as the label's description."""
        label.setText(text)
        label.setAccessibleDescription(text)
