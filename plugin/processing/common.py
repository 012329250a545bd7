"""What every MapScribe Processing algorithm shares: names, icon and help; the bridge from the
engine's progress and log to QgsProcessingFeedback; and turning engine failures into
QgsProcessingException messages.

The algorithms run in QGIS's background threads (no FlagNoThreading): the engine is plain
Python + torch + GDAL and never touches the project, layers or widgets. Layer objects are read
only in ``prepareAlgorithm`` (QGIS calls it in the main thread) or through Processing's own
thread-safe feature sources; ``processAlgorithm`` hands the engine file paths and numbers.

Importing this module stays cheap (Qt and QGIS only): torch is imported by the engine modules,
which the algorithms import inside ``processAlgorithm``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from qgis.core import (QgsDataSourceUri, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingParameterDefinition)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ... import model as engine_package

# plugin/processing/common.py -> the plugin root, whatever the folder is called on disk.
PLUGIN_ROOT = Path(__file__).resolve().parents[2]
ICON_PATH = PLUGIN_ROOT / "resources" / "icon.svg"
DEFAULT_MODEL_PATH = PLUGIN_ROOT / "resources" / "default.mscap"
MODEL_FILE_FILTER = "MapScribe model (*.mscap);;All files (*.*)"

GROUP_CAPTIONING = ("captioning", "Captioning")
GROUP_TRAINING = ("training", "Training and evaluation")

# The engine's package ("mapscribe.model" when installed; under the folder's own name when QGIS
# loads the plugin from a differently named folder). Its modules log under this name too.
ENGINE_PACKAGE = engine_package.__name__


def tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeProcessing", text)


def default_model() -> Optional[str]:
    """The bundled model file, or None while it is not installed."""
    return str(DEFAULT_MODEL_PATH) if DEFAULT_MODEL_PATH.is_file() else None


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """Put ``parameter`` in the dialog's collapsed "Advanced parameters" section."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


class MapScribeAlgorithm(QgsProcessingAlgorithm):
    """Base of the MapScribe algorithms: subclasses give NAME, DISPLAY_NAME, GROUP, HELP and
    TAGS, and declare their parameters in ``initAlgorithm``."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP: Tuple[str, str] = GROUP_CAPTIONING
    HELP = ""
    TAGS = ""

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return tr(self.GROUP[1])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP[0]

    def tags(self):
        return [tag.strip() for tag in tr(self.TAGS).split(",") if tag.strip()]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(self.HELP)

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON_PATH)

    def flags(self):
        # Runs in a background thread (see the module docstring), can be cancelled, and works in
        # batch mode and in models. No FlagNoThreading: the engine touches no QGIS object.
        return QgsProcessingAlgorithm.FlagSupportsBatch | QgsProcessingAlgorithm.FlagCanCancel


# --------------------------------------------------------------------------------------------
# Importing the engine
# --------------------------------------------------------------------------------------------
def import_engine(module: str):
    """``model.<module>`` of this plugin, or a QgsProcessingException saying which Python
    package is missing (torch, torchvision ...) and how to get it."""
    try:
        return importlib.import_module(f"{ENGINE_PACKAGE}.{module}")
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        if missing.split(".")[0] == ENGINE_PACKAGE.split(".")[0]:
            raise  # a fault in MapScribe itself, not a missing package: keep the traceback
        raise QgsProcessingException(tr(
            "MapScribe cannot run: the Python package '{missing}' cannot be imported by QGIS's "
            "Python ({error}). MapScribe needs torch and torchvision: install them from the "
            "MapScribe panel (it offers to), or with pip into the Python environment QGIS "
            "uses.").format(missing=missing, error=error)) from None


@contextmanager
def engine_errors(*errors: type) -> Iterator[None]:
    """Engine failures in ``errors`` become a QgsProcessingException with the engine's own
    message (which names the file, field or value and what to do), never a traceback."""
    try:
        yield
    except errors as error:
        raise QgsProcessingException(str(error)) from None


# --------------------------------------------------------------------------------------------
# Progress, messages and cancelling
# --------------------------------------------------------------------------------------------
StageFraction = Callable[[object], Optional[float]]


def stage_fraction(update) -> Optional[float]:
    """The whole job's fraction done for a job of one stage: the stage's own."""
    return update.fraction


class FeedbackReporter:
    """The engine's ``progress`` callback, writing to a QgsProcessingFeedback.

    ``fraction(update)`` maps an engine update to the whole job's fraction done (0..1), or None
    for updates that should not move the bar. With ``monotonic`` the bar never moves back (a
    job whose later stages restart their own counts). Messages go to the log once: the engine
    both logs and reports some of them (e.g. each epoch's metrics), so an exact repeat of the
    previous message (or any earlier warning) is dropped.
    """

    def __init__(self, feedback, fraction: StageFraction = stage_fraction,
                 monotonic: bool = False) -> None:
        self.feedback = feedback
        self.fraction = fraction
        self.monotonic = monotonic
        self.stage: Optional[str] = None
        self.percent = 0.0
        self._last_message: Optional[str] = None
        self._warnings: set = set()
        self._lock = threading.Lock()

    def __call__(self, update) -> None:
        if update.message:
            self.info(update.message)
            return
        if update.stage != self.stage:
            self.stage = update.stage
            self.feedback.setProgressText(update.stage)
        fraction = self.fraction(update)
        if fraction is None:
            return
        percent = 100.0 * min(1.0, max(0.0, fraction))
        if self.monotonic:
            percent = max(percent, self.percent)
        self.percent = percent
        self.feedback.setProgress(percent)

    def info(self, message: str) -> None:
        with self._lock:
            repeat = message == self._last_message
            self._last_message = message
        if not repeat:
            self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        """A warning is shown once per run, however often the engine logs or returns it."""
        with self._lock:
            repeat = message in self._warnings
            self._warnings.add(message)
            self._last_message = message
        if not repeat:
            self.feedback.pushWarning(message)

    def cancelled(self) -> bool:
        return self.feedback.isCanceled()


class _FeedbackLogHandler(logging.Handler):
    """Engine log records of one thread (the algorithm's) to the algorithm's log, so that two
    algorithms running at once in QGIS never see each other's messages."""

    def __init__(self, reporter: FeedbackReporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not stop the algorithm
            return
        if record.levelno >= logging.WARNING:
            self.reporter.warning(message)
        else:
            self.reporter.info(message)


@contextmanager
def engine_log_to(reporter: FeedbackReporter) -> Iterator[None]:
    """While the block runs, the engine's INFO and WARNING records go to the feedback."""
    logger = logging.getLogger(ENGINE_PACKAGE)
    handler = _FeedbackLogHandler(reporter)
    previous_level = logger.level
    # The engine's loggers inherit the root's WARNING level unless configured: INFO lines
    # (what was chosen, what was skipped) are what people want in the Processing log.
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


# --------------------------------------------------------------------------------------------
# Layer sources as file paths
# --------------------------------------------------------------------------------------------
def split_ogr_destination(destination: str) -> Tuple[str, Optional[str]]:
    """A vector destination as (file, layer name or None): a plain path, or the
    ``ogr:dbname='file.gpkg' table="name" (geom)`` form of QGIS's "Save to GeoPackage"."""
    if destination.startswith("ogr:"):
        uri = QgsDataSourceUri(destination[len("ogr:"):])
        if uri.database():
            return uri.database(), uri.table() or None
    return destination, None


__all__ = ["MapScribeAlgorithm", "FeedbackReporter", "engine_log_to", "engine_errors",
           "import_engine", "default_model", "advanced", "split_ogr_destination",
           "tr", "DEFAULT_MODEL_PATH", "ICON_PATH", "MODEL_FILE_FILTER", "GROUP_CAPTIONING",
           "GROUP_TRAINING"]
