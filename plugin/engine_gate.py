"""The way from a window to the engine: are its packages there, and loading it without freezing
QGIS.

Two things stand between a window and a job. The runtime packages must be importable
(:func:`missing_packages`: a path search, nothing is imported), and the runtime must be loaded:
torch takes about 3 s the first time; without torch, captioning runs on ONNX Runtime.
:class:`EngineGate` does both for the dock and the training dialog alike: it says what is
missing, or loads the engine on a worker thread (:class:`EngineWarmUpTask`) and hands back
what the engine offers (:class:`EngineFacts`: the runtime, the devices and the backbones).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from qgis.core import Qgis, QgsApplication, QgsTask
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..model import BACKBONE_NAMES, MapScribeError, available_devices, caption_runtime
from .deps.managed import missing_dependencies
from .deps.packages import CAPTIONING, TRAINING
from .tasks import keep_alive, let_go, stop_and_wait
from .ui import log_bug, log_message, tr

# The top-level package of this plugin (``mapscribe`` when installed; QGIS may load the folder
# under another name): an ImportError naming it is a bug of ours, not a missing package.
_OWN_PACKAGE = __name__.split(".")[0]


def missing_packages(purpose: str = CAPTIONING) -> List[str]:
    """The pip names of what QGIS's Python lacks to caption (ONNX Runtime or torch, rasterio)
    or to train (torch & co.); imports nothing, and puts the folder MapScribe installs them
    into on ``sys.path`` first when it is needed."""
    return missing_dependencies(purpose)


def missing_package_of(error: ImportError) -> Optional[str]:
    """The package an ImportError says is missing (``torch``, or a library torch needs); None
    when the module missing is MapScribe's own, which is a bug rather than an installation
    problem."""
    missing = getattr(error, "name", None) or str(error)
    return None if missing.split(".")[0] == _OWN_PACKAGE else missing


@dataclass(frozen=True)
class EngineFacts:
    """What the loaded engine offers a form: devices as (key, label) pairs, "auto" first and
    the CPU last; backbone names; the runtime captioning uses ('torch', or 'onnx' when torch
    is not installed)."""

    devices: Tuple[Tuple[str, str], ...]
    backbones: Tuple[str, ...]
    runtime: str = "torch"


def load_engine_facts(purpose: str = CAPTIONING) -> EngineFacts:
    """Import the runtime the engine will use and ask what it offers: torch (slow the first
    time: call it on a worker thread unless torch is imported already) for training, or for
    captioning when it is installed; else ONNX Runtime, without torch."""
    runtime = "torch" if purpose == TRAINING else caption_runtime()
    devices = available_devices(runtime)
    return EngineFacts(tuple((choice.key, choice.label) for choice in devices), BACKBONE_NAMES,
                       runtime)


def _load(what: str, purpose: str = CAPTIONING
          ) -> Tuple[Optional[EngineFacts], Optional[str]]:
    """(facts, None), or (None, why the engine cannot be loaded, for people)."""
    try:
        return load_engine_facts(purpose), None
    except MapScribeError as error:  # e.g. no runtime installed: said as the engine says it
        return None, str(error)
    except ImportError as error:
        if missing_package_of(error) is None:
            return None, log_bug(what, error)
        # Installed but broken, e.g. a CUDA library torch needs is missing.
        return None, tr("MapScribe's packages are installed but do not import: {error}").format(
            error=error)
    except Exception as error:  # noqa: BLE001 - a bug, logged with its traceback and told
        return None, log_bug(what, error)


class EngineWarmUpTask(QgsTask):
    """Loads the engine (and torch, about 3 s) off the main thread and asks what it offers, so
    that opening a MapScribe window never freezes QGIS. Afterwards ``facts`` holds the answer, or
    ``error`` says why the engine cannot be loaded."""

    def __init__(self, on_finished: Optional[Callable[["EngineWarmUpTask"], None]] = None,
                 purpose: str = CAPTIONING):
        super().__init__(tr("MapScribe: loading the captioning engine"), QgsTask.Flags())
        self.on_finished = on_finished
        self.purpose = purpose
        self.facts: Optional[EngineFacts] = None
        self.error: Optional[str] = None
        keep_alive(self)

    def detach(self) -> None:
        """Whoever asked is gone: report to nobody."""
        self.on_finished = None

    def run(self) -> bool:  # worker thread
        if self.isCanceled():  # the plugin is being unloaded: import nothing more of it
            return False
        self.facts, self.error = _load(tr("Loading the captioning engine"), self.purpose)
        return self.facts is not None

    def finished(self, ok: bool) -> None:  # main thread
        try:
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            let_go(self)


class EngineGate(QObject):
    """A window's way to the engine. :meth:`open` emits ``missing`` (the pip names of what
    QGIS's Python lacks) or loads the engine and then emits ``ready`` (an :class:`EngineFacts`)
    or ``failed`` (why, for people). Loading happens at once when torch is imported already,
    else on a worker thread, announced by ``loading``."""

    missing = pyqtSignal(list)
    loading = pyqtSignal()
    ready = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, parent: Optional[QObject] = None, purpose: str = CAPTIONING) -> None:
        super().__init__(parent)
        self.purpose = purpose
        self.facts: Optional[EngineFacts] = None
        self._task: Optional[EngineWarmUpTask] = None

    def open(self) -> None:
        """Check the packages; when they are all there, load the engine."""
        missing = missing_packages(self.purpose)
        if missing:
            self.missing.emit(missing)
            return
        self.load()

    def load(self) -> None:
        """Load the engine (again after an installation); nothing when loaded or loading."""
        if self.facts is not None or self._task is not None:
            return
        if "torch" in sys.modules:
            # Already imported (a training run, the Processing provider, tests): no worker
            # thread needed, and the window is ready at once.
            self._loaded(*_load(tr("Loading the captioning engine"), self.purpose))
            return
        self._task = EngineWarmUpTask(self._task_finished, self.purpose)
        self.loading.emit()
        QgsApplication.taskManager().addTask(self._task)

    def is_ready(self) -> bool:
        return self.facts is not None

    def is_loading(self) -> bool:
        return self._task is not None

    def _task_finished(self, task: EngineWarmUpTask) -> None:
        self._task = None
        self._loaded(task.facts, task.error)

    def _loaded(self, facts: Optional[EngineFacts], error: Optional[str]) -> None:
        if facts is None:
            error = error or tr("no reason was given")
            log_message(tr("the captioning engine could not be loaded: {error}").format(
                error=error), Qgis.MessageLevel.Warning)
            self.failed.emit(error)
            return
        self.facts = facts
        self.ready.emit(facts)

    def shutdown(self, wait_ms: Optional[int] = None) -> None:
        """The window goes: a loading in flight reports to nobody. With ``wait_ms`` (the plugin
        unloads) it is also stopped and waited for, bounded: the task imports parts of the
        plugin on its thread, and must end before QGIS unloads the plugin's modules, or it would
        import them again behind QGIS's back."""
        task, self._task = self._task, None
        if task is not None:
            task.detach()
            if wait_ms is not None:
                stop_and_wait(task, wait_ms)
