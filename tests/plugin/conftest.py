"""Fixtures the plugin tests share: a fresh project, copies of the test rasters, the dock
shown with its engine loaded, the map canvas shown, captions layers of known layout (mosaics),
and what QGIS's log and Python's excepthook receive."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pytest_qgis.utils import process_events, wait_until
from qgis.core import QgsApplication, QgsProject

from mapscribe.plugin.dock import MapScribeDock
from plugin_helpers import copy_rasters


@pytest.fixture(scope="session", autouse=True)
def raster_copies(tmp_path_factory):
    """Copies of the test rasters (see plugin_helpers), made once per session."""
    return copy_rasters(tmp_path_factory.mktemp("rasters"))


@pytest.fixture(autouse=True)
def no_uncaught_qt_errors(monkeypatch):
    """An exception raised in Python code that Qt or QGIS called (a slot, a provider's
    loadAlgorithms, a task's run) fails the test that caused it, with its traceback. Without
    an excepthook PyQt aborts the whole process instead ("Fatal Python error: Aborted")."""
    import traceback

    caught = []

    def hook(kind, value, trace):
        caught.append("".join(traceback.format_exception(kind, value, trace)))
        sys.__stderr__.write(caught[-1])

    monkeypatch.setattr(sys, "excepthook", hook)
    yield
    assert not caught, "an exception in code Qt called:\n" + "\n".join(caught)


@pytest.fixture
def project(qgis_iface):
    """A fresh project with a saved-nowhere file name."""
    qgis_iface.newProject()
    project = QgsProject.instance()
    project.setFileName("")
    yield project
    qgis_iface.newProject()
    process_events()


@pytest.fixture
def dock(qgis_iface, qgis_parent, project):
    """The dock, floating in its own window and shown (as the user opens it), engine loaded."""
    widget = MapScribeDock(qgis_iface, qgis_parent)
    widget.setFloating(True)
    widget.resize(420, 900)
    widget.show()
    assert wait_until(lambda: widget.engine_ready, timeout_milliseconds=20_000), (
        widget.form.status.text())
    yield widget
    widget.shutdown()
    widget.close()
    widget.deleteLater()
    process_events()


@pytest.fixture
def messages():
    """Everything QGIS's message log receives during the test: (tag, level, text)."""
    received = []

    def record(text, tag, level):
        received.append((tag, level, text))

    log = QgsApplication.messageLog()
    log.messageReceived.connect(record)
    yield received
    log.messageReceived.disconnect(record)


@pytest.fixture
def python_errors(monkeypatch):
    """Exceptions raised in Qt slots/callbacks (PyQt hands them to sys.excepthook)."""
    caught = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: caught.append(info))
    return caught


@pytest.fixture
def shown_canvas(qgis_iface, qgis_parent):
    """The map canvas shown in its window, 800 pixels wide, as people see it in QGIS: a canvas
    never shown keeps map settings of a few pixels, where no label fits."""
    canvas = qgis_iface.mapCanvas()
    qgis_parent.resize(800, 600)
    qgis_parent.show()
    canvas.resize(800, 600)
    process_events()
    yield canvas
    qgis_parent.hide()
    process_events()


@pytest.fixture
def mosaics(monkeypatch):
    """tests/model/mosaics.py, the engine tests' captions layers of known layout (blocks of
    real captions placed where a test says), importable for a plugin test."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "model"))
    import mosaics

    return mosaics
