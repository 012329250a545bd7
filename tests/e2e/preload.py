"""Run by QGIS before it loads any plugin (the PYQGIS_STARTUP environment variable), for
tests/e2e/test_desktop.py.

It makes errors observable instead of blocking: QGIS shows a Python error raised while loading a
plugin in a modal dialog that nobody can close under Xvfb, so the run would hang until the
test's time-out with nothing to show. Here such errors are printed to stderr (which the test
reports) and kept, with every message-log entry from the very start, for startup.py to record.
"""

import sys
import traceback

import qgis.utils
from qgis.core import QgsApplication

captured = {"messages": [], "stack_dialogs": []}


def _on_message(message, tag, level):
    captured["messages"].append({"tag": tag, "level": int(level), "text": message[:4000]})


def _report_instead_of_dialog(type_, value, tb, msg, pop_error=True):
    text = f"{msg}\n{''.join(traceback.format_exception(type_, value, tb))}"
    captured["stack_dialogs"].append(text)
    print(f"[e2e preload] QGIS would open an error dialog:\n{text}", file=sys.stderr, flush=True)


QgsApplication.messageLog().messageReceived.connect(_on_message)
qgis.utils.open_stack_dialog = _report_instead_of_dialog
# startup.py runs later in the same interpreter and finds the captured data here.
qgis.utils.mapscribe_e2e_captured = captured
