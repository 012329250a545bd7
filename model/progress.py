"""Progress and cancellation, the same for every front door.

Every long engine job takes ``progress`` (a callable receiving :class:`ProgressUpdate`) and
``cancelled`` (a callable returning True once the user asked to stop). The command line draws a
bar from the updates, the QGIS task sets its progress, Processing reports to its feedback. A job
that sees ``cancelled()`` stops at the next safe point (after the batch in hand) and raises
:class:`Cancelled` or returns with a 'cancelled' status, keeping what it finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional


class Cancelled(Exception):
    """The caller asked the job to stop."""


@dataclass
class ProgressUpdate:
    stage: str                     # e.g. 'encoding', 'training', 'validating', 'captioning'
    done: int
    total: int
    unit: str = "items"
    rate: Optional[float] = None   # units per second, over the stage so far
    eta_s: Optional[float] = None  # seconds left in the stage
    values: Dict[str, Any] = field(default_factory=dict)  # loss, epoch, …
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[ProgressUpdate], None]


def never_cancelled() -> bool:
    return False


def ignore_progress(update: ProgressUpdate) -> None:
    return None


class ProgressReporter:
    """Counts the work of one stage and calls ``callback`` at most every ``interval`` seconds
    (and always at the end), with the rate and the time left."""

    def __init__(self, callback: Optional[ProgressCallback], stage: str, total: int,
                 unit: str = "items", interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        self.callback = callback or ignore_progress
        self.stage, self.total, self.unit = stage, int(total), unit
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_report = float("-inf")
        self.done = 0
        self.values: Dict[str, Any] = {}

    def advance(self, count: int = 1, **values: Any) -> None:
        self.done += count
        self.values.update(values)
        now = self.clock()
        if now - self.last_report >= self.interval or self.done >= self.total:
            self.last_report = now
            self.callback(self.update())

    def update(self, message: str = "") -> ProgressUpdate:
        elapsed = max(1e-9, self.clock() - self.started)
        rate = self.done / elapsed if self.done else None
        eta = (self.total - self.done) / rate if rate else None
        return ProgressUpdate(self.stage, self.done, self.total, self.unit, rate, eta,
                              dict(self.values), message)

    def note(self, message: str, **values: Any) -> None:
        """Report a message (e.g. an epoch's metrics) without advancing."""
        self.values.update(values)
        self.callback(self.update(message))


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
