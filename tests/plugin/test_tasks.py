"""Captioning runs from the dock: the real caption_raster on tests/data/RGB.byte.tif with the
tiny model, inside a QgsTask of QGIS's task manager, waited for with an event loop.

Checked: the layer is added to the "MapScribe" group, styled, with every tile and its caption;
the progress bar moves per batch; the captions panel reads the tiles in reading order, moves the
map with the keyboard, copies and exports; Cancel half-way keeps the committed tiles and Resume
finishes them into the same layer; engine errors reach the message bar and the MapScribe log
tab; unloading the plugin while a run goes cancels it without a crash or a stray signal.
"""

from __future__ import annotations

import csv
import json

import pytest
from pytest_qgis.utils import process_events, wait_until
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsProject,
    QgsRectangle,
    QgsTask,
    QgsVectorLayer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QFileDialog

from mapscribe.plugin import layers
from mapscribe.plugin.plugin import MapScribePlugin
from mapscribe.plugin.tasks import running_tasks
from plugin_helpers import add_raster, set_canvas

TILE_128_PX = 128 * 300.0379266750948  # RGB.byte.tif: 6 rows × 7 columns of 128-pixel tiles
RUN_TIMEOUT_MS = 120_000


def configure(dock, model, output, *, batch=8, area="layer", beam=1):
    dock.form.raster_combo.setLayer(add_raster())
    dock.select_model(str(model))
    assert dock.header is not None, dock.form.model_info.text()
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData(area))
    dock.form.tile_size.setValue(TILE_128_PX)
    dock.form.batch_size.setValue(batch)
    dock.form.beam.setValue(beam)
    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    dock.set_output_path(str(output))


def wait_for_run(dock, task):
    finished = []
    dock.runFinished.connect(finished.append)
    try:
        assert wait_until(lambda: bool(finished), timeout_milliseconds=RUN_TIMEOUT_MS), (
            f"the run did not finish: {dock.form.status.text()}")
    finally:
        dock.runFinished.disconnect(finished.append)
    assert finished == [task]
    return task


def features(layer: QgsVectorLayer):
    return sorted(((f["tile_id"], f["caption"], f["status"]) for f in layer.getFeatures()),
                  key=lambda row: row[0])


# ---------------------------------------------------------------------------------------------
def test_run_adds_a_styled_layer_in_the_mapscribe_group_and_lists_the_captions(
        dock, qgis_iface, tiny_model_path, tmp_path, messages):
    output = tmp_path / "grid.gpkg"
    configure(dock, tiny_model_path, output)
    seen_progress = []
    dock.form.progress.valueChanged.connect(seen_progress.append)

    dock.form.run_button.click()
    task = dock.task
    assert task is not None and dock.form.cancel_button.isEnabled()
    assert not dock.form.run_button.isEnabled()
    assert task in QgsApplication.taskManager().tasks()
    wait_for_run(dock, task)

    result = task.result
    assert task.error is None and result is not None and result.stopped == "completed"
    assert (result.tiles_total, result.captioned + result.nodata) == (42, 42)
    # The progress bar moved per batch (42 tiles in batches of 8: several steps), up to 100.
    assert len(set(seen_progress)) >= 3 and dock.form.progress.value() == 100
    assert len(task.progress_updates) >= 3
    assert dock.form.run_button.isEnabled() and not dock.form.cancel_button.isEnabled()
    assert dock.form.status.text().startswith("Done: 42 tiles")

    group = QgsProject.instance().layerTreeRoot().findGroup("MapScribe")
    assert group is not None
    (layer,) = [node.layer() for node in group.findLayers()]
    assert layers.is_captions_layer(layer) and layer.featureCount() == 42
    rows = features(layer)
    assert [tile_id for tile_id, _, _ in rows] == list(range(42))
    captioned = [caption for _, caption, status in rows if status != "nodata"]
    assert len(captioned) == result.captioned > 10
    assert all(isinstance(c, str) and len(c.split()) >= 2 for c in captioned)
    # The style: rule-based outlines, caption labels (an uncertain one said so), map tips.
    assert layer.renderer().type() == "RuleRenderer" and layer.labelsEnabled()
    settings = layer.labeling().settings()
    assert settings.isExpression and settings.autoWrapLength == 24
    assert settings.fieldName.count('"caption"') == 2 and "(uncertain)" in settings.fieldName
    # One level: labelled at every scale, the one the view is left at after Run included
    # (test_describe_area.py renders it); QGIS leaves out labels that would overlap.
    assert not settings.scaleVisibility
    assert '"caption"' in layer.mapTipTemplate() and '"score"' in layer.mapTipTemplate()
    assert "caption" in layer.displayExpression()

    # Reported to the message bar and the "MapScribe" log tab.
    assert any("42" in m or "tiles captioned" in m
               for m in qgis_iface.messageBar().get_messages(Qgis.Success))
    assert any(tag == "MapScribe" and "tiles captioned" in text for tag, _, text in messages)

    # The captions panel lists them, north to south and west to east.
    panel = dock.captions_panel
    assert panel.layer is layer and len(panel.entries) == 42
    assert panel.tree.proxy.rowCount(panel.tree.proxy.index(1, 0)) == 42  # under "Tiles"
    entries = panel.entries
    assert [(e.row, e.col) for e in entries] == [(r, c) for r in range(6) for c in range(7)]
    assert entries[1].text().startswith("Row 1, column 2: ")


def test_keyboard_navigation_pans_copy_and_export(dock, qgis_iface, tiny_model_path,
                                                  tmp_path, monkeypatch):
    output = tmp_path / "grid.gpkg"
    configure(dock, tiny_model_path, output)
    canvas = qgis_iface.mapCanvas()
    set_canvas(canvas, "EPSG:3857", QgsRectangle(-8.7e6, 2.75e6, -8.6e6, 2.85e6))
    wait_for_run(dock, dock.run())
    panel = dock.captions_panel
    dock.tabs.setCurrentWidget(panel)
    QApplication.setActiveWindow(dock)
    # The run is described (the regions come above the tiles) before the tree is walked.
    assert wait_until(lambda: panel.describe_task is None and panel.description is not None,
                      timeout_milliseconds=RUN_TIMEOUT_MS)
    panel.tree.setFocus()
    panel.tree.setCurrentIndex(panel.tree.proxy.index(1, 0))  # the heading "Tiles: 42, …"
    process_events()

    to_canvas = QgsCoordinateTransform(panel.layer.crs(), canvas.mapSettings().destinationCrs(),
                                       QgsProject.instance())
    # From the tiles' heading, the arrow keys and End move through the tiles.
    for key, expected_row in ((Qt.Key_Down, 0), (Qt.Key_Down, 1), (Qt.Key_Down, 2),
                              (Qt.Key_End, 41), (Qt.Key_Up, 40)):
        QTest.keyClick(panel.tree, key)
        process_events()
        assert panel.entries.index(panel.current_entry()) == expected_row
        entry = panel.entries[expected_row]
        centre = to_canvas.transform(entry.geometry.centroid().asPoint())
        assert canvas.center().x() == pytest.approx(centre.x(), abs=1.0)
        assert canvas.center().y() == pytest.approx(centre.y(), abs=1.0)
        assert f"tile {entry.tile_id}," in panel.details.text()
    # Home: the top of the tree, the regions' heading (the map stays where it is).
    QTest.keyClick(panel.tree, Qt.Key_Home)
    assert panel.current_entry() is None and panel.details.text().startswith("Regions: ")

    # Copy caption: the clipboard holds the current tile's caption (a tile that has one).
    captioned_row = next(i for i, e in enumerate(panel.entries) if e.caption)
    assert panel.tree.select("tile", panel.entries[captioned_row].fid)
    QTest.keyClick(panel.copy_button, Qt.Key_Space)
    assert QApplication.clipboard().text() == panel.entries[captioned_row].caption

    # Export: each format written and readable.
    written = {fmt: panel.export(fmt, tmp_path / f"export.{fmt}")
               for fmt in ("gpkg", "geojson", "csv", "html")}
    assert all(path is not None and path.stat().st_size > 0 for path in written.values()), (
        panel.details.text())
    copy = QgsVectorLayer(f"{written['gpkg']}|layername=captions", "copy", "ogr")
    assert copy.isValid() and copy.featureCount() == 42
    geojson = json.loads(written["geojson"].read_text())
    assert len(geojson["features"]) == 42
    with open(written["csv"], newline="") as stream:
        table = list(csv.DictReader(stream))
    assert len(table) == 42 and table[captioned_row]["caption"] is not None
    report = written["html"].read_text()
    assert "<h1>Captions of RGB.byte.tif</h1>" in report and report.count("<li id=\"tile-") == 42
    # Refused, not raised: the copy would replace its own source.
    assert panel.export("gpkg", output) is None
    assert "replace the GeoPackage it is made from" in panel.details.text()
    # The suffix typed in the dialog wins over its filter: no HTML written into a .csv.
    typed = tmp_path / "typed.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *args, **kwargs: (str(typed), "HTML report for reading (*.html)"))
    assert panel.export_dialog() == typed
    assert typed.read_text().startswith("tile_id,row,col,caption")


def test_cancel_half_way_keeps_the_tiles_and_resume_finishes_them(
        dock, qgis_iface, tiny_model_path, tmp_path):
    output = tmp_path / "grid.gpkg"
    # Small batches and a wide beam: the run lasts long enough to be stopped half-way.
    configure(dock, tiny_model_path, output, batch=2, beam=4)
    task = dock.run()
    # Cancel once the first batch is committed.
    assert wait_until(lambda: bool(task.progress_updates), timeout_milliseconds=RUN_TIMEOUT_MS)
    QTest.keyClick(dock.form.cancel_button, Qt.Key_Space)
    wait_for_run(dock, task)

    result = task.result
    assert result.stopped == "cancelled" and 2 <= result.processed < 42  # whole batches of 2
    layer = layers.find_caption_layer(output, "captions")
    assert layer is not None and layer.featureCount() == result.processed
    assert dock.form.resume_button.isVisible() and "Press Resume" in dock.form.status.text()
    assert dock.form.progress.value() == 0  # the bar starts again; the status says what is kept
    warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert any("stopped" in m and "Resume" in m for m in warnings)
    partial = features(layer)

    resumed = dock.resume()
    wait_for_run(dock, resumed)
    assert resumed.result.stopped == "completed"
    assert resumed.result.skipped_existing == result.processed
    assert resumed.result.processed == 42 - result.processed
    (layer,) = layers.caption_layers()  # the same layer shown again, not a second one
    assert layer.featureCount() == 42
    # The tiles captioned before the cancel are kept as they were.
    assert set(partial) <= set(features(layer))
    assert not dock.form.resume_button.isVisible()
    assert len(dock.captions_panel.entries) == 42


def test_engine_errors_go_to_the_message_bar_and_the_log(dock, qgis_iface, tiny_model_path,
                                                        tmp_path, messages):
    configure(dock, tiny_model_path, tmp_path / "grid.gpkg", area="extent")
    # The canvas shows the other side of the world from the raster.
    set_canvas(qgis_iface.mapCanvas(), "EPSG:3857", QgsRectangle(1.0e7, -4.0e6, 1.1e7, -3.9e6))
    task = wait_for_run(dock, dock.run())
    assert task.result is None and "does not overlap raster" in task.error
    assert dock.form.status.text().startswith("⚠ Failed:")
    critical = qgis_iface.messageBar().get_messages(Qgis.Critical)
    assert any("does not overlap" in m and "MapScribe tab of the log" in m for m in critical)
    assert any(tag == "MapScribe" and level == Qgis.Critical and "does not overlap" in text
               for tag, level, text in messages)
    assert layers.caption_layers() == []


def test_unload_while_a_run_goes_cancels_it_without_a_crash(qgis_iface, qgis_parent, project,
                                                            tiny_model_path, tmp_path,
                                                            python_errors):
    plugin = MapScribePlugin(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    qgis_parent.show()
    plugin.action.trigger()  # the user opens the dock: the engine gets loaded
    assert wait_until(lambda: dock.engine_ready, timeout_milliseconds=RUN_TIMEOUT_MS)
    configure(dock, tiny_model_path, tmp_path / "grid.gpkg", batch=2, beam=4)
    task = dock.run()
    # Unload mid-run: after the first committed batch, with many batches to go.
    assert wait_until(lambda: bool(task.progress_updates), timeout_milliseconds=RUN_TIMEOUT_MS)
    assert task.status() == QgsTask.Running

    plugin.unload()  # cancels and waits for the batch in hand
    assert task.isCanceled()
    assert task.result is not None, "unload() returned before the run reached its batch's end"
    assert wait_until(lambda: task not in running_tasks(), timeout_milliseconds=RUN_TIMEOUT_MS)
    process_events()  # deleteLater() of the dock, queued progress signals
    assert sip.isdeleted(dock)
    assert python_errors == []  # no slot ran on a deleted widget
    # The run stopped after its batch in hand, its committed tiles kept.
    assert task.result.stopped == "cancelled" and 2 <= task.result.processed < 42
    assert layers.caption_layers() == []  # the dock was gone: no layer added behind the user
    qgis_parent.hide()
