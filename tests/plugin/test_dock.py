"""The MapScribe dock's logic against pytest-qgis's real QGIS: parameters gathered from the
widgets, the canvas and the layer tree; the canvas CRS kept with the visible extent (and the
tiles landing where the canvas shows); defaults from the model header; errors shown in the
dock; accessibility (names, tab order, keyboard use); loading without torch.

The captioning runs themselves (the QgsTask, cancel, resume, unload mid-run) are in
test_tasks.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytest_qgis.utils import process_events
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)

from mapscribe.model import BoundingBox, PolygonArea, WholeRaster, preview_tiles
from mapscribe.plugin.dock import MapScribeDock
from mapscribe.plugin.dock.output import default_output_path
from mapscribe.plugin.dock.request import CaptionRequest, engine_params
from plugin_helpers import (
    NAIP,
    REPO,
    RGB_BYTE,
    add_raster,
    raster_extent_in,
    set_canvas,
)


def use_model(dock: MapScribeDock, path) -> None:
    dock.select_model(str(path))
    assert dock.header is not None, dock.form.model_info.text()


# ---------------------------------------------------------------------------------------------
# Defaults from the model header, and errors shown in the dock
# ---------------------------------------------------------------------------------------------
def test_model_header_is_described_and_the_engine_says_what_the_tiles_are(
        dock, tiny_model_path, raster_copies):
    naip = add_raster(NAIP)
    dock.form.raster_combo.setLayer(naip)
    use_model(dock, tiny_model_path)
    # One line in the dock; the whole card behind "Full description…" (and as the line's
    # description for screen readers).
    info = dock.form.model_info.text()
    assert info.startswith("EfficientNet-Lite0 + LSTM, ") and "\n" not in info
    assert "words, trained on ucm-sample at ~0.3 m" in info
    card = dock.form.model_info.accessibleDescription()
    assert "Backbone efficientnet_lite0" in card and "Vocabulary" in card
    assert "Trained on ucm-sample" in card and "0.3 m per pixel" in card
    assert dock.form.details_button.isEnabled()
    dialog = dock.show_model_card()
    assert dialog.findChild(QPlainTextEdit).toPlainText() == card
    dialog.close()
    # The tile size field asks for the model's own tile, which the engine works out and the
    # dock shows: the tiny model sees 224 px at 0.3 m → 67.2 m, that is 13 whole pixels of
    # NAIP's 5 m (EPSG:26914, in metres).
    assert dock.form.tile_size_value() is None
    assert dock.form.tile_size.text() == "the model's own"
    assert dock.form.tile_size.suffix().strip() == "m"
    preview = dock.tile_preview
    assert preview == preview_tiles(raster_copies[NAIP], tiny_model_path, WholeRaster())
    assert preview.tile_size_pixels == (13, 13)  # 67.2 m / 5 m, rounded
    assert preview.tile_size_metres == pytest.approx((65.0, 65.0))
    assert "13 × 13 pixels" in dock.form.tile_info.text()
    assert "⚠" not in dock.form.tile_info.text()

    # RGB.byte.tif has ~300 m pixels: 67.2 m is a fraction of one; the dock says so at once,
    # in the engine's words.
    dock.form.raster_combo.setLayer(add_raster(RGB_BYTE))
    assert dock.form.tile_size_value() is None and dock.tile_preview is None
    tile_info = dock.form.tile_info.text()
    assert tile_info.startswith("⚠") and "tiles need at least 4 pixels a side" in tile_info
    dock.form.tile_size.setValue(50_000)
    assert dock.form.tile_size_value() == 50_000
    assert dock.tile_preview.tile_size_pixels == (167, 167)
    assert "167 × 167 pixels" in dock.form.tile_info.text()
    # The spin box's clear button goes back to the model's own tile.
    dock.form.tile_size.clear()
    assert dock.form.tile_size_value() is None
    assert "tiles need at least 4 pixels a side" in dock.form.tile_info.text()


def test_the_default_tile_goes_to_the_engine_as_the_model_s_own(dock, tiny_model_path,
                                                                tmp_path):
    dock.form.raster_combo.setLayer(add_raster(NAIP))
    use_model(dock, tiny_model_path)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.set_output_path(str(tmp_path / "out.gpkg"))
    request = dock.gather_request()
    assert request.tile_size is None
    assert engine_params(request).tile_size is None  # the engine decides, as it showed


def test_bad_model_files_are_explained_in_the_dock(dock, tmp_path):
    add_raster()
    not_a_model = tmp_path / "notes.mscap"
    not_a_model.write_text("this is text, not a model")
    dock.select_model(str(not_a_model))
    assert dock.header is None
    assert dock.form.model_info.text().startswith("⚠ This model cannot be used")
    assert "notes.mscap" in dock.form.model_info.text()

    pickle = tmp_path / "weights.mscap"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    dock.select_model(str(pickle))
    assert "pickle" in dock.form.model_info.text()

    # Run with it: a message in the status line, focus on the model field, no task.
    assert dock.run() is None
    assert dock.form.status.text().startswith("⚠ Cannot run: the model file")
    dock.select_model(str(tmp_path / "missing.mscap"))
    assert dock.run() is None
    assert "does not exist" in dock.form.status.text()


def test_no_model_and_no_raster_are_explained(dock):
    dock.select_model("")
    assert "Choose a model file" in dock.form.model_info.text()
    assert dock.run() is None
    assert "choose a raster layer" in dock.form.status.text()


# ---------------------------------------------------------------------------------------------
# Parameters gathered, and the canvas CRS
# ---------------------------------------------------------------------------------------------
def test_parameters_are_gathered_into_the_engine_params(dock, tiny_model_path, tmp_path,
                                                       raster_copies):
    layer = add_raster()
    dock.form.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.form.tile_size.setValue(38_400)
    dock.form.overlap.setValue(10)
    dock.form.batch_size.setValue(4)
    dock.form.beam.setValue(2)
    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    dock.set_output_path(str(tmp_path / "out.gpkg"))

    request = dock.gather_request()
    assert request == CaptionRequest(
        raster_path=str(raster_copies[RGB_BYTE]), raster_name="RGB.byte",
        model_path=str(tiny_model_path),
        area=WholeRaster(), tile_size=38_400.0, overlap_percent=10.0, batch_size=4,
        beam_size=2, device="cpu", output_path=str(tmp_path / "out.gpkg"), bands=(1, 2, 3))

    params = engine_params(request)
    assert (params.raster, params.model, params.output) == (str(raster_copies[RGB_BYTE]),
                                                            str(tiny_model_path),
                                                            str(tmp_path / "out.gpkg"))
    assert isinstance(params.area, WholeRaster)
    assert (params.tile_size, params.tile_size_unit) == (38_400.0, "map")
    assert (params.overlap, params.overlap_unit) == (10.0, "percent")
    assert (params.batch_size, params.beam_size, params.device) == (4, 2, "cpu")
    assert params.bands.bands == (1, 2, 3)
    assert not params.overwrite and not params.resume
    # The device list came from the engine (model/device.py), with the CPU in it.
    keys = [dock.form.device_combo.itemData(i) for i in range(dock.form.device_combo.count())]
    assert keys[0] == "auto" and "cpu" in keys


def test_the_bands_shown_on_the_map_are_the_bands_captioned(dock, tiny_model_path, tmp_path):
    layer = add_raster()
    renderer = layer.renderer().clone()
    renderer.setRedBand(3)
    renderer.setBlueBand(1)
    layer.setRenderer(renderer)
    dock.form.raster_combo.setLayer(layer)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    use_model(dock, tiny_model_path)
    dock.form.tile_size.setValue(38_400)
    dock.set_output_path(str(tmp_path / "out.gpkg"))
    assert dock.gather_request().bands == (3, 2, 1)


def test_visible_extent_keeps_the_canvas_crs_and_tiles_land_where_the_canvas_shows(
        dock, qgis_iface, tiny_model_path, tmp_path):
    """Canvas in Web Mercator over a UTM raster: the extent goes with EPSG:3857 and the engine's
    tiles (in the raster's CRS) cover what the canvas shows, and no more than a tile beyond."""
    layer = add_raster()
    canvas = qgis_iface.mapCanvas()
    set_canvas(canvas, "EPSG:3857", raster_extent_in(layer, "EPSG:3857"))
    dock.form.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    tile = 64 * layer.rasterUnitsPerPixelX()  # 64-pixel tiles
    dock.form.tile_size.setValue(tile)
    dock.set_output_path(str(tmp_path / "out.gpkg"))

    request = dock.gather_request()
    shown = canvas.extent()
    assert request.area == BoundingBox(shown.xMinimum(), shown.yMinimum(), shown.xMaximum(),
                                      shown.yMaximum(), "EPSG:3857")

    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.tiling import TileGridParams, plan_tiles

    params = engine_params(request)
    grid = plan_tiles(RasterInfo.from_path(RGB_BYTE), params.area,
                      TileGridParams(tile_size=params.tile_size, tile_size_unit="map"))
    # What the canvas shows, in the raster's CRS, computed by QGIS.
    to_raster = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                       QgsProject.instance())
    expected = to_raster.transformBoundingBox(shown).intersect(layer.extent())
    left = min(t.bounds[0] for t in grid.tiles)
    bottom = min(t.bounds[1] for t in grid.tiles)
    right = max(t.bounds[2] for t in grid.tiles)
    top = max(t.bounds[3] for t in grid.tiles)
    pixel = layer.rasterUnitsPerPixelX()
    # Covered entirely (to a pixel: tiles snap to the raster's pixel grid)...
    assert left <= expected.xMinimum() + pixel and bottom <= expected.yMinimum() + pixel
    assert right >= expected.xMaximum() - pixel and top >= expected.yMaximum() - pixel
    # ...and not spilling over by a tile or more (a wrong CRS would put it kilometres away).
    assert expected.xMinimum() - left < tile and expected.yMinimum() - bottom < tile
    assert right - expected.xMaximum() < tile and top - expected.yMaximum() < tile


def test_rotated_canvas_sends_its_visible_outline(dock, qgis_iface, tiny_model_path, tmp_path):
    layer = add_raster()
    canvas = qgis_iface.mapCanvas()
    set_canvas(canvas, "EPSG:3857", raster_extent_in(layer, "EPSG:3857"))
    canvas.setRotation(30)
    try:
        dock.form.raster_combo.setLayer(layer)
        use_model(dock, tiny_model_path)
        dock.form.tile_size.setValue(38_400)
        dock.set_output_path(str(tmp_path / "out.gpkg"))
        area = dock.gather_request().area
    finally:
        canvas.setRotation(0)
    assert isinstance(area, PolygonArea) and area.crs == "EPSG:3857"
    outline = QgsGeometry.fromWkt(area.geometries[0])
    # The rotated view is a rotated rectangle: its outline is smaller than its bounding box.
    assert outline.area() < 0.9 * outline.boundingBox().area()


def _polygon_layer(layer: QgsRasterLayer) -> QgsVectorLayer:
    """Two squares inside the raster, in EPSG:4326 (another CRS again)."""
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    to_4326 = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"),
                                     QgsProject.instance())
    extent = layer.extent()
    features = []
    for fx, fy in ((0.25, 0.25), (0.7, 0.6)):
        x = extent.xMinimum() + fx * extent.width()
        y = extent.yMinimum() + fy * extent.height()
        square = QgsRectangle(x, y, x + 40_000, y + 40_000)
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromRect(to_4326.transformBoundingBox(square)))
        features.append(feature)
    polygons.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(polygons)
    return polygons


def test_polygons_of_a_vector_layer_optionally_only_selected(dock, tiny_model_path, tmp_path):
    layer = add_raster()
    polygons = _polygon_layer(layer)
    dock.form.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    dock.form.tile_size.setValue(64 * layer.rasterUnitsPerPixelX())
    dock.set_output_path(str(tmp_path / "out.gpkg"))
    assert not dock.form.polygon_combo.isEnabled()
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("polygons"))
    assert dock.form.polygon_combo.isEnabled() and dock.form.selected_only.isEnabled()
    dock.form.polygon_combo.setLayer(polygons)

    area = dock.gather_request().area
    assert isinstance(area, PolygonArea) and area.crs == "EPSG:4326" and len(area.geometries) == 2

    dock.form.selected_only.setChecked(True)
    QApplication.setActiveWindow(dock)
    assert dock.run() is None  # nothing selected: said in the dock, focus on the layer to fix
    assert "no feature of 'fields' is selected" in dock.form.status.text()
    assert dock.form.polygon_combo.hasFocus()

    polygons.selectByIds([next(polygons.getFeatures()).id()])
    area = dock.gather_request().area
    assert len(area.geometries) == 1 and "selected" in area.source

    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.tiling import TileGridParams, plan_tiles

    grid = plan_tiles(RasterInfo.from_path(RGB_BYTE), engine_params(dock.gather_request()).area,
                      TileGridParams(tile_size=64, tile_size_unit="pixels"))
    # A 40 km square touches at most 2 × 2 tiles of 19 km (3 × 3 when it straddles edges).
    assert 1 <= len(grid.tiles) <= 9


# ---------------------------------------------------------------------------------------------
# The output: a default, and never an overwrite without asking
# ---------------------------------------------------------------------------------------------
def test_default_output_beside_the_project_or_in_a_temporary_folder(dock, tmp_path):
    layer = add_raster()
    dock.form.raster_combo.setLayer(layer)
    unsaved = Path(dock.output_path())
    assert unsaved.name.startswith("RGB.byte-captions") and unsaved.suffix == ".gpkg"
    assert unsaved.parent.name == "mapscribe"  # in the system's temporary folder

    QgsProject.instance().setFileName(str(tmp_path / "survey.qgz"))
    assert Path(dock.output_path()) == tmp_path / "RGB.byte-captions.gpkg"

    (tmp_path / "RGB.byte-captions.gpkg").write_bytes(b"")
    assert default_output_path("RGB.byte.tif", str(tmp_path / "survey.qgz")) == (
        tmp_path / "RGB.byte-captions-2.gpkg")

    # A path people typed stays theirs.
    dock.form.output_widget.setFilePath(str(tmp_path / "mine.gpkg"))
    QgsProject.instance().setFileName(str(tmp_path / "other" / "survey.qgz"))
    assert dock.output_path() == str(tmp_path / "mine.gpkg")


@pytest.fixture(scope="module")
def finished_grid(tiny_model_path, tmp_path_factory):
    """A complete captions GeoPackage of 4 tiles (the engine, without QGIS)."""
    from mapscribe.model.geo.areas import BoundingBox
    from mapscribe.model.jobs.caption import caption_raster
    from mapscribe.model.jobs.caption_params import CaptionRasterParams

    out = tmp_path_factory.mktemp("existing") / "grid.gpkg"
    box = BoundingBox(-78.0, 24.0, -77.6, 24.4, "EPSG:4326")
    caption_raster(CaptionRasterParams(raster=RGB_BYTE, model=tiny_model_path, output=out,
                                       area=box, tile_size=128, tile_size_unit="pixels",
                                       beam_size=1, device="cpu"))
    return out


def _dock_writing_to(dock, model, output: Path) -> None:
    dock.form.raster_combo.setLayer(add_raster())
    use_model(dock, model)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.form.tile_size.setValue(38_400)
    dock.set_output_path(str(output))


def test_existing_captions_are_never_overwritten_silently(dock, tiny_model_path,
                                                          finished_grid, tmp_path):
    output = tmp_path / "grid.gpkg"
    output.write_bytes(finished_grid.read_bytes())
    _dock_writing_to(dock, tiny_model_path, output)
    request = dock.gather_request()

    dock.form.existing_combo.setCurrentIndex(dock.form.existing_combo.findData("new"))
    changed, mode = dock.decide_existing(request)
    assert mode == "create" and changed.output_path == str(tmp_path / "grid-2.gpkg")
    assert dock.output_path() == str(tmp_path / "grid-2.gpkg")

    for choice in ("resume", "replace"):
        dock.form.existing_combo.setCurrentIndex(dock.form.existing_combo.findData(choice))
        assert dock.decide_existing(request) == (request, choice)

    # "Ask me": a real question box; answering Cancel leaves everything as it was.
    dock.form.existing_combo.setCurrentIndex(dock.form.existing_combo.findData("ask"))
    asked = []

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        asked.append(box.text())
        box.button(QMessageBox.Cancel).click()

    QTimer.singleShot(20, answer)
    dock.set_output_path(str(output))
    assert dock.run() is None
    assert asked and "already holds captions of RGB.byte.tif: all 4 tiles" in asked[0]
    assert "left as it is" in dock.form.status.text()
    assert output.read_bytes() == finished_grid.read_bytes()


# ---------------------------------------------------------------------------------------------
# Accessibility and keyboard use
# ---------------------------------------------------------------------------------------------
def _owner(widget: QWidget) -> QWidget:
    """The control a focused widget belongs to (a spin box's or combo box's inner editor)."""
    parent = widget.parentWidget()
    if isinstance(parent, (QAbstractSpinBox, QComboBox)):
        return parent
    return widget


def _focus_walk(dock: MapScribeDock, start: QWidget, presses: int) -> list:
    QApplication.setActiveWindow(dock)
    dock.activateWindow()
    start.setFocus(Qt.TabFocusReason)
    process_events()
    visited = [_owner(QApplication.focusWidget())]
    for _ in range(presses):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key_Tab)
        process_events()
        visited.append(_owner(QApplication.focusWidget()))
    return visited


def test_every_focusable_control_has_an_accessible_name_and_description(dock):
    add_raster()
    dock.tabs.setCurrentIndex(0)
    process_events()
    focusable = [w for w in dock.findChildren(QWidget)
                 if w.isVisibleTo(dock) and w.focusPolicy() & Qt.TabFocus
                 and not isinstance(w.parentWidget(), (QAbstractSpinBox, QComboBox))
                 and w.parentWidget() is not None and not w.isWindow()]
    assert len(focusable) >= 20
    unnamed = [f"{type(w).__name__} {w.objectName()!r}" for w in focusable
               if not w.accessibleName()]
    assert unnamed == []
    controls = [w for w in dock.form.focus_chain() if not isinstance(w, type(dock.form.status))]
    undescribed = [w.accessibleName() for w in controls if not w.accessibleDescription()]
    assert undescribed == []


def test_tab_order_follows_the_form_and_run_is_reached_and_pressed_by_keyboard(
        dock, tiny_model_path):
    dock.form.raster_combo.setLayer(add_raster())
    use_model(dock, tiny_model_path)
    chain = [w for w in dock.form.focus_chain() if w.isEnabled() and w.isVisibleTo(dock)]
    visited = _focus_walk(dock, dock.form.raster_combo, len(chain) - 1)
    assert [w.accessibleName() for w in visited] == [w.accessibleName() for w in chain]
    assert dock.form.run_button in visited

    # From the raster combo, Tab until Run has focus, then Space presses it.
    visited = _focus_walk(dock, dock.form.raster_combo, chain.index(dock.form.run_button))
    assert QApplication.focusWidget() is dock.form.run_button
    dock.form.tile_size.setValue(67.2)  # too small for RGB.byte.tif: Run must say so
    QTest.keyClick(dock.form.run_button, Qt.Key_Space)
    assert "tiles need at least 4 pixels a side" in dock.form.status.text()
    # Focus went to the field to fix.
    assert _owner(QApplication.focusWidget()) is dock.form.tile_size


def test_alt_shortcuts_jump_to_their_fields(dock):
    QApplication.setActiveWindow(dock)
    dock.form.run_button.setFocus()
    process_events()
    QTest.keyClick(dock.form.run_button, Qt.Key_Z, Qt.AltModifier)  # "Tile si&ze"
    assert _owner(QApplication.focusWidget()) is dock.form.tile_size
    QTest.keyClick(QApplication.focusWidget(), Qt.Key_M, Qt.AltModifier)  # "&Model file"
    assert QApplication.focusWidget() is dock.form.model_widget.lineEdit()


# ---------------------------------------------------------------------------------------------
# Start-up cost and a QGIS without torch
# ---------------------------------------------------------------------------------------------
_LOAD_SCRIPT = textwrap.dedent("""
    import os, sys
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtWidgets import QMainWindow, QWidget
    import mapscribe
    from mapscribe.plugin.dock import MapScribeDock
    plugin = mapscribe.classFactory(None)
    plugin.initProcessing()
    window = QMainWindow()
    dock = MapScribeDock(None, window)
    print("torch after load:", "torch" in sys.modules)
    dock.setFloating(True)
    dock.show()
    app.processEvents()
    panel = dock.form.findChild(QWidget, "MapScribeDependencies")
    print("panel:", panel.objectName() if panel else "", "|",
          panel.accessibleName() if panel else "")
    print("run visible:", dock.form.run_button.isVisible())
    dock.run()
    print("status:", dock.form.status.text())
    print("model info:", dock.form.model_info.text())
    dock.shutdown()
    plugin.unload()
    app.exitQgis()
""")


def _run_script(python: str, env_extra: dict, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update({"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}, **env_extra)
    done = subprocess.run([python, "-c", _LOAD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_loading_the_plugin_and_building_the_dock_do_not_import_torch(tmp_path):
    out = _run_script(sys.executable, {}, tmp_path)
    assert "torch after load: False" in out
    assert "panel: " in out and "MapScribeDependencies" not in out  # torch is there: Run


def test_without_torch_the_dock_shows_what_is_missing_instead_of_run(tmp_path):
    """Debian's own Python has QGIS but not torch: a real QGIS Python without torch."""
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("/usr/bin/python3 can import torch: no torch-less Python here")
    # The plugin folder is the package `mapscribe`: give that Python a path to it by that name.
    packages = tmp_path / "site"
    packages.mkdir()
    (packages / "mapscribe").symlink_to(REPO)
    out = _run_script(system_python, {"PYTHONPATH": str(packages)}, tmp_path)
    assert "torch after load: False" in out
    assert "panel: MapScribeDependencies" in out
    assert "run visible: True" in out  # Run stays in sight, and says what to do
    assert "status: ⚠ Install the missing Python packages first" in out
    # The model is described all the same: its header needs no package.
    assert "model info: EfficientNet-Lite0 + LSTM, 1114 words" in out


def test_every_alt_shortcut_of_a_tab_leads_to_one_control(dock):
    dock.form.resume_button.setVisible(True)  # shown after a stopped run: must not clash either
    # The dependency panel (shown where packages are missing) must not clash either.
    panel = dock.form.show_dependency_panel(["onnxruntime"])
    try:
        for page in (dock.tabs.widget(0), dock.captions_panel):
            letters = [re.search(r"&(\w)", w.text()).group(1).lower()
                       for w in page.findChildren((QLabel, QAbstractButton)) if "&" in w.text()]
            assert len(letters) > 3 and len(set(letters)) == len(letters), sorted(letters)
    finally:
        dock.form.show_run_again(panel)


def test_train_button_opens_the_training_dialog_whose_model_is_chosen_here(dock, tmp_path):
    from mapscribe.plugin.training import dialog as train_dialog

    dock.form.train_button.click()
    dialog = next(d for d in train_dialog._OPEN_DIALOGS if d.isVisible())
    try:
        new_model = tmp_path / "fresh.mscap"
        dialog.on_model_ready(str(new_model))  # what the dialog calls after a training
        assert dock.model_path() == str(new_model)
    finally:
        train_dialog.close_all_train_dialogs()
        process_events()


# ---------------------------------------------------------------------------------------------
# The default tile is the engine's, on every kind of CRS
# ---------------------------------------------------------------------------------------------
def _raster_at(folder: Path, crs: str, latitude: float, metres_per_pixel: float = 0.3,
               size: int = 600) -> Path:
    """A small RGB GeoTIFF centred at ``latitude`` whose pixels are about ``metres_per_pixel``
    on the ground, in ``crs`` (geographic, Web Mercator or UTM)."""
    import math

    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform as reproject_points

    if crs == "EPSG:4326":
        x_res = metres_per_pixel / (111_320.0 * math.cos(math.radians(latitude)))
        y_res = metres_per_pixel / 110_574.0
    elif crs == "EPSG:3857":  # a map unit is 1/cos(latitude) ground metres
        x_res = y_res = metres_per_pixel / math.cos(math.radians(latitude))
    else:
        x_res = y_res = metres_per_pixel
    xs, ys = reproject_points("EPSG:4326", crs, [9.0], [latitude])
    path = folder / f"{crs.replace(':', '_')}_{latitude:g}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3,
                       dtype="uint8", crs=crs,
                       transform=from_origin(xs[0] - size / 2 * x_res, ys[0] + size / 2 * y_res,
                                             x_res, y_res)) as raster:
        raster.write(np.full((3, size, size), 120, dtype="uint8"))
    return path


@pytest.mark.parametrize("crs, latitude", [
    ("EPSG:4326", 0.0), ("EPSG:4326", 45.0), ("EPSG:4326", 60.0),
    ("EPSG:3857", 0.0), ("EPSG:3857", 45.0), ("EPSG:3857", 60.0),
    ("EPSG:32632", 0.0), ("EPSG:32632", 45.0), ("EPSG:32632", 60.0)])
def test_the_default_tile_shown_is_the_engine_s_on_every_crs(dock, tiny_model_path, tmp_path,
                                                             crs, latitude):
    """The tiny model sees 224 px at 0.3 m: 67.2 m on the ground, whatever the raster's CRS (at
    60°N a degree of longitude is half a degree of latitude, and a Web Mercator unit half a
    metre); the dock shows exactly what the engine (and so the command line) will cut."""
    path = _raster_at(tmp_path, crs, latitude)
    layer = QgsRasterLayer(str(path), path.stem)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    dock.form.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    assert dock.form.tile_size_value() is None
    preview = dock.tile_preview
    assert preview == preview_tiles(path, tiny_model_path, WholeRaster())
    assert preview.tile_size_metres == pytest.approx((67.2, 67.2), rel=0.02)
    assert preview.tile_size_pixels == pytest.approx((224, 224), abs=2)
    width, height = preview.tile_size_pixels
    assert f"{width} × {height} pixels" in dock.form.tile_info.text()


# ---------------------------------------------------------------------------------------------
# The model in one line, the run's tiles and time, the progress bar after a refused run
# ---------------------------------------------------------------------------------------------
def test_the_default_model_in_one_line_and_its_card_with_integers(dock):
    assert Path(dock.model_path()) == REPO / "resources" / "default.mscap"
    assert dock.form.model_info.text() == (
        "EfficientNet-Lite0 + LSTM, 1114 words, trained on UCM + RSICD at ~0.5 m; "
        "RSICD test BLEU-4 0.45")
    card = dock.form.model_info.accessibleDescription()
    # Counts read as counts, scores with their decimals.
    assert "images 210, beam 3" in card and "images 1094, beam 3" in card
    assert "210.000" not in card and "BLEU-4 0.448" in card


def test_before_run_the_dock_says_how_many_tiles_and_how_long(dock, tiny_model_path):
    layer = add_raster(NAIP)
    dock.form.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.form.tile_size.setValue(500)
    expected = preview_tiles(layer.source(), tiny_model_path, WholeRaster(), tile_size=500,
                             tile_size_unit="map", overlap=float(dock.form.overlap.value()),
                             overlap_unit="percent").tiles
    from mapscribe.model import estimate_caption_time

    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    text = dock.form.estimate.text()
    seconds = estimate_caption_time(expected, dock.runtime, "cpu").seconds
    assert text.startswith(f"Run will caption {expected} tiles with PyTorch on the CPU: about ")
    assert "(at the speed measured on a 2-core CPU, beam 3)" in text
    assert seconds is not None and dock.info.run_tiles == expected
    # The estimate is the run bar's, outside the scrolled form: always in sight.
    assert not dock.scroll.widget().isAncestorOf(dock.form.estimate)
    assert not dock.scroll.widget().isAncestorOf(dock.form.run_button)


def test_a_refused_run_resets_the_progress_bar(dock, tiny_model_path):
    dock.form.raster_combo.setLayer(add_raster(RGB_BYTE))
    use_model(dock, tiny_model_path)
    dock.form.progress.setValue(60)  # what an earlier run left
    dock.form.tile_size.setValue(67.2)  # too small for RGB.byte.tif
    assert dock.run() is None
    assert dock.form.progress.value() == 0
    assert dock.form.status.text().startswith("⚠ Cannot run:")


_ONNX_ONLY_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.modules["torch"] = None  # torch cannot be imported: only ONNX Runtime can caption
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.PyQt.QtWidgets import QMainWindow
    from mapscribe.plugin.dock import MapScribeDock
    window = QMainWindow()
    dock = MapScribeDock(None, window)
    dock.setFloating(True)
    dock.show()
    deadline = time.monotonic() + 60
    while not dock.engine_ready and time.monotonic() < deadline:
        app.processEvents(); time.sleep(0.05)
    layer = QgsRasterLayer(sys.argv[1], "rgb")
    QgsProject.instance().addMapLayer(layer)
    dock.form.raster_combo.setLayer(layer)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.form.tile_size.setValue(100000)
    dock.set_output_path(sys.argv[2])
    seen = {"runtime": dock.runtime, "estimate": dock.form.estimate.text(),
            "devices": [dock.form.device_combo.itemText(i)
                        for i in range(dock.form.device_combo.count())],
            "model": dock.form.model_info.text()}
    task = dock.run()
    while dock.is_running() and time.monotonic() < deadline + 120:
        app.processEvents(); time.sleep(0.05)
    app.processEvents()
    result = task.result
    seen.update({"status": dock.form.status.text(), "device": result.device if result else None,
                 "captioned": result.captioned if result else None,
                 "torch": sys.modules.get("torch") is not None})
    dock.shutdown()
    print(json.dumps(seen))
    app.exitQgis()
""")


def test_without_torch_but_with_onnxruntime_the_dock_captions_with_onnx(tmp_path):
    """torch made unimportable in a fresh QGIS Python that has onnxruntime: the dock lists
    ONNX Runtime's devices, says it captions with ONNX Runtime, and captions."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update({"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)})
    done = subprocess.run([sys.executable, "-c", _ONNX_ONLY_SCRIPT, str(RGB_BYTE),
                           str(tmp_path / "grid.gpkg")], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["runtime"] == "onnx" and not seen["torch"], seen
    assert seen["devices"][0].startswith("Automatic") and seen["devices"][-1].startswith("CPU")
    assert "with ONNX Runtime (torch is not installed) on the CPU: about" in seen["estimate"]
    assert seen["model"].startswith("EfficientNet-Lite0 + LSTM, 1114 words")
    assert seen["device"].startswith("cpu (ONNX Runtime "), seen
    assert seen["captioned"] >= 1 and seen["status"].startswith("Done:"), seen
