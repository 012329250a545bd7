"""Shared by the startup scripts that the desktop tests run inside QGIS (``qgis --code``).

A startup script is a list of steps that drive QGIS as a user would and write what they see
into ``checks``, plus ``Wait`` items between steps that must wait for QGIS (a task, a check, the
canvas). It never asserts: everything seen is data for the test (tests/e2e/desktop.py), which
reads the JSON file written at the end (MAPSCRIBE_E2E_RESULT) and asserts there, with QGIS's
output beside it. Whatever goes wrong (a step raises, a wait never ends, something hangs that
nothing else catches: the watchdog), the file is written and QGIS exits, so the test never sits
out its own time-out to learn nothing.

Steps run QTimer ticks apart, so QGIS's event loop really runs between them (painting, queued
signals, the deleteLater() of what a plugin's unload() removed).

Inputs (environment, set by desktop.qgis_environment): MAPSCRIBE_E2E_RESULT (the JSON file),
MAPSCRIBE_E2E_SHOTS (the screenshots' folder), MAPSCRIBE_E2E_WATCHDOG_MS, MAPSCRIBE_E2E_WINDOW
(the screen's and the main window's size, e.g. 1366x768).
"""

import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

RESULT_PATH = Path(os.environ["MAPSCRIBE_E2E_RESULT"])
SHOTS = Path(os.environ["MAPSCRIBE_E2E_SHOTS"])
WATCHDOG_MS = int(os.environ["MAPSCRIBE_E2E_WATCHDOG_MS"])
WINDOW = os.environ.get("MAPSCRIBE_E2E_WINDOW", "1600x1000")  # the screen, and the main window
FIRST_STEP_MS = 1000  # after the main window is up, before the first step
STEP_MS = 300  # between a step and the next
POLL_MS = 200  # between two looks at what a Wait waits for
# QGIS's exit code: the test requires 0; the others say in its output how the script ended.
STEP_RAISED, WAIT_TIMED_OUT, WATCHDOG_FIRED = 1, 2, 3

# preload.py (PYQGIS_STARTUP) has recorded the message log and any error dialog since before
# the plugins were loaded; without it a plugin-load error would have hung QGIS in a dialog.
_captured = getattr(qgis.utils, "mapscribe_e2e_captured", None)
result = {"steps": [], "checks": {}, "errors": [], "finished": False,
          "messages": _captured["messages"] if _captured else [],
          "stack_dialogs": _captured["stack_dialogs"] if _captured else []}
checks = result["checks"]
if _captured is None:
    result["errors"].append("preload.py did not run (PYQGIS_STARTUP): early errors not seen")
_finished_with = []  # the exit code, once finish() has run


@dataclass(frozen=True)
class Wait:
    """In a step list: hold the next step back until condition() is true, looking every
    POLL_MS; after timeout_ms (None: only the watchdog limits it) the run fails, naming what."""
    condition: Callable[[], bool]
    timeout_ms: Optional[int]
    what: str


def finish(code: int) -> None:
    """Write the result and exit QGIS with code; only the first call counts (the watchdog
    may fire while QGIS is already shutting down)."""
    if _finished_with:
        return
    _finished_with.append(code)
    RESULT_PATH.write_text(json.dumps(result, indent=2, default=str))
    QgsApplication.exit(code)


def _attempt(what: str, action: Callable[[], object]) -> bool:
    """Run action; an exception is written down and ends the run, so QGIS still exits."""
    try:
        action()
    except Exception:  # noqa: BLE001 - written down for the test, and QGIS still exits
        result["errors"].append(f"{what}: {traceback.format_exc()}")
        finish(STEP_RAISED)
        return False
    return True


def guarded(step: Callable[[], object]) -> Callable[[], bool]:
    """step, recorded in result["steps"] and run under _attempt; the wrapper returns whether
    the run goes on."""
    def run() -> bool:
        if _finished_with:
            return False
        result["steps"].append(step.__name__)
        return _attempt(step.__name__, step) and not _finished_with
    return run


def wait_then(condition: Callable[[], bool], then: Callable[[], object],
              timeout_ms: Optional[int], what: str) -> None:
    """Call then() once condition() is true, looking every POLL_MS. An exception from
    condition counts as not yet (a widget may not exist yet) and is quoted if time runs out."""
    state = {"waited_ms": 0, "raised": None}

    def poll():
        if _finished_with:
            return
        try:
            ready, state["raised"] = bool(condition()), None
        except Exception:  # noqa: BLE001 - kept, and said if the wait times out
            ready, state["raised"] = False, traceback.format_exc()
        if ready:
            then()
        elif timeout_ms is not None and state["waited_ms"] > timeout_ms:
            raised = f"; the condition raised: {state['raised']}" if state["raised"] else ""
            result["errors"].append(
                f"timed out after {state['waited_ms']} ms waiting for {what}{raised}")
            finish(WAIT_TIMED_OUT)
        else:
            state["waited_ms"] += POLL_MS
            QTimer.singleShot(POLL_MS, poll)

    QTimer.singleShot(POLL_MS, poll)


def repeat_while(condition: Callable[[], bool], action: Callable[[], object],
                 every_ms: int) -> None:
    """Call action() now and every every_ms while condition() is true: watching something
    that runs in the background (a task's progress bar, an installer's log)."""
    def look():
        if condition():
            action()
            QTimer.singleShot(every_ms, tick)

    def tick():
        if not _finished_with:
            _attempt(f"watching with {action.__name__}", look)

    tick()


def _run(steps: list, index: int) -> None:
    if _finished_with:
        return
    if index == len(steps):
        result["finished"] = True
        finish(0)
        return
    item = steps[index]
    if isinstance(item, Wait):
        wait_then(item.condition, lambda: _run(steps, index + 1), item.timeout_ms, item.what)
    elif guarded(item)():
        QTimer.singleShot(STEP_MS, lambda: _run(steps, index + 1))


def _watchdog() -> None:
    result["errors"].append(f"watchdog: still running after {WATCHDOG_MS} ms "
                            f"(last step {result['steps'][-1:]})")
    finish(WATCHDOG_FIRED)


def run_steps(steps: list) -> None:
    """Start the script: the watchdog, then steps (callables and Wait items) in order, each
    STEP_MS after the one before ends; all done, "finished" is recorded and QGIS exits with 0.
    A step may end the run itself with finish(code)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in WINDOW.split("x"))
    iface.mainWindow().resize(width, height)
    QTimer.singleShot(WATCHDOG_MS, _watchdog)
    QTimer.singleShot(FIRST_STEP_MS, lambda: _run(steps, 0))
