"""The captions panel read from the whole to the details, on captions layers whose layout is
known (tests/model/mosaics.py: blocks of real UCM captions placed where the test says), so
every sentence, region and count is known without running a model.

Checked: the overview first (selectable, read by screen readers), then the tree (regions with
their tiles, then the tiles; a caption pyramid nested level by level through parent_id); the
standard tree keys, Enter, type-ahead, and the map following them; the search and its count;
the regions layer in the "MapScribe" group; each level labelled at the scales that suit it;
a layer described before read back; failures said, never raised.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pytest_qgis.utils import process_events, wait_until
from qgis.core import (
    QgsCoordinateTransform,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QWidget

from mapscribe.model import read_overview
from mapscribe.plugin import label_levels, layers
from mapscribe.plugin.dock.captions_panel import CaptionsPanel
from mapscribe.plugin.dock.captions_tree import TILES_GROUP
from plugin_helpers import placed_labels, set_canvas

# North-west farmland, north-east parking, south-west river, beach, one nodata, one uncertain.
LAYOUT = ["FFAA",
          "FFAA",
          "RRBB",
          "RR.?"]
PARKING = "many cars are parked in a parking lot"
TIMEOUT_MS = 30_000


@pytest.fixture
def mosaic(mosaics, tmp_path, project):
    """The LAYOUT mosaic (tiles of 100 m, UTM 33N) shown as MapScribe shows a run's layer."""
    path = mosaics.write_mosaic(tmp_path / "mosaic.gpkg", LAYOUT, captions={"A": PARKING})
    return layers.add_caption_layer(path, "captions")


@pytest.fixture
def panel(qgis_iface, project):
    widget = CaptionsPanel(qgis_iface.mapCanvas())
    widget.resize(420, 900)
    widget.show()
    yield widget
    widget.shutdown()
    widget.deleteLater()
    process_events()


def describe(panel, write=True):
    finished = []
    panel.describeFinished.connect(finished.append)
    try:
        task = panel.describe(write=write)
        assert wait_until(lambda: task in finished, timeout_milliseconds=TIMEOUT_MS)
    finally:
        panel.describeFinished.disconnect(finished.append)
    assert task.error is None, task.error
    return task


def children(panel, parent=None):
    """The texts of the entries shown under ``parent`` (the top when None)."""
    proxy = panel.tree.proxy
    parent = parent if parent is not None else proxy.index(-1, -1)
    return [proxy.index(row, 0, parent).data() for row in range(proxy.rowCount(parent))]


def group(panel, row):
    return panel.tree.proxy.index(row, 0)


def canvas_point(panel, geometry_or_point):
    transform = QgsCoordinateTransform(panel.layer.crs(),
                                       panel.canvas.mapSettings().destinationCrs(),
                                       QgsProject.instance())
    return transform.transform(geometry_or_point)


def key(widget, key_code):
    QTest.keyClick(widget, key_code)
    process_events()


# --------------------------------------------------------------------------------------------
def test_overview_first_then_regions_holding_their_tiles_then_the_tiles(panel, mosaic):
    panel.set_layer(mosaic)
    assert panel.overview.text().startswith("Not described yet: press Describe area")
    assert children(panel) == ["Regions: not described yet",
                               "Tiles: 16, north to south, west to east"]
    describe(panel)

    stored = read_overview(layers.layer_source(mosaic)[0])
    assert panel.overview.text() == stored.text and "parking in the north-east" in stored.text
    # Read first, selectable, reached by Tab, its words given to screen readers.
    assert panel.overview.focusPolicy() & Qt.TabFocus
    assert panel.overview.textInteractionFlags() & Qt.TextSelectableByKeyboard
    assert panel.overview.accessibleName() == "Overview"
    assert panel.overview.accessibleDescription() == stored.text
    # The note on where the themes came from (a model without a theme head) is said.
    assert "themes were told from the captions' words" in panel.details.text()

    regions, tiles = children(panel)
    assert regions == "Regions: 4, largest first"
    sentences = [r.sentence for r in panel.description.regions]
    assert children(panel, group(panel, 0)) == sentences
    assert [s.split(" in the ")[0] for s in sentences] == [
        "Farmland", "Parking", "River", "Sea or beach"]
    parking = group(panel, 0).child(1, 0)
    assert children(panel, parking) == [f"Row {r}, column {c}: {PARKING}"
                                        for r, c in ((1, 3), (1, 4), (2, 3), (2, 4))]
    # The tiles in reading order, each said with its status in words.
    texts = children(panel, group(panel, 1))
    assert len(texts) == 16 and texts[2] == f"Row 1, column 3: {PARKING}"
    assert texts[14] == "Row 4, column 3: no caption (too little imagery)"
    assert texts[15].startswith("Row 4, column 4: (uncertain) ")

    # The regions layer, above the captions in the MapScribe group, outlined and labelled.
    group_node = QgsProject.instance().layerTreeRoot().findGroup("MapScribe")
    shown = [node.layer() for node in group_node.findLayers()]
    assert [layer.name() for layer in shown] == ["mosaic regions", "mosaic captions"]
    regions_layer = shown[0]
    assert regions_layer.featureCount() == 4 and regions_layer.labelsEnabled()
    label = regions_layer.labeling().settings()
    assert label.isExpression and '"theme"' in label.fieldName
    outline = regions_layer.renderer().symbol().symbolLayers()
    assert {layer.brushStyle() for layer in outline} == {Qt.NoBrush}
    assert Qt.DashLine in {layer.strokeStyle() for layer in outline}  # not colour alone
    assert '"sentence"' in regions_layer.mapTipTemplate()


def test_tree_keys_move_expand_collapse_and_enter_shows_on_the_map(panel, mosaic, qgis_iface):
    panel.set_layer(mosaic)
    describe(panel)
    canvas = qgis_iface.mapCanvas()
    set_canvas(canvas, "EPSG:3857", QgsRectangle(1.67e6, 5.63e6, 1.671e6, 5.631e6))
    tree = panel.tree
    QApplication.setActiveWindow(panel)
    tree.setFocus()
    process_events()
    moved, regions_seen = [], []
    panel.tileSelected.connect(moved.append)
    panel.regionSelected.connect(regions_seen.append)

    key(tree, Qt.Key_Home)
    assert tree.currentIndex() == group(panel, 0) and panel.current_entry() is None
    assert panel.details.text() == "Regions: 4, largest first"
    key(tree, Qt.Key_Down)  # the largest region: farmland, centred and flashed
    farmland = panel.current_region()
    assert farmland.theme == "farmland" and regions_seen == [farmland.region_id]
    box = QgsRectangle()
    box.setMinimal()
    for tile in farmland.tiles:
        box.combineExtentWith(tile.geometry.boundingBox())
    centre = canvas_point(panel, box.center())
    assert canvas.center().x() == pytest.approx(centre.x(), abs=1.0)
    assert canvas.center().y() == pytest.approx(centre.y(), abs=1.0)
    assert not tree.isExpanded(tree.currentIndex())
    key(tree, Qt.Key_Right)  # expands
    assert tree.isExpanded(tree.currentIndex())
    key(tree, Qt.Key_Down)  # its first tile, on the map
    tile = panel.current_entry()
    assert tile is farmland.tiles[0] and moved == [tile.fid]
    centre = canvas_point(panel, tile.geometry.centroid().asPoint())
    assert canvas.center().x() == pytest.approx(centre.x(), abs=1.0)
    assert f"tile {tile.tile_id}," in panel.details.text()
    key(tree, Qt.Key_Left)  # back to its region
    assert panel.current_region() is farmland
    key(tree, Qt.Key_Left)  # collapses it
    assert not tree.isExpanded(tree.currentIndex())

    # Enter: a region larger than the view is shown whole.
    canvas.zoomScale(500)
    process_events()
    key(tree, Qt.Key_Return)
    view = canvas.extent()
    corners = [canvas_point(panel, tile.geometry.boundingBox().center()) for tile in
               farmland.tiles]
    assert all(view.contains(point) for point in corners), view.toString()

    # Type-ahead: the first entry in sight that starts with the letters typed.
    QTest.keyClicks(tree, "sea")
    process_events()
    assert panel.current_region().theme == "sea or beach"
    # End: the last tile of the list.
    key(tree, Qt.Key_End)
    assert panel.current_entry().text().startswith("Row 4, column 4: (uncertain)")
    # Copy caption: a tile's caption; a region's sentence.
    assert panel.copy_caption() == panel.current_entry().caption
    assert tree.select("region", farmland.region_id)
    assert panel.copy_caption() == farmland.sentence == QApplication.clipboard().text()


def test_search_filters_regions_and_tiles_and_says_how_many_match(panel, mosaic):
    panel.set_layer(mosaic)
    describe(panel)
    search, status = panel.search.edit, panel.search.status
    assert status.text() == "4 regions and 16 tiles; type words to search them."

    search.setText("parking")
    assert status.text() == "1 region and 4 tiles match “parking”."
    assert children(panel, group(panel, 0)) == [panel.description.regions[1].sentence]
    assert len(children(panel, group(panel, 1))) == 4
    assert all(PARKING in text for text in children(panel, group(panel, 1)))
    # A live status: the count is the label's and the search box's accessible description.
    assert status.accessibleDescription() == status.text()
    assert search.accessibleDescription().startswith(status.text())

    search.setText("RIVER")  # any case; a region and the tiles whose captions say it
    river_tiles = [t for t in panel.entries if t.caption and "river" in t.caption.lower()]
    assert len(river_tiles) == 4
    assert status.text() == "1 region and 4 tiles match “RIVER”."
    search.setText("  parking   lot ")  # every word must be there
    assert status.text() == "1 region and 4 tiles match “parking lot”."
    search.setText("uncertain")  # a status, in words
    assert status.text() == "0 regions and 1 tile match “uncertain”."
    search.setText("parking river")
    assert status.text() == "Nothing matches “parking river”."
    assert children(panel) == []

    # Down from the search box goes to the first match; Escape clears the search.
    search.setText("beach")
    QApplication.setActiveWindow(panel)
    search.setFocus()
    process_events()
    key(search, Qt.Key_Down)
    assert QApplication.focusWidget() is panel.tree
    assert panel.current_region().theme == "sea or beach"
    search.setFocus()
    key(search, Qt.Key_Escape)
    assert search.text() == "" and status.text().startswith("4 regions and 16 tiles")
    assert panel.current_region().theme == "sea or beach"  # kept while the tree came back


def test_a_pyramid_nests_its_levels_and_labels_the_level_that_suits_the_scale(
        panel, mosaics, tmp_path, shown_canvas):
    path = mosaics.write_mosaic(tmp_path / "pyramid.gpkg", LAYOUT, captions={"A": PARKING})
    mosaics.add_coarse_levels(path, captions=["the whole area", "a quarter"])
    _link_parents(path)
    layer = layers.add_caption_layer(path, "captions")
    panel.set_layer(layer)
    tiles = group(panel, 1)
    assert tiles.data() == ("Tiles by level, from the whole area to the details: 3 levels, "
                            "21 tiles")
    (whole,) = children(panel, tiles)
    assert whole == "Level 1 of 3, row 1, column 1: the whole area"
    quarters = tiles.child(0, 0)
    assert children(panel, quarters) == [f"Level 2 of 3, row {r}, column {c}: a quarter"
                                         for r, c in ((1, 1), (1, 2), (2, 1), (2, 2))]
    north_east = quarters.child(1, 0)
    assert children(panel, north_east) == [f"Level 3 of 3, row {r}, column {c}: {PARKING}"
                                           for r, c in ((1, 3), (1, 4), (2, 3), (2, 4))]

    # Each level labelled (and outlined) only at the scales that suit its tiles.
    levels = label_levels.layer_levels(layer)
    assert [(level.level, round(level.tile_metres)) for level in levels] == [
        (0, 400), (1, 200), (2, 100)]
    assert layer.labeling().type() == "rule-based"
    canvas = shown_canvas
    extent = layer.extent()
    level_of = {f.id(): f["level"] for f in layer.getFeatures()}
    for wanted in levels:
        scale = (wanted.minimum_scale or wanted.maximum_scale * 4) * 0.9
        assert label_levels.level_shown(levels, scale) == wanted
        set_canvas(canvas, "EPSG:32633", extent)
        canvas.zoomScale(scale)
        process_events()
        labelled = {level_of[label.featureId] for label in placed_labels(canvas, layer)}
        assert labelled == {wanted.level}, (wanted, canvas.scale())


def test_the_engines_pyramid_is_read_level_by_level_and_labelled_by_scale(
        panel, tiny_model_path, tmp_path, shown_canvas):
    """A pyramid the engine captioned (not a mosaic made to look like one): three levels of
    RGB.byte.tif, whose tiles double in width, one level labelled at each scale."""
    from mapscribe.model.jobs.caption import caption_raster
    from mapscribe.model.jobs.caption_params import CaptionRasterParams
    from rasters import RGB_BYTE

    out = tmp_path / "grid.gpkg"
    caption_raster(CaptionRasterParams(
        raster=RGB_BYTE, model=tiny_model_path, output=out, tile_size=128,
        tile_size_unit="pixels", beam_size=1, max_length=8, device="cpu", levels=3))
    layer = layers.add_caption_layer(out, "captions")
    panel.set_layer(layer)
    assert group(panel, 1).data().startswith("Tiles by level, from the whole area to the "
                                             "details: 3 levels, ")
    levels = label_levels.layer_levels(layer)
    pixel = 300.0379  # RGB.byte.tif's pixel width, in metres
    assert [(level.level, pytest.approx(level.tile_metres)) for level in levels] == [
        (0, 4 * 128 * pixel), (1, 2 * 128 * pixel), (2, 128 * pixel)]
    canvas = shown_canvas
    level_of = {f.id(): f["level"] for f in layer.getFeatures()}
    for wanted in levels:
        scale = (wanted.minimum_scale or wanted.maximum_scale * 4) * 0.9
        set_canvas(canvas, "EPSG:32618", layer.extent())
        canvas.zoomScale(scale)
        process_events()
        labelled = {level_of[label.featureId] for label in placed_labels(canvas, layer)}
        assert labelled == {wanted.level}, (wanted, canvas.scale())


def _link_parents(path):
    """Fill parent_id as the engine's pyramid does: a tile's parent is the tile of the coarser
    level around it (row // 2, column // 2)."""
    from osgeo import ogr

    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayerByName("captions")
    ids = {(f.GetField("level"), f.GetField("row"), f.GetField("col")): f.GetField("tile_id")
           for f in layer}
    dataset.StartTransaction()
    for feature in layer:
        level = feature.GetField("level")
        if level > 0:
            parent = ids[(level - 1, feature.GetField("row") // 2, feature.GetField("col") // 2)]
            feature.SetField("parent_id", parent)
            layer.SetFeature(feature)
    dataset.CommitTransaction()
    dataset = None


def test_after_a_run_the_map_fits_the_area_says_where_to_look_and_shows_words(
        panel, mosaic, shown_canvas):
    canvas = shown_canvas
    set_canvas(canvas, "EPSG:3857", QgsRectangle(0, 0, 1000, 1000))  # far away from it
    finished = []
    panel.describeFinished.connect(finished.append)
    path, _ = layers.layer_source(mosaic)
    panel.after_run(SimpleNamespace(output=str(path), layer="captions", stopped="completed"))
    assert wait_until(lambda: finished, timeout_milliseconds=TIMEOUT_MS)

    view = canvas.extent()
    area = QgsCoordinateTransform(mosaic.crs(), canvas.mapSettings().destinationCrs(),
                                  QgsProject.instance()).transformBoundingBox(mosaic.extent())
    # Fitted: all of it in sight, and it fills the view's width or height (with a margin).
    assert view.contains(area)
    assert min(view.width() / area.width(), view.height() / area.height()) < 1.2
    where = panel.where.text()
    assert where.startswith("After the run, the map shows the whole captioned area: 16 tiles. "
                            f"At 1:{canvas.scale():,.0f} each tile's caption is written on it")
    assert "Regions are outlined with dashes and named by their theme." in where
    # Words on the map at that scale: captions and the regions' themes.
    captions = placed_labels(canvas, mosaic)
    assert len(captions) >= 4, canvas.scale()
    (regions_layer,) = layers.regions_layers(path, "captions")
    themes = {label.labelText for label in placed_labels(canvas, regions_layer)}
    assert "parking (27%)" in themes


def test_a_stopped_run_is_not_described_and_says_so(panel, mosaic):
    path, _ = layers.layer_source(mosaic)
    panel.after_run(SimpleNamespace(output=str(path), layer="captions", stopped="cancelled"))
    assert panel.describe_task is None
    assert panel.overview.text().startswith("Not described: the run stopped")
    assert children(panel)[0] == "Regions: not described: the run is not finished"


def test_a_layer_described_before_is_read_back_with_its_regions(panel, mosaic, project):
    panel.set_layer(mosaic)
    written = describe(panel)
    assert len(layers.regions_layers(written.gpkg, "captions")) == 1
    panel.set_layer(None)
    assert children(panel)[0] == "Regions: not described yet"

    finished = []
    panel.describeFinished.connect(finished.append)
    panel.set_layer(mosaic)
    # The stored overview at once; the regions once read (without writing anything).
    assert panel.overview.text() == read_overview(written.gpkg).text
    assert wait_until(lambda: finished, timeout_milliseconds=TIMEOUT_MS)
    assert not finished[0].write and children(panel)[0] == "Regions: 4, largest first"
    assert len(layers.regions_layers(written.gpkg, "captions")) == 1


def test_describing_failures_are_said_and_bugs_logged(panel, mosaic, monkeypatch, messages):
    import mapscribe.model as engine
    from mapscribe.model import DescribeError

    def refuse(*_args, **_kwargs):
        raise DescribeError("layer 'captions' has no tiles yet: finish the run first")

    monkeypatch.setattr(engine, "describe_captions", refuse)
    panel.set_layer(mosaic)
    finished = []
    panel.describeFinished.connect(finished.append)
    panel.describe()
    assert wait_until(lambda: finished, timeout_milliseconds=TIMEOUT_MS)
    assert panel.overview.text() == ("The area could not be described: layer 'captions' has no "
                                     "tiles yet: finish the run first")
    assert panel.describe_button.isEnabled()

    def bug(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(engine, "describe_captions", bug)
    panel.describe()
    assert wait_until(lambda: len(finished) == 2, timeout_milliseconds=TIMEOUT_MS)
    assert "because of a bug in MapScribe (ZeroDivisionError" in panel.overview.text()
    assert any(tag == "MapScribe" and "Traceback" in text and "ZeroDivisionError" in text
               for tag, _, text in messages)


def test_every_control_is_named_and_tab_follows_the_reading_order(panel, mosaic):
    panel.set_layer(mosaic)
    focusable = [w for w in panel.findChildren(QWidget)
                 if w.isVisibleTo(panel) and w.focusPolicy() & Qt.TabFocus
                 and not w.isWindow() and w.parentWidget() is not None
                 and type(w.parentWidget()).__name__ not in ("QComboBox",)]
    unnamed = [f"{type(w).__name__} {w.objectName()!r}" for w in focusable
               if not w.accessibleName()]
    assert unnamed == []
    QApplication.setActiveWindow(panel)
    panel.layer_combo.setFocus()
    process_events()
    visited = []
    for _ in range(7):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key_Tab)
        visited.append(QApplication.focusWidget())
    assert visited == [panel.overview, panel.where, panel.describe_button, panel.search.edit,
                       panel.tree, panel.copy_button, panel.export_button]


def test_a_tile_moved_to_in_the_tiles_list_stays_there_when_the_regions_arrive(panel, mosaic):
    panel.set_layer(mosaic)
    tile = panel.entries[5]
    assert panel.tree.select("tile", tile.fid, TILES_GROUP)
    describe(panel)
    assert panel.current_entry() is not None and panel.current_entry().fid == tile.fid
    current = panel.tree.currentIndex()
    assert current.parent() == group(panel, 1)  # still among the tiles, not in its region
    assert isinstance(panel.layer, QgsVectorLayer)
