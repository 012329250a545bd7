"""The MapScribe dock's logic against pytest-qgis's real QGIS: parameters gathered from the
widgets, the canvas and the layer tree; the canvas CRS kept with the visible extent (and the
tiles landing where the canvas shows); defaults from the model header; errors shown in the
dock; accessibility (names, tab order, keyboard use); loading without torch.

The captioning runs themselves (the QgsTask, cancel, resume, unload mid-run) are in
test_tasks.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytest_qgis.utils import process_events, wait_until
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature,
                       QgsGeometry, QgsProject, QgsRasterLayer, QgsRectangle, QgsVectorLayer)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox,
                                 QLabel, QMessageBox, QWidget)

from mapscribe.plugin.dock import MapScribeDock
from mapscribe.model.geo.areas import BoundingBox, PolygonArea, WholeRaster
from mapscribe.plugin.parameters import CaptionRequest, default_output_path, engine_params

REPO = Path(__file__).resolve().parents[2]
RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"  # EPSG:32618, 791 × 718 px of ~300 m
NAIP = REPO / "tests" / "data" / "naip_m_4709963_se_14_1_20200831_5m.tif"  # EPSG:26914, 5 m


# ---------------------------------------------------------------------------------------------
# Fixtures (test_tasks.py imports them)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def project(qgis_iface):
    """A fresh project with a saved-nowhere file name and the canvas in EPSG:32618."""
    qgis_iface.newProject()
    project = QgsProject.instance()
    project.setFileName("")
    yield project
    qgis_iface.newProject()
    process_events()


_COPIES: dict = {}


@pytest.fixture(scope="session", autouse=True)
def raster_copies(tmp_path_factory):
    """Copies of the test rasters: QGIS computes band statistics when it shows a raster and
    writes them beside it (.aux.xml); tests/data must stay as committed."""
    folder = tmp_path_factory.mktemp("rasters")
    for source in (RGB_BYTE, NAIP):
        copy = folder / source.name
        shutil.copyfile(source, copy)
        _COPIES[source] = copy
    return _COPIES


def add_raster(path: Path = RGB_BYTE) -> QgsRasterLayer:
    """Add (a copy of) the raster ``path`` to the project."""
    path = _COPIES.get(path, path)
    layer = QgsRasterLayer(str(path), path.stem)
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def dock(qgis_iface, qgis_parent, project):
    """The dock, floating in its own window and shown (as the user opens it), engine loaded."""
    widget = MapScribeDock(qgis_iface, qgis_parent)
    widget.setFloating(True)
    widget.resize(420, 900)
    widget.show()
    assert wait_until(lambda: widget.engine_ready, timeout_milliseconds=20_000), (
        widget.status.text())
    yield widget
    widget.shutdown()
    widget.close()
    widget.deleteLater()
    process_events()


def use_model(dock: MapScribeDock, path) -> None:
    dock.select_model(str(path))
    assert dock.header is not None, dock.model_info.text()


def set_canvas(canvas, crs: str, extent: QgsRectangle) -> None:
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem(crs))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    canvas.setExtent(extent)
    canvas.refresh()
    process_events()


def raster_extent_in(layer: QgsRasterLayer, crs: str, shrink: float = 0.3) -> QgsRectangle:
    """The middle of the raster (without ``shrink`` of each side), in ``crs``."""
    transform = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem(crs),
                                       QgsProject.instance())
    extent = layer.extent()
    inner = QgsRectangle(extent)
    inner.scale(1 - 2 * shrink)
    return transform.transformBoundingBox(inner)


# ---------------------------------------------------------------------------------------------
# Defaults from the model header, and errors shown in the dock
# ---------------------------------------------------------------------------------------------
def test_model_header_is_described_and_sets_the_tile_size(dock, tiny_model_path):
    naip = add_raster(NAIP)
    dock.raster_combo.setLayer(naip)
    use_model(dock, tiny_model_path)
    info = dock.model_info.text()
    assert "Backbone efficientnet_lite0" in info and "Vocabulary" in info
    assert "Trained on ucm-sample" in info and "0.3 m per pixel" in info
    # The tiny model: 224 px at 0.3 m → 67.2 m; NAIP is in metres (EPSG:26914).
    assert dock.tile_size.value() == pytest.approx(67.2)
    assert dock.tile_size.suffix().strip() == "m"
    assert "13 × 13 pixels" in dock.tile_info.text()  # 67.2 m / 5 m, rounded
    assert "⚠" not in dock.tile_info.text()

    # RGB.byte.tif has ~300 m pixels: 67.2 m is a fraction of one; the dock says so at once.
    dock.raster_combo.setLayer(add_raster(RGB_BYTE))
    assert dock.tile_size.value() == pytest.approx(67.2)
    assert dock.tile_info.text().startswith("⚠ Too small")
    dock.tile_size.setValue(50_000)
    assert "167 × 167 pixels" in dock.tile_info.text()
    # The spin box's clear button restores the model's size.
    dock.tile_size.clear()
    assert dock.tile_size.value() == pytest.approx(67.2)


def test_bad_model_files_are_explained_in_the_dock(dock, tmp_path):
    add_raster()
    not_a_model = tmp_path / "notes.mscap"
    not_a_model.write_text("this is text, not a model")
    dock.select_model(str(not_a_model))
    assert dock.header is None
    assert dock.model_info.text().startswith("⚠ This model cannot be used")
    assert "notes.mscap" in dock.model_info.text()

    pickle = tmp_path / "weights.mscap"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    dock.select_model(str(pickle))
    assert "pickle" in dock.model_info.text()

    # Run with it: a message in the status line, focus on the model field, no task.
    assert dock.run() is None
    assert dock.status.text().startswith("⚠ Cannot run: the model file")
    dock.select_model(str(tmp_path / "missing.mscap"))
    assert dock.run() is None
    assert "does not exist" in dock.status.text()


def test_no_model_and_no_raster_are_explained(dock):
    dock.select_model("")
    assert "Choose a model file" in dock.model_info.text()
    assert dock.run() is None
    assert "choose a raster layer" in dock.status.text()


# ---------------------------------------------------------------------------------------------
# Parameters gathered, and the canvas CRS
# ---------------------------------------------------------------------------------------------
def test_parameters_are_gathered_into_the_engine_params(dock, tiny_model_path, tmp_path,
                                                       raster_copies):
    layer = add_raster()
    dock.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("layer"))
    dock.tile_size.setValue(38_400)
    dock.overlap.setValue(10)
    dock.batch_size.setValue(4)
    dock.beam.setValue(2)
    dock.device_combo.setCurrentIndex(dock.device_combo.findData("cpu"))
    dock.set_output_path(str(tmp_path / "out.gpkg"))

    request = dock.gather_request()
    assert request == CaptionRequest(
        raster_path=str(raster_copies[RGB_BYTE]), raster_name="RGB.byte", model_path=str(tiny_model_path),
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
    keys = [dock.device_combo.itemData(i) for i in range(dock.device_combo.count())]
    assert keys[0] == "auto" and "cpu" in keys


def test_the_bands_shown_on_the_map_are_the_bands_captioned(dock, tiny_model_path, tmp_path):
    layer = add_raster()
    renderer = layer.renderer().clone()
    renderer.setRedBand(3)
    renderer.setBlueBand(1)
    layer.setRenderer(renderer)
    dock.raster_combo.setLayer(layer)
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("layer"))
    use_model(dock, tiny_model_path)
    dock.tile_size.setValue(38_400)
    dock.set_output_path(str(tmp_path / "out.gpkg"))
    assert dock.gather_request().bands == (3, 2, 1)


def test_visible_extent_keeps_the_canvas_crs_and_tiles_land_where_the_canvas_shows(
        dock, qgis_iface, tiny_model_path, tmp_path):
    """Canvas in Web Mercator over a UTM raster: the extent goes with EPSG:3857 and the engine's
    tiles (in the raster's CRS) cover what the canvas shows, and no more than a tile beyond."""
    layer = add_raster()
    canvas = qgis_iface.mapCanvas()
    set_canvas(canvas, "EPSG:3857", raster_extent_in(layer, "EPSG:3857"))
    dock.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    tile = 64 * layer.rasterUnitsPerPixelX()  # 64-pixel tiles
    dock.tile_size.setValue(tile)
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
        dock.raster_combo.setLayer(layer)
        use_model(dock, tiny_model_path)
        dock.tile_size.setValue(38_400)
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
    dock.raster_combo.setLayer(layer)
    use_model(dock, tiny_model_path)
    dock.tile_size.setValue(64 * layer.rasterUnitsPerPixelX())
    dock.set_output_path(str(tmp_path / "out.gpkg"))
    assert not dock.polygon_combo.isEnabled()
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("polygons"))
    assert dock.polygon_combo.isEnabled() and dock.selected_only.isEnabled()
    dock.polygon_combo.setLayer(polygons)

    area = dock.gather_request().area
    assert isinstance(area, PolygonArea) and area.crs == "EPSG:4326" and len(area.geometries) == 2

    dock.selected_only.setChecked(True)
    QApplication.setActiveWindow(dock)
    assert dock.run() is None  # nothing selected: said in the dock, focus on the layer to fix
    assert "no feature of 'fields' is selected" in dock.status.text()
    assert dock.polygon_combo.hasFocus()

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
    dock.raster_combo.setLayer(layer)
    unsaved = Path(dock.output_path())
    assert unsaved.name.startswith("RGB.byte-captions") and unsaved.suffix == ".gpkg"
    assert unsaved.parent.name == "mapscribe"  # in the system's temporary folder

    QgsProject.instance().setFileName(str(tmp_path / "survey.qgz"))
    assert Path(dock.output_path()) == tmp_path / "RGB.byte-captions.gpkg"

    (tmp_path / "RGB.byte-captions.gpkg").write_bytes(b"")
    assert default_output_path("RGB.byte.tif", str(tmp_path / "survey.qgz")) == (
        tmp_path / "RGB.byte-captions-2.gpkg")

    # A path people typed stays theirs.
    dock.output_widget.setFilePath(str(tmp_path / "mine.gpkg"))
    QgsProject.instance().setFileName(str(tmp_path / "other" / "survey.qgz"))
    assert dock.output_path() == str(tmp_path / "mine.gpkg")


@pytest.fixture(scope="module")
def finished_grid(tiny_model_path, tmp_path_factory):
    """A complete captions GeoPackage of 4 tiles (the engine, without QGIS)."""
    from mapscribe.model.jobs.caption_params import CaptionRasterParams
    from mapscribe.model.jobs.caption import caption_raster
    from mapscribe.model.geo.areas import BoundingBox

    out = tmp_path_factory.mktemp("existing") / "grid.gpkg"
    box = BoundingBox(-78.0, 24.0, -77.6, 24.4, "EPSG:4326")
    caption_raster(CaptionRasterParams(raster=RGB_BYTE, model=tiny_model_path, output=out,
                                       area=box, tile_size=128, tile_size_unit="pixels",
                                       beam_size=1, device="cpu"))
    return out


def _dock_writing_to(dock, model, output: Path) -> None:
    dock.raster_combo.setLayer(add_raster())
    use_model(dock, model)
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("layer"))
    dock.tile_size.setValue(38_400)
    dock.set_output_path(str(output))


def test_existing_captions_are_never_overwritten_silently(dock, tiny_model_path,
                                                          finished_grid, tmp_path):
    output = tmp_path / "grid.gpkg"
    output.write_bytes(finished_grid.read_bytes())
    _dock_writing_to(dock, tiny_model_path, output)
    request = dock.gather_request()

    dock.existing_combo.setCurrentIndex(dock.existing_combo.findData("new"))
    changed, mode = dock._decide_existing(request)
    assert mode == "create" and changed.output_path == str(tmp_path / "grid-2.gpkg")
    assert dock.output_path() == str(tmp_path / "grid-2.gpkg")

    for choice in ("resume", "replace"):
        dock.existing_combo.setCurrentIndex(dock.existing_combo.findData(choice))
        assert dock._decide_existing(request) == (request, choice)

    # "Ask me": a real question box; answering Cancel leaves everything as it was.
    dock.existing_combo.setCurrentIndex(dock.existing_combo.findData("ask"))
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
    assert "left as it is" in dock.status.text()
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
    controls = [w for w in dock.focus_chain() if not isinstance(w, type(dock.status))]
    undescribed = [w.accessibleName() for w in controls if not w.accessibleDescription()]
    assert undescribed == []


def test_tab_order_follows_the_form_and_run_is_reached_and_pressed_by_keyboard(
        dock, tiny_model_path):
    dock.raster_combo.setLayer(add_raster())
    use_model(dock, tiny_model_path)
    chain = [w for w in dock.focus_chain() if w.isEnabled() and w.isVisibleTo(dock)]
    visited = _focus_walk(dock, dock.raster_combo, len(chain) - 1)
    assert [w.accessibleName() for w in visited] == [w.accessibleName() for w in chain]
    assert dock.run_button in visited

    # From the raster combo, Tab until Run has focus, then Space presses it.
    visited = _focus_walk(dock, dock.raster_combo, chain.index(dock.run_button))
    assert QApplication.focusWidget() is dock.run_button
    dock.tile_size.setValue(67.2)  # too small for RGB.byte.tif: Run must say so
    QTest.keyClick(dock.run_button, Qt.Key_Space)
    assert "span only" in dock.status.text()
    # Focus went to the field to fix.
    assert _owner(QApplication.focusWidget()) is dock.tile_size


def test_alt_shortcuts_jump_to_their_fields(dock):
    QApplication.setActiveWindow(dock)
    dock.run_button.setFocus()
    process_events()
    QTest.keyClick(dock.run_button, Qt.Key_Z, Qt.AltModifier)  # "Tile si&ze"
    assert _owner(QApplication.focusWidget()) is dock.tile_size
    QTest.keyClick(QApplication.focusWidget(), Qt.Key_M, Qt.AltModifier)  # "&Model file"
    assert QApplication.focusWidget() is dock.model_widget.lineEdit()


# ---------------------------------------------------------------------------------------------
# Start-up cost and a QGIS without torch
# ---------------------------------------------------------------------------------------------
_LOAD_SCRIPT = textwrap.dedent("""
    import os, sys
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtWidgets import QMainWindow
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
    page = dock.run_stack.currentWidget()
    print("panel:", page.objectName(), "|", page.accessibleName())
    dock.run()
    print("status:", dock.status.text())
    print("model info:", dock.model_info.text())
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
    assert "status: ⚠ Install the missing Python packages first" in out
    assert "model info: The model's description can be read once torch" in out


def test_every_alt_shortcut_of_a_tab_leads_to_one_control(dock):
    dock.resume_button.setVisible(True)  # shown after a stopped run: must not clash either
    for page in (dock.form_page, dock.captions_panel):
        letters = [re.search(r"&(\w)", w.text()).group(1).lower()
                   for w in page.findChildren((QLabel, QAbstractButton)) if "&" in w.text()]
        assert len(letters) > 3 and len(set(letters)) == len(letters), sorted(letters)


def test_train_button_opens_the_training_dialog_whose_model_is_chosen_here(dock, tmp_path):
    from mapscribe.plugin import train_dialog

    dock.train_button.click()
    dialog = next(d for d in train_dialog._OPEN_DIALOGS if d.isVisible())
    try:
        new_model = tmp_path / "fresh.mscap"
        dialog.on_model_ready(str(new_model))  # what the dialog calls after a training
        assert dock.model_path() == str(new_model)
    finally:
        train_dialog.close_all_train_dialogs()
        process_events()
