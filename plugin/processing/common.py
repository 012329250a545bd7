"""What every MapScribe Processing algorithm shares: names, icon and help; the bridge from the
engine's progress and log to QgsProcessingFeedback; and turning engine failures into
QgsProcessingException messages.

The algorithms run in QGIS's background threads (no FlagNoThreading): the engine is plain
Python + torch + GDAL and never touches the project, layers or widgets. Layer objects are read
only in ``prepareAlgorithm`` (QGIS calls it in the main thread) or through Processing's own
thread-safe feature sources; ``processAlgorithm`` hands the engine file paths and numbers.

Importing this module stays cheap: the engine's public surface imports no torch; its jobs
import it when they run. :func:`import_engine` is where an algorithm asks for the engine, and
where a missing torch becomes a message that says what to install.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple

from qgis.core import (
    QgsDataSourceUri,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProviderRegistry,
)
from qgis.PyQt.QtGui import QIcon

from ... import model as engine
from ...model import MODEL_SUFFIX, MapScribeError, ProgressUpdate
from ..deps.packages import CAPTIONING
from ..engine_gate import missing_package_of, missing_packages
from ..progress_text import stage_title
from ..ui import log_bug, tr

# plugin/processing/common.py -> the plugin root, whatever the folder is called on disk.
PLUGIN_ROOT = Path(__file__).resolve().parents[2]
ICON_PATH = PLUGIN_ROOT / "resources" / "icon.svg"
DEFAULT_MODEL_PATH = PLUGIN_ROOT / "resources" / f"default{MODEL_SUFFIX}"
MODEL_FILE_FILTER = f"MapScribe model (*{MODEL_SUFFIX});;All files (*.*)"

GROUP_CAPTIONING = ("captioning", "Captioning")
GROUP_TRAINING = ("training", "Training and evaluation")

# The engine's package ("mapscribe.model" when installed; under the folder's own name when QGIS
# loads the plugin from a differently named folder). Its modules log under this name too.
ENGINE_PACKAGE = engine.__name__


def default_model() -> Optional[str]:
    """The bundled model file, or None while it is not installed."""
    return str(DEFAULT_MODEL_PATH) if DEFAULT_MODEL_PATH.is_file() else None


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """Put ``parameter`` in the dialog's collapsed "Advanced parameters" section."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return parameter


class MapScribeAlgorithm(QgsProcessingAlgorithm):
    """Base of the MapScribe algorithms: subclasses give NAME, DISPLAY_NAME, GROUP, HELP and
    TAGS, and declare their parameters in ``initAlgorithm``."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP: Tuple[str, str] = GROUP_CAPTIONING
    HELP = ""
    TAGS = ""

    def createInstance(self):
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return tr(self.GROUP[1])

    def groupId(self) -> str:
        return self.GROUP[0]

    def tags(self):
        return [tag.strip() for tag in tr(self.TAGS).split(",") if tag.strip()]

    def shortHelpString(self) -> str:
        return tr(self.HELP)

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:
        return str(ICON_PATH)

    def flags(self):
        # Runs in a background thread (see the module docstring), can be cancelled, and works in
        # batch mode and in models. No FlagNoThreading: the engine touches no QGIS object.
        return (QgsProcessingAlgorithm.Flag.FlagSupportsBatch
                | QgsProcessingAlgorithm.Flag.FlagCanCancel)


# --------------------------------------------------------------------------------------------
# The engine, and its failures
# --------------------------------------------------------------------------------------------
def _cannot_run(missing: str, why: str) -> QgsProcessingException:
    return QgsProcessingException(tr(
        "MapScribe cannot run: the Python package {missing} cannot be imported by QGIS's Python "
        "({why}). MapScribe captions with onnxruntime (about 30 MB) or torch, and trains with "
        "torch and torchvision: install them from the MapScribe panel (it offers to), or with "
        "pip into the Python environment QGIS uses.").format(missing=missing, why=why))


def import_engine(purpose: str = CAPTIONING):
    """The engine's public surface (``mapscribe.model``), once the runtime packages of
    ``purpose`` (captioning: ONNX Runtime or torch, and rasterio; training: torch) are there;
    a QgsProcessingException saying which Python package is missing and how to get it when
    not (its jobs import the runtime when they run)."""
    missing = missing_packages(purpose)
    if missing:
        raise _cannot_run(", ".join(f"'{name}'" for name in missing), tr("not installed"))
    return engine


@contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Around an engine job: its errors (MapScribeError: the message names the file, field or
    value and what to do) become a QgsProcessingException with that message, never a
    traceback; a package that cannot be imported is said so; anything else is a bug of
    ``what``, told as one, its traceback in the MapScribe log tab."""
    try:
        yield
    except QgsProcessingException:
        raise
    except MapScribeError as error:
        raise QgsProcessingException(str(error)) from None
    except ImportError as error:
        missing = missing_package_of(error)
        if missing is None:
            raise QgsProcessingException(log_bug(what, error)) from None
        raise _cannot_run(f"'{missing}'", str(error)) from None
    except Exception as error:  # noqa: BLE001 - a bug: told as one, its traceback logged
        raise QgsProcessingException(log_bug(what, error)) from None


# --------------------------------------------------------------------------------------------
# Progress, messages and cancelling
# --------------------------------------------------------------------------------------------
class FeedbackReporter:
    """The engine's ``progress`` callback, writing to a QgsProcessingFeedback.

    The bar follows the job's own fraction (``job_fraction``: every stage of the job takes its
    share), else the stage's; it never moves back. The progress text says the stage in words
    ("epoch 2/10"). Messages go to the log once: the engine both logs and reports some of them
    (e.g. each epoch's metrics), so an exact repeat of the previous message (or any earlier
    warning) is dropped.
    """

    def __init__(self, feedback) -> None:
        self.feedback = feedback
        self.stage: Optional[str] = None
        self.percent = 0.0
        self._last_message: Optional[str] = None
        self._warnings: set = set()
        self._lock = threading.Lock()

    def __call__(self, update: ProgressUpdate) -> None:
        if update.message:
            self.info(update.message)
        title = stage_title(update)
        if title != self.stage:
            self.stage = title
            self.feedback.setProgressText(title)
        fraction = update.job_fraction if update.job_fraction is not None else update.fraction
        self.percent = max(self.percent, 100.0 * min(1.0, max(0.0, fraction)))
        self.feedback.setProgress(self.percent)

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


def captions_layer_gpkg(layer) -> Tuple[str, Optional[str]]:
    """The GeoPackage and table of ``layer`` (a QgsVectorLayer or None), the captions layer
    'Caption raster' wrote; a clear QgsProcessingException for anything else."""
    if layer is None:
        raise QgsProcessingException(tr("Captions layer: none was given (or it could not be "
                                        "loaded)."))
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or ""
    if layer.providerType() != "ogr" or Path(path).suffix.lower() != ".gpkg":
        raise QgsProcessingException(tr(
            "Captions layer '{name}' ({source}) is not a GeoPackage layer: give the layer "
            "'Caption raster' wrote.").format(name=layer.name(), source=layer.source()))
    return path, parts.get("layerName") or None
