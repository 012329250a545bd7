"""What every command shares: exit codes, the error people see instead of a traceback, Ctrl-C as
a cancel check, the progress bar, logging.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Optional, TextIO

from ..progress import ProgressUpdate, format_duration


class TerminalProgressBar:
    """Draws updates as one line on a terminal (or a line per stage end when not a terminal)."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 28):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        # A bar redrawn in place on a terminal; a line per finished stage in a log or pipe.
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
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


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 70, 130
# Where the traceback of an unexpected error goes (a bug: people are asked to report it).
BUG_LOG_DIR_ENV = "MAPSCRIBE_LOG_DIR"


class CommandError(Exception):
    """A failure already explained in words people can act on; printed without a traceback."""


def default(params_class: Any, name: str) -> Any:
    """The engine's default for field ``name`` of a parameter dataclass: every front door
    shows the engine's defaults instead of restating them."""
    for item in fields(params_class):
        if item.name == name:
            if item.default is not MISSING:
                return item.default
            if item.default_factory is not MISSING:
                return item.default_factory()
    raise KeyError(f"{params_class.__name__} has no field {name!r} with a default")


def write_bug_report(command: str, error: BaseException) -> Path:
    """Write the traceback of an unexpected error to a log file; returns its path."""
    folder = Path(os.environ.get(BUG_LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "mapscribe")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"mapscribe-{command}-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    path.write_text(f"mapscribe {command} (argv {sys.argv!r})\n{text}", encoding="utf-8")
    return path


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO
                                           if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def finite_json(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, ±Infinity) replaced by None:
    JSON has no such numbers, and a parser given Python's ``NaN`` or ``-Infinity`` fails."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def json_text(value: Any, indent: Optional[int] = 1) -> str:
    """Valid JSON (RFC 8259) for ``value``: never NaN or Infinity."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)
