"""Progress and cancellation, the same for every front door.

Every long engine job takes ``progress`` (a callable receiving :class:`ProgressUpdate`) and
``cancelled`` (a callable returning True once the user asked to stop). The command line draws a
bar from the updates, the QGIS task sets its progress bar, Processing reports to its feedback.

An update says which stage is running (:class:`Stage`), how far that stage is, how far the whole
job is (``job_fraction``, from :class:`JobPlan`), and may carry a typed event such as
:class:`EpochEnded`: front doors read fields, never log text.

The cancel rule: a job that sees ``cancelled()`` stops at the next safe point (after the batch in
hand) and *returns* a result whose ``stopped`` is ``"cancelled"``, keeping what it finished.
:class:`Cancelled` is only the engine's internal way of unwinding to that point; no job lets it
escape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple


class Cancelled(Exception):  # noqa: N818 - a request to stop, not an error
    """Raised inside the engine to unwind to the job's top once the caller asked to stop; the
    job turns it into a result with ``stopped="cancelled"``."""


class Stage:
    """The names of the stages jobs report (plain strings, so updates stay plain data)."""

    READING = "reading"          # reading and checking a dataset folder
    ENCODING = "encoding"        # encoding images into cached features
    TRAINING = "training"        # one epoch of training (values: epoch, epochs, loss)
    VALIDATING = "validating"    # decoding the validation images after an epoch
    SCORING = "scoring"          # decoding a split to score the model (values: split)
    CAPTIONING = "captioning"    # captioning raster tiles


# How a job ended; every job result has a ``stopped`` field with one of these.
COMPLETED, EARLY_STOPPING, CANCELLED = "completed", "early_stopping", "cancelled"


@dataclass(frozen=True)
class EpochEnded:
    """A training epoch ended: its losses and decoded-validation metrics. Training keeps these as
    its history (in checkpoints too), and reports each as an event."""

    epoch: int
    train_loss: float
    val_loss: Optional[float] = None
    bleu4: Optional[float] = None
    cider_d: Optional[float] = None
    lr: float = 0.0
    seconds: float = 0.0
    images_per_s: float = 0.0
    epochs: int = 0                # of the run; 0 when not known (e.g. an old checkpoint)
    theme_accuracy: Optional[float] = None   # on the labelled val images, with a theme head

    @property
    def metrics(self) -> Dict[str, float]:
        """The validation figures that exist, by their display names."""
        return {name: value for name, value in (("val_loss", self.val_loss),
                                                ("BLEU-4", self.bleu4),
                                                ("CIDEr-D", self.cider_d),
                                                ("theme accuracy", self.theme_accuracy))
                if value is not None}

    def describe(self) -> str:
        of = f"/{self.epochs}" if self.epochs else ""
        parts = [f"epoch {self.epoch}{of}", f"train loss {self.train_loss:.3f}"]
        if self.val_loss is not None:
            parts.append(f"val loss {self.val_loss:.3f}")
        if self.bleu4 is not None:
            parts.append(f"BLEU-4 {self.bleu4:.3f}")
        if self.cider_d is not None:
            parts.append(f"CIDEr-D {self.cider_d:.3f}")
        if self.theme_accuracy is not None:
            parts.append(f"theme accuracy {self.theme_accuracy:.1%}")
        parts.append(f"{self.images_per_s:.0f} images/s")
        return ", ".join(parts)


@dataclass(frozen=True)
class ProgressUpdate:
    stage: str                     # one of Stage's names
    done: int
    total: int
    unit: str = "items"
    rate: Optional[float] = None   # units per second, over the stage so far
    eta_s: Optional[float] = None  # seconds left in the stage
    values: Dict[str, Any] = field(default_factory=dict)  # loss, epoch, split …
    message: str = ""              # a line for people (an event's description, a note)
    job_fraction: Optional[float] = None  # 0..1 of the whole job, when the job knows its plan
    event: Optional[Any] = None    # a typed event such as EpochEnded

    @property
    def fraction(self) -> float:
        """How far the stage is, 0..1."""
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[ProgressUpdate], None]


def never_cancelled() -> bool:
    return False


def ignore_progress(update: ProgressUpdate) -> None:
    return None


class ProgressReporter:
    """Counts the work of one stage and calls ``callback`` at most every ``interval`` seconds
    (and always at the end), with the rate and the time left.

    ``span`` is the part of the whole job this stage covers (start, end), so each update also
    carries the job's fraction; None when the job has no plan.
    """

    def __init__(self, callback: Optional[ProgressCallback], stage: str, total: int,
                 unit: str = "items", interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 span: Optional[Tuple[float, float]] = None,
                 values: Optional[Dict[str, Any]] = None):
        self.callback = callback or ignore_progress
        self.stage, self.total, self.unit = stage, int(total), unit
        self.interval = interval
        self.clock = clock
        self.span = span
        self.started = clock()
        self.last_report = float("-inf")
        self.done = 0
        self.values: Dict[str, Any] = dict(values or {})

    def advance(self, count: int = 1, **values: Any) -> None:
        self.done += count
        self.values.update(values)
        now = self.clock()
        if now - self.last_report >= self.interval or self.done >= self.total:
            self.last_report = now
            self.callback(self.update())

    def job_fraction(self) -> Optional[float]:
        if self.span is None:
            return None
        start, end = self.span
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        return start + (end - start) * fraction

    def update(self, message: str = "", event: Any = None) -> ProgressUpdate:
        elapsed = max(1e-9, self.clock() - self.started)
        rate = self.done / elapsed if self.done else None
        eta = (self.total - self.done) / rate if rate else None
        return ProgressUpdate(self.stage, self.done, self.total, self.unit, rate, eta,
                              dict(self.values), message, self.job_fraction(), event)

    def note(self, message: str, event: Any = None, **values: Any) -> None:
        """Report a message or a typed event without advancing."""
        self.values.update(values)
        self.callback(self.update(message, event))


class JobPlan:
    """A job's stages with their expected share of the work, so that every stage's reporter
    also says how far the whole job is.

    ``weights`` are (key, weight) pairs in the order the job runs them; a key may be any label
    (e.g. "epoch 3"). Shares are normalised; a stage not in the plan reports no job fraction.
    """

    def __init__(self, callback: Optional[ProgressCallback],
                 weights: Sequence[Tuple[str, float]]):
        self.callback = callback
        total = sum(max(0.0, weight) for _, weight in weights) or 1.0
        self.spans: Dict[str, Tuple[float, float]] = {}
        start = 0.0
        for key, weight in weights:
            end = start + max(0.0, weight) / total
            self.spans[key] = (start, min(1.0, end))
            start = end

    def reporter(self, key: str, stage: str, total: int, unit: str = "items",
                 **values: Any) -> ProgressReporter:
        return ProgressReporter(self.callback, stage, total, unit, span=self.spans.get(key),
                                values=values)

    def event(self, key: str, stage: str, event: Any, message: str = "") -> None:
        """Report a typed event at the end of stage ``key``."""
        reporter = self.reporter(key, stage, 1)
        reporter.done = 1
        reporter.note(message or getattr(event, "describe", lambda: "")(), event)


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
