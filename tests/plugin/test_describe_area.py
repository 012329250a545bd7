"""Describing a captioned area from QGIS: the dock after a real run (the tiny model on
tests/data/RGB.byte.tif, in QGIS's task manager), and the Processing algorithm *Describe
captioned area* (mapscribe:describe_captions), run as the toolbox runs it.

Checked: after Run the map fits the captioned area, and words are drawn on it at that scale
(rendered by QGIS, not assumed from the style); the run is described on a worker thread into
the regions layer of the GeoPackage, shown in the "MapScribe" group, and the panel reads the
overview first; the algorithm writes the same regions and overview, says the overview in its
log, loads and styles the regions layer in place of an earlier one, and refuses a layer that is
not a captions layer with the engine's message.
"""

from __future__ import annotations

import pytest
from pytest_qgis.utils import wait_until
from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from mapscribe.model import read_overview
from mapscribe.plugin import layers
from mapscribe.plugin.processing.provider import MapScribeProvider
from plugin_helpers import add_raster, placed_labels, set_canvas

TILE_128_PX = 128 * 300.0379266750948  # RGB.byte.tif: 6 rows × 7 columns of 128-pixel tiles
RUN_TIMEOUT_MS = 120_000
PARKING = "many cars are parked in a parking lot"


def test_after_run_the_map_shows_words_and_the_dock_describes_the_area(
        dock, shown_canvas, tiny_model_path, tmp_path):
    canvas = shown_canvas
    # Zoomed in on a corner of the raster: the run captions the whole layer.
    set_canvas(canvas, "EPSG:3857", QgsRectangle(-8.7e6, 2.75e6, -8.69e6, 2.76e6))
    output = tmp_path / "grid.gpkg"
    dock.form.raster_combo.setLayer(add_raster())
    dock.select_model(str(tiny_model_path))
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("layer"))
    dock.form.tile_size.setValue(TILE_128_PX)
    dock.form.beam.setValue(1)
    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    dock.set_output_path(str(output))
    panel = dock.captions_panel
    described = []
    panel.describeFinished.connect(described.append)
    finished = []
    dock.runFinished.connect(finished.append)
    task = dock.run()
    assert wait_until(lambda: finished, timeout_milliseconds=RUN_TIMEOUT_MS), (
        dock.form.status.text())
    assert task.result.stopped == "completed" and task.result.tiles_total == 42
    layer = layers.find_caption_layer(output, "captions")

    # The view fits the captioned area (the whole raster), and says so in the Captions tab.
    area = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                  QgsProject.instance()).transformBoundingBox(layer.extent())
    view = canvas.extent()
    assert view.contains(area)
    assert min(view.width() / area.width(), view.height() / area.height()) < 1.2
    assert panel.where.text().startswith(
        "After the run, the map shows the whole captioned area: 42 tiles.")
    # At that scale, words are on the map: the captions, drawn by QGIS's labelling. (Labels
    # only from 1:907,000, as before, would leave these 38-km tiles without any.)
    assert canvas.scale() > 907_000
    labels = placed_labels(canvas, layer)
    assert len(labels) >= 5, canvas.scale()
    captions = {f["caption"] for f in layer.getFeatures() if f["caption"]}
    assert all(label.labelText.replace("(uncertain) ", "") in captions for label in labels)

    # Described on a worker thread, into the GeoPackage; the regions shown above the captions.
    assert wait_until(lambda: described, timeout_milliseconds=RUN_TIMEOUT_MS)
    (done,) = described
    assert done.write and done.error is None and done.description is not None
    stored = read_overview(output)
    assert panel.overview.text() == stored.text == done.description.text
    group = QgsProject.instance().layerTreeRoot().findGroup("MapScribe")
    shown = [node.layer() for node in group.findLayers()]
    assert [item.name() for item in shown] == ["grid regions", "grid captions"]
    assert shown[0].featureCount() == len(done.description.regions) >= 1
    assert panel.tree.proxy.index(0, 0).data() == (
        f"Regions: {len(done.description.regions)}, largest first")
    themes = placed_labels(canvas, shown[0])
    assert themes and all("%)" in label.labelText for label in themes)


# --------------------------------------------------------------------------------------------
# Processing: Describe captioned area
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider(qgis_app):
    """The provider registered as the plugin registers it, removed afterwards."""
    from processing.core.Processing import Processing

    Processing.initialize()
    provider = MapScribeProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


class Feedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos, self.warnings = [], []

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)


def _run(parameters, context=None, feedback=None):
    import processing

    context = context or QgsProcessingContext()
    return processing.run("mapscribe:describe_captions", parameters, context=context,
                          feedback=feedback or Feedback())


def test_describe_captioned_area_writes_the_regions_and_the_overview(provider, mosaics,
                                                                     tmp_path, project):
    path = mosaics.write_mosaic(tmp_path / "mosaic.gpkg", ["FFAA", "FFAA", "RRBB", "RR.?"],
                                captions={"A": PARKING})
    algorithm = QgsApplication.processingRegistry().algorithmById("mapscribe:describe_captions")
    assert algorithm.displayName() == "Describe captioned area"
    assert [o.name() for o in algorithm.outputDefinitions()] == ["OUTPUT", "OVERVIEW",
                                                                  "REGIONS"]
    # An earlier copy of the regions in the project: replaced, not doubled, once loaded.
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = Feedback()
    results = _run({"INPUT": f"{path}|layername=captions"}, context, feedback)

    stored = read_overview(path)
    assert results["OVERVIEW"] == stored.text and "parking in the north-east" in stored.text
    assert results["REGIONS"] == 4
    assert results["OUTPUT"] == f"{path}|layername=regions"
    regions = QgsVectorLayer(results["OUTPUT"], "regions", "ogr")
    assert regions.isValid() and regions.featureCount() == 4
    assert {f["theme"] for f in regions.getFeatures()} == {"farmland", "parking", "river",
                                                           "sea or beach"}
    # The overview is said in the log, sentence by sentence; the notes as warnings.
    assert all(sentence in feedback.infos for sentence in stored.sentences)
    assert any("themes were told from the captions' words" in w for w in feedback.warnings)

    # Run from the toolbox, the regions layer is loaded when the run ends, styled, in place of
    # an earlier copy.
    earlier = layers.add_regions_layer(path, "regions", "captions").id()
    to_load = context.layersToLoadOnCompletion()
    assert list(to_load) == [results["OUTPUT"]]
    details = to_load[results["OUTPUT"]]
    loaded = QgsVectorLayer(results["OUTPUT"], details.name, "ogr")
    project.addMapLayer(loaded)
    details.postProcessor().postProcessLayer(loaded, context, feedback)
    assert layers.regions_layers(path, "captions") == [loaded]
    assert earlier not in project.mapLayers()
    assert loaded.labelsEnabled() and '"theme"' in loaded.labeling().settings().fieldName
    assert '"sentence"' in loaded.mapTipTemplate()


def test_describe_refuses_a_layer_that_is_not_a_captions_layer(provider, mosaics, tmp_path):
    path = mosaics.write_mosaic(tmp_path / "mosaic.gpkg", ["FFAA", "RRBB"])
    _run({"INPUT": f"{path}|layername=captions"})
    with pytest.raises(QgsProcessingException) as raised:
        _run({"INPUT": f"{path}|layername=regions"})
    message = str(raised.value)
    assert "regions" in message and "Traceback" not in message
