"""Progress and cancellation, the same for every front door.

Every long engine job takes ``progress`` (a callable receiving :class:`ProgressUpdate`) and
``cancelled`` (a callable returning True once the user asked to stop). The command line draws a
bar from the updates, the QGIS task sets its progress, Processing reports to its feedback. A job
that sees ``cancelled()`` stops at the next safe point (after the batch in hand) and raises
:class:`Cancelled` or returns with a 'cancelled' status, keeping what it finished.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, TextIO


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


class TerminalProgressBar:
    """Draws updates as one line on a terminal (or a line per stage end when not a terminal)."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 28):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interactive = hasattr(stream, "isatty") and stream.isatty()
        self._open_line = False

    def __call__(self, update: ProgressUpdate) -> None:
        if update.message:
            self._end_line()
            self.stream.write(update.message + "\n")
            self.stream.flush()
            return
        filled = int(self.width * update.fraction)
        bar = "█" * filled + "·" * (self.width - filled)
        rate = f"{update.rate:.1f} {update.unit}/s" if update.rate else ""
        extras = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in update.values.items())
        line = (f"{update.stage:<10} {bar} {update.done}/{update.total}  {rate}  "
                f"ETA {format_duration(update.eta_s)}  {extras}").rstrip()
        if self.interactive:
            self.stream.write("\r" + line + "\033[K")
            self._open_line = True
            if update.done >= update.total:
                self._end_line()
        elif update.done >= update.total:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False


class StopOnCtrlC:
    """Ctrl-C as a cancel check for the command line: the first press asks the job to stop
    after the batch in hand, the second stops at once (KeyboardInterrupt)."""

    def __init__(self, label: str = "mapscribe") -> None:
        self.label = label
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> "StopOnCtrlC":
        # Signal handlers can only be set from the main thread (not so when called from tests
        # or a GUI worker, which have their own cancel).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write(f"\n{self.label}: stopping after the batch in hand "
                         "(Ctrl-C again to stop at once)...\n")
        sys.stderr.flush()

    def __call__(self) -> bool:
        return self.requested
