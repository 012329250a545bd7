"""The MapScribe Processing algorithms, run in-process as the toolbox, batch mode and the
graphical modeler run them (processing.run, QgsProcessingModelAlgorithm), on the real engine
with the tiny model and the rasters in tests/data.

The shell (qgis_process) is tested in tests/e2e/test_qgis_process.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsVectorLayer,
)

from mapscribe.plugin.processing.provider import MapScribeProvider

REPO = Path(__file__).resolve().parents[2]
RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"  # 791 × 718 px, EPSG:32618, ~300 m pixels
NAIP = REPO / "tests" / "data" / "naip_m_4709963_se_14_1_20200831_5m.tif"  # 4 bands, EPSG:26914
UCM_SAMPLE = REPO / "tests" / "data" / "ucm-sample"
# A lon/lat box well inside RGB.byte.tif, as QGIS writes extents: xmin,xmax,ymin,ymax [CRS].
BOX_4326 = (-78.0, 24.0, -77.5, 24.5)
ALGORITHMS = ("caption_raster", "describe_captions", "export_captions", "train_captioner",
              "evaluate_captioner")


@pytest.fixture(scope="module")
def provider(qgis_app):
    """The provider registered as the plugin registers it, and Processing's Python side
    initialised so that processing.run works; both removed afterwards (other tests check that
    no MapScribe provider is left)."""
    from processing.core.Processing import Processing

    Processing.initialize()
    provider = MapScribeProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture
def dialogs_iface(qgis_iface, monkeypatch):
    """pytest-qgis's stub interface, completed with the one thing Processing's dialogs ask it
    for that the stub lacks: a (real) browser model."""
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    return qgis_iface


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps what an algorithm reports; ``cancel_at_progress`` cancels once the bar moves."""

    def __init__(self, cancel_at_progress: bool = False):
        super().__init__()
        self.infos, self.warnings, self.progress = [], [], []
        self.cancel_at_progress = cancel_at_progress
        self.progressChanged.connect(self._on_progress)

    def _on_progress(self, value: float) -> None:
        self.progress.append(value)
        if self.cancel_at_progress and value > 0:
            self.cancel()

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)


def run(algorithm, parameters, feedback=None, context=None):
    """processing.run as the toolbox runs an algorithm: errors raise QgsProcessingException."""
    import processing

    context = context or _context()
    return processing.run(algorithm, parameters, feedback=feedback or RecordingFeedback(),
                          context=context)


def _context(project=True) -> QgsProcessingContext:
    context = QgsProcessingContext()
    if project:
        context.setProject(QgsProject.instance())
    return context


def _caption_parameters(model, out, **overrides):
    values = {"INPUT": str(RGB_BYTE), "MODEL": str(model), "TILE_SIZE": 256,
              "TILE_SIZE_UNIT": "pixels", "BEAM": 1, "MAX_LENGTH": 8, "DEVICE": "cpu",
              "OUTPUT": str(out) if isinstance(out, Path) else out}
    values.update(overrides)
    return values


def _layer(output: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(output, "captions", "ogr")
    assert layer.isValid(), output
    return layer


def _expected_tiles(raster, area, tile_pixels):
    """The engine's own tile count for an area (the adapter must hand it the same area)."""
    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.tiling import TileGridParams, plan_tiles

    grid = plan_tiles(RasterInfo.from_path(raster), area,
                      TileGridParams(model_input_size=224, tile_size=tile_pixels,
                                     tile_size_unit="pixels"))
    return len(grid.tiles)


# --------------------------------------------------------------------------------------------
# The provider and its algorithms
# --------------------------------------------------------------------------------------------
def test_provider_offers_four_documented_algorithms(provider):
    algorithms = {alg.name(): alg for alg in provider.algorithms()}
    assert sorted(algorithms) == sorted(ALGORITHMS)
    for name, alg in algorithms.items():
        assert alg.id() == f"mapscribe:{name}"
        assert alg.group() and alg.groupId() and alg.displayName()
        assert not alg.icon().isNull()
        flags = alg.flags()
        assert flags & QgsProcessingAlgorithm.FlagSupportsBatch
        assert flags & QgsProcessingAlgorithm.FlagCanCancel
        assert not flags & QgsProcessingAlgorithm.FlagNoThreading
        help_text = alg.shortHelpString()
        # The help names every parameter the dialog shows outside the advanced section.
        for parameter in alg.parameterDefinitions():
            if not parameter.flags() & parameter.FlagAdvanced:
                words = parameter.description().split("(")[0].split(":")[0].strip().lower()
                assert words.split()[0] in help_text.lower(), (name, parameter.name())
    caption = algorithms["caption_raster"]
    assert [o.name() for o in caption.outputDefinitions()] == [
        "OUTPUT", "CAPTIONED", "NODATA", "TILES", "STOPPED"]
    assert provider.supportedOutputVectorLayerExtensions() == ["gpkg"]


def test_choices_are_the_engines(provider):
    """The enums are listed in the plugin (so that it loads without torch): they must offer
    exactly what the engine takes."""
    from mapscribe.model.data.records import SPLITS
    from mapscribe.model.nn.backbones import BACKBONES
    from mapscribe.model.output.exports import EXPORT_FORMATS
    from mapscribe.plugin.processing import (
        evaluate_captioner,
        export_captions,
        train_captioner,
    )

    offered = train_captioner.BACKBONES
    assert offered[0] == "auto" and sorted(offered[1:]) == sorted(BACKBONES)
    assert sorted(export_captions.FORMAT_SUFFIXES) == sorted(EXPORT_FORMATS)
    assert sorted(evaluate_captioner.SPLITS) == sorted(SPLITS)


def test_provider_loads_without_torch_and_says_what_is_missing(tmp_path):
    """With neither torch nor onnxruntime importable, the provider and its four algorithms
    still load, and captioning fails with a message naming what to install (not a
    traceback). (With onnxruntime alone it captions: test_dock.py.)"""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # `import torch` now raises ImportError
        sys.modules["onnxruntime"] = None
        from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback
        from qgis.core import QgsProcessingException
        QgsApplication.setPrefixPath("/usr", True)
        app = QgsApplication([], False)
        app.initQgis()
        from mapscribe.plugin.processing.provider import MapScribeProvider
        provider = MapScribeProvider()
        QgsApplication.processingRegistry().addProvider(provider)
        print("ALGORITHMS", sorted(a.name() for a in provider.algorithms()))
        alg = QgsApplication.processingRegistry().createAlgorithmById("mapscribe:caption_raster")
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        params = {{"INPUT": {str(RGB_BYTE)!r}, "MODEL": {str(RGB_BYTE)!r},
                   "OUTPUT": {str(tmp_path / "x.gpkg")!r}}}
        ok = alg.prepare(params, context, feedback)
        try:
            alg.runPrepared(params, context, feedback)
        except QgsProcessingException as error:
            print("ERROR", error)
        QgsApplication.processingRegistry().removeProvider(provider)
        app.exitQgis()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**_environment(), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert f"ALGORITHMS {sorted(ALGORITHMS)}" in done.stdout
    error = next(line for line in done.stdout.splitlines() if line.startswith("ERROR"))
    assert "'onnxruntime' cannot be imported" in error and "install" in error
    assert "onnxruntime (about 30 MB) or torch" in error
    assert "Traceback" not in done.stdout + done.stderr


def _environment():
    import os

    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


# --------------------------------------------------------------------------------------------
# Caption raster
# --------------------------------------------------------------------------------------------
def test_caption_raster_writes_the_grid_and_reports_progress(provider, tiny_model_path,
                                                             tmp_path):
    feedback = RecordingFeedback()
    result = run("mapscribe:caption_raster",
                 _caption_parameters(tiny_model_path, tmp_path / "grid.gpkg"), feedback)

    # 791 × 718 px in 256-px tiles: 3 rows × 4 columns.
    assert result["TILES"] == 12 == _expected_tiles(RGB_BYTE, _whole(), 256)
    assert result["STOPPED"] == "completed"
    assert result["CAPTIONED"] + result["NODATA"] == 12 and result["CAPTIONED"] > 0
    assert result["OUTPUT"] == f"{tmp_path / 'grid.gpkg'}|layername=captions"
    layer = _layer(result["OUTPUT"])
    assert layer.featureCount() == 12
    assert layer.crs().authid() == "EPSG:32618"
    # 'unfinished': a caption cut at MAX_LENGTH words.
    captions = [f["caption"] for f in layer.getFeatures() if f["status"] != "nodata"]
    assert len(captions) == result["CAPTIONED"] and all(captions)
    assert feedback.progress and feedback.progress[-1] == pytest.approx(100)
    assert any(info.startswith("Done: ") for info in feedback.infos)
    # The engine's log reaches the Processing log, each line once.
    assert any("captioning 12 of 12 tiles" in info for info in feedback.infos)
    assert len(feedback.warnings) == len(set(feedback.warnings))


def test_caption_raster_in_a_background_task_as_the_toolbox_runs_it(provider, tiny_model_path,
                                                                     tmp_path):
    """The toolbox runs algorithms without FlagNoThreading in a QgsProcessingAlgRunnerTask:
    prepareAlgorithm in the main thread, processAlgorithm in a worker thread. The engine's log
    lines of that worker thread still reach the feedback."""
    from pytest_qgis.utils import process_events
    from qgis.core import QgsProcessingAlgRunnerTask

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(
        "mapscribe:caption_raster")
    context, feedback = _context(), RecordingFeedback()
    finished = []
    task = QgsProcessingAlgRunnerTask(algorithm, _caption_parameters(
        tiny_model_path, tmp_path / "task.gpkg", TILE_SIZE=400), context, feedback)
    task.executed.connect(lambda ok, results: finished.append((ok, results)))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 120
    while not finished and time.monotonic() < deadline:
        process_events()
        time.sleep(0.05)
    assert finished, "the task did not finish in 2 minutes"
    ok, results = finished[0]
    assert ok, feedback.infos + feedback.warnings
    assert results["TILES"] == 4 and _layer(results["OUTPUT"]).featureCount() == 4
    assert any("captioning 4 of 4 tiles" in info for info in feedback.infos)


def test_save_to_geopackage_destination_names_the_layer(provider, tiny_model_path, tmp_path):
    """The output widget's "Save to GeoPackage…" gives ogr:dbname='…' table="…" (geom); a
    GeoPackage already holding another captions layer keeps it."""
    from qgis.core import QgsDataSourceUri

    out = tmp_path / "it's here.gpkg"  # a quote, as QgsDataSourceUri escapes it
    first = run("mapscribe:caption_raster", _caption_parameters(tiny_model_path, out,
                                                                TILE_SIZE=400))
    uri = QgsDataSourceUri()
    uri.setDatabase(str(out))
    uri.setTable("harbour")
    uri.setGeometryColumn("geom")
    second = run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, f"ogr:{uri.uri()}", TILE_SIZE=400))
    assert second["OUTPUT"] == f"{out}|layername=harbour"
    assert _layer(second["OUTPUT"]).featureCount() == 4
    assert _layer(first["OUTPUT"]).featureCount() == 4  # the first layer is still there


def _whole():
    from mapscribe.model.geo.areas import WholeRaster

    return WholeRaster()


def test_extent_in_another_crs_and_without_crs(provider, tiny_model_path, tmp_path):
    from mapscribe.model.geo.areas import BoundingBox

    minx, miny, maxx, maxy = BOX_4326
    result = run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, tmp_path / "box.gpkg", TILE_SIZE=128,
        EXTENT=f"{minx},{maxx},{miny},{maxy} [EPSG:4326]"))
    expected = _expected_tiles(RGB_BYTE, BoundingBox(*BOX_4326, crs="EPSG:4326"), 128)
    assert 0 < result["TILES"] == expected < _expected_tiles(RGB_BYTE, _whole(), 128)

    # A bare extent with no project CRS is in the raster's CRS (UTM 18N metres here).
    utm = (150_000.0, 2_700_000.0, 200_000.0, 2_750_000.0)
    result = run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, tmp_path / "utm.gpkg", TILE_SIZE=256,
        EXTENT=f"{utm[0]},{utm[2]},{utm[1]},{utm[3]}"), context=_context(project=False))
    assert result["TILES"] == _expected_tiles(RGB_BYTE, BoundingBox(*utm, crs="EPSG:32618"),
                                              256)


def test_selected_polygons_only(provider, tiny_model_path, tmp_path):
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "areas", "memory")
    west, east = QgsFeature(), QgsFeature()
    west.setGeometry(QgsGeometry.fromWkt(
        "POLYGON((-78.3 24.2,-78.1 24.2,-78.1 24.4,-78.3 24.4,-78.3 24.2))"))
    east.setGeometry(QgsGeometry.fromWkt(
        "POLYGON((-77.4 24.6,-77.1 24.6,-77.1 24.9,-77.4 24.9,-77.4 24.6))"))
    polygons.dataProvider().addFeatures([west, east])
    QgsProject.instance().addMapLayer(polygons)
    try:
        both = run("mapscribe:caption_raster", _caption_parameters(
            tiny_model_path, tmp_path / "both.gpkg", TILE_SIZE=256, POLYGONS=polygons.id()))
        polygons.selectByIds([next(polygons.getFeatures()).id()])
        selected = QgsProcessingFeatureSourceDefinition(polygons.id(), True)
        one = run("mapscribe:caption_raster", _caption_parameters(
            tiny_model_path, tmp_path / "one.gpkg", TILE_SIZE=256, POLYGONS=selected))
        assert 0 < one["TILES"] < both["TILES"]
        polygons.removeSelection()
        with pytest.raises(QgsProcessingException, match="no polygon.*select some"):
            run("mapscribe:caption_raster", _caption_parameters(
                tiny_model_path, tmp_path / "none.gpkg", TILE_SIZE=256, POLYGONS=selected))
    finally:
        QgsProject.instance().removeMapLayer(polygons.id())


def test_cancel_keeps_the_tiles_captioned_so_far(provider, tiny_model_path, tmp_path):
    feedback = RecordingFeedback(cancel_at_progress=True)
    result = run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, tmp_path / "cancelled.gpkg", BATCH_SIZE=1), feedback)
    assert result["STOPPED"] == "cancelled"
    done = result["CAPTIONED"] + result["NODATA"]
    assert 0 < done < result["TILES"] == 12
    assert _layer(result["OUTPUT"]).featureCount() == done
    assert any("Resume" in warning for warning in feedback.warnings)

    # Resume finishes the same output.
    result = run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, tmp_path / "cancelled.gpkg", RESUME=True))
    assert result["STOPPED"] == "completed"
    assert result["CAPTIONED"] + result["NODATA"] == 12 - done
    assert _layer(result["OUTPUT"]).featureCount() == 12


@pytest.mark.parametrize("overrides, message", [
    ({"BANDS": "1/2"}, r"Incorrect parameter value for BANDS"),  # an enum: no free text
    ({"MODEL": str(RGB_BYTE)}, r"RGB\.byte\.tif: not a MapScribe model file"),
    ({"EXTENT": "0,1,0,1 [EPSG:32618]"}, r"does not overlap|outside"),
    ({"EXTENT": "-78,-77.5,24,24.5 [EPSG:4326]", "POLYGONS": str(RGB_BYTE)},
     r"either an extent|Could not load source layer"),
    ({"DEVICE": "tpu"}, r"Incorrect parameter value for DEVICE"),
])
def test_bad_input_gives_the_engines_clear_message(provider, tiny_model_path, tmp_path,
                                                   overrides, message):
    with pytest.raises(QgsProcessingException, match=message):
        run("mapscribe:caption_raster",
            _caption_parameters(tiny_model_path, tmp_path / "bad.gpkg", **overrides))


def test_toolbox_and_batch_dialogs_take_every_parameter(provider, dialogs_iface,
                                                         tiny_model_path, tmp_path):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from pytest_qgis.utils import process_events

    for algorithm in provider.algorithms():
        batch = BatchAlgorithmDialog(algorithm.create(), parent=None)
        table = batch.mainWidget().tblParameters
        headers = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
        # One column per parameter (a batch row is one run), advanced ones included.
        assert headers == [p.description() for p in algorithm.parameterDefinitions()]
        batch.deleteLater()

    dialog = AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(
        "mapscribe:caption_raster"), parent=None)
    chosen = {"INPUT": str(RGB_BYTE), "MODEL": str(tiny_model_path), "TILE_SIZE": 400.0,
              "TILE_SIZE_UNIT": "pixels", "OVERLAP_UNIT": "pixels", "BANDS": "3/2/1",
              "DEVICE": "cpu", "RESUME": True, "OUTPUT": str(tmp_path / "dialog.gpkg")}
    dialog.setParameters(chosen)
    read_back = dialog.mainWidget().createProcessingParameters()
    output = read_back.pop("OUTPUT")
    assert output.sink.staticValue() == chosen.pop("OUTPUT")
    assert {name: read_back[name] for name in chosen} == chosen
    dialog.deleteLater()
    process_events()


def test_batch_of_two_rasters_with_one_context(provider, tiny_model_path, tmp_path):
    """Batch mode runs a fresh instance of the algorithm per row with one shared context."""
    context = _context()
    rows = [(RGB_BYTE, tmp_path / "rgb.gpkg", 400), (NAIP, tmp_path / "naip.gpkg", 480)]
    # As the batch dialog sets outputs when "Load layers on completion" is checked.
    results = [run("mapscribe:caption_raster", _caption_parameters(
        tiny_model_path, QgsProcessingOutputLayerDefinition(str(out), QgsProject.instance()),
        INPUT=str(raster), TILE_SIZE=size), context=context)
        for raster, out, size in rows]
    assert [r["TILES"] for r in results] == [4, 4]
    assert _layer(results[0]["OUTPUT"]).crs().authid() == "EPSG:32618"
    assert _layer(results[1]["OUTPUT"]).crs().authid() == "EPSG:26914"
    # Both outputs are queued for loading into the project, naming their layer (a GeoPackage
    # may hold several); loaded as the toolbox loads them, they get the captions style.
    assert set(context.layersToLoadOnCompletion()) == {r["OUTPUT"] for r in results}
    from processing.gui.Postprocessing import handleAlgorithmResults

    algorithm = QgsApplication.processingRegistry().algorithmById("mapscribe:caption_raster")
    assert handleAlgorithmResults(algorithm, context, RecordingFeedback(), showResults=False)
    project = QgsProject.instance()
    loaded = [layer_id for layer_id, layer in project.mapLayers().items()
              if layer.source() in {r["OUTPUT"] for r in results}]
    styled = [_styled_as_captions(project.mapLayer(layer_id)) for layer_id in loaded]
    # Python wrappers of the layers must be gone before the project deletes the layers.
    project.removeMapLayers(loaded)
    assert styled == [True, True]


def _styled_as_captions(layer) -> bool:
    """Marked for the captions panel, with the captions style's labels and map tips."""
    from mapscribe.plugin.layers import is_captions_layer

    return (is_captions_layer(layer) and layer.labelsEnabled()
            and "caption" in layer.mapTipTemplate())


# --------------------------------------------------------------------------------------------
# Export captions, and a two-step model
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def caption_grid(provider, tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "grid.gpkg"
    return run("mapscribe:caption_raster", _caption_parameters(tiny_model_path, out,
                                                               TILE_SIZE=400))


def test_export_each_format(provider, caption_grid, tmp_path):
    for fmt, suffix in (("html", ".html"), ("geojson", ".geojson"), ("csv", ".csv")):
        out = tmp_path / f"captions{suffix}"
        result = run("mapscribe:export_captions",
                     {"INPUT": caption_grid["OUTPUT"], "FORMAT": fmt, "OUTPUT": str(out)})
        assert result == {"OUTPUT": str(out), "TILES": 4}  # 2 × 2 tiles of 400 px
    assert (tmp_path / "captions.html").read_text().count("<li id=\"tile-") == 4
    assert len(json.loads((tmp_path / "captions.geojson").read_text())["features"]) == 4
    assert (tmp_path / "captions.csv").read_text().startswith("tile_id,row,col,caption")


def test_export_replaces_the_file_people_chose_as_processing_outputs_do(provider, caption_grid,
                                                                       tmp_path):
    out = tmp_path / "notes.csv"
    out.write_text("a file people wrote themselves\n")
    run("mapscribe:export_captions", {"INPUT": caption_grid["OUTPUT"], "FORMAT": "csv",
                                      "OUTPUT": str(out)})
    assert out.read_text().startswith("tile_id,row,col,caption")


def test_export_refuses_a_suffix_that_contradicts_the_format(provider, caption_grid, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"does not fit the format csv.*\.csv"):
        run("mapscribe:export_captions", {"INPUT": caption_grid["OUTPUT"], "FORMAT": "csv",
                                          "OUTPUT": str(tmp_path / "captions.html")})
    # A temporary output takes the format's suffix.
    result = run("mapscribe:export_captions", {"INPUT": caption_grid["OUTPUT"],
                                               "FORMAT": "csv",
                                               "OUTPUT": QgsProcessing.TEMPORARY_OUTPUT})
    assert result["OUTPUT"].endswith(".csv") and Path(result["OUTPUT"]).is_file()


def test_export_of_a_layer_mapscribe_did_not_write(provider, tmp_path):
    other = tmp_path / "other.gpkg"
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "other", "memory")
    from qgis.core import QgsVectorFileWriter

    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(other),
                                              QgsProject.instance().transformContext(), options)
    with pytest.raises(QgsProcessingException, match="no MapScribe captions layer"):
        run("mapscribe:export_captions", {"INPUT": str(other), "FORMAT": "html",
                                          "OUTPUT": str(tmp_path / "x.html")})


def _child_as_the_modeler_adds_it(model, algorithm_id: str, child_id: str,
                                  sources: dict) -> QgsProcessingModelChildAlgorithm:
    """A child algorithm made by the modeler's own parameters dialog (every parameter at its
    default), then wired with ``sources``."""
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    dialog = ModelerParametersDialog(algorithm, model)
    child = dialog.createAlgorithm()
    dialog.deleteLater()
    child.setChildId(child_id)
    for name, source in sources.items():
        child.addParameterSources(name, [source])
    return child


def test_model_caption_then_export(provider, dialogs_iface, tiny_model_path, tmp_path):
    """A graphical-modeler model: caption raster → export captions, each step added through
    the modeler's parameters dialog, run in-process."""
    model = QgsProcessingModelAlgorithm("Caption and report", "MapScribe tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("raster", "Raster"),
                            QgsProcessingModelParameter("raster"))
    model.addModelParameter(QgsProcessingParameterFile("model", "Model"),
                            QgsProcessingModelParameter("model"))
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    from_input = QgsProcessingModelChildParameterSource.fromModelParameter

    model.addChildAlgorithm(_child_as_the_modeler_adds_it(
        model, "mapscribe:caption_raster", "caption",
        {"INPUT": from_input("raster"), "MODEL": from_input("model"), "TILE_SIZE": static(400),
         "TILE_SIZE_UNIT": static("pixels"), "BEAM": static(1), "DEVICE": static("cpu")}))
    export = _child_as_the_modeler_adds_it(
        model, "mapscribe:export_captions", "export",
        {"INPUT": QgsProcessingModelChildParameterSource.fromChildOutput("caption", "OUTPUT")})
    report = QgsProcessingModelOutput("report", "Report")
    report.setChildId("export")
    report.setChildOutputName("OUTPUT")
    export.setModelOutputs({"report": report})
    model.addChildAlgorithm(export)
    model.updateDestinationParameters()
    valid, problems = model.validate()
    assert valid, problems
    assert export.parameterSources()["FORMAT"][0].staticValue() == "html"  # the default

    out = tmp_path / "report.html"
    feedback = RecordingFeedback()
    result = run(model, {"raster": str(RGB_BYTE), "model": str(tiny_model_path),
                         "export:report": str(out)}, feedback)
    assert Path(result["export:report"]) == out
    html = out.read_text()
    assert "RGB.byte.tif" in html and 'id="overview-heading"' in html
    assert any("Wrote 4 tiles as html" in info for info in feedback.infos)


# --------------------------------------------------------------------------------------------
# Evaluate and train
# --------------------------------------------------------------------------------------------
def test_evaluate_captioner_outputs_metrics_and_files(provider, tiny_model_path, tmp_path):
    feedback = RecordingFeedback()
    result = run("mapscribe:evaluate_captioner", {
        "MODEL": str(tiny_model_path), "DATASET": str(UCM_SAMPLE), "SPLIT": "train", "BEAM": 1,
        "COMPUTE_METEOR": False, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "metrics.json"),
        "REPORT": str(tmp_path / "report.html")}, feedback)
    assert result["IMAGES"] == 6  # the sample's train split
    assert result["METEOR"] is None
    for name in ("BLEU_1", "BLEU_4", "ROUGE_L"):
        assert 0 <= result[name] <= 1
    # The tiny model has learnt its six training images: its captions overlap the references.
    assert result["BLEU_1"] > 0.2 and result["CIDER_D"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["BLEU-4"] == pytest.approx(result["BLEU_4"])
    assert len(saved["predictions"]) == 6 and all(p["references"] for p in saved["predictions"])
    report = (tmp_path / "report.html").read_text()
    assert report.count("<th scope=\"row\">") == 6
    table = [info for info in feedback.infos if info.startswith("split ")]
    assert table and "CIDEr-D" in table[0]
    assert feedback.progress[-1] == pytest.approx(100)


def test_evaluate_without_optional_files_and_with_an_empty_split(provider, tiny_model_path):
    result = run("mapscribe:evaluate_captioner", {
        "MODEL": str(tiny_model_path), "DATASET": str(UCM_SAMPLE), "SPLIT": "test", "BEAM": 1,
        "COMPUTE_METEOR": False, "DEVICE": "cpu"})
    assert result["IMAGES"] == 1 and "OUTPUT" not in result and "REPORT" not in result
    with pytest.raises(QgsProcessingException, match="no such folder|annotations.json"):
        run("mapscribe:evaluate_captioner", {"MODEL": str(tiny_model_path),
                                             "DATASET": str(REPO / "tests"), "DEVICE": "cpu"})


def test_train_captioner_cancelled_in_the_first_epoch_leaves_a_checkpoint(provider, tmp_path):
    class CancelInFirstEpoch(RecordingFeedback):
        def setProgressText(self, text):
            if text.startswith("epoch 1/"):
                self.cancel()
            super().setProgressText(text)

    feedback = CancelInFirstEpoch()
    out = tmp_path / "model.mscap"
    result = run("mapscribe:train_captioner", {
        "DATASET": str(UCM_SAMPLE), "BACKBONE": "efficientnet_lite0", "EPOCHS": 3,
        "LR": 0.005, "BATCH_SIZE": 4, "EMBED_SIZE": 16, "HIDDEN_SIZE": 32,
        "ATTENTION_SIZE": 16, "CONTEXT_SIZE": 32, "MIN_WORD_COUNT": 1, "FEATURE_VARIANTS": 1,
        "DEVICE": "cpu", "OUTPUT": str(out)}, feedback)
    assert result["STOPPED"] == "cancelled"
    assert result["OUTPUT"] is None and not out.exists()
    assert Path(result["CHECKPOINT"]).is_file()
    assert any("Resume" in warning and result["CHECKPOINT"] in warning
               for warning in feedback.warnings)


def test_train_captioner_bad_dataset_message(provider, tmp_path):
    with pytest.raises(QgsProcessingException, match="annotations.json"):
        run("mapscribe:train_captioner", {"DATASET": str(tmp_path), "EPOCHS": 1, "LR": 0.01,
                                          "DEVICE": "cpu",
                                          "OUTPUT": str(tmp_path / "m.mscap")})


def test_caption_raster_without_model_takes_the_default_model(provider, tmp_path):
    """processing.run without MODEL: the bundled model (QGIS 3.22 refused the run with
    "mandatory parameters were not specified: MODEL")."""
    parameters = _caption_parameters("unused", tmp_path / "default.gpkg", TILE_SIZE=400)
    del parameters["MODEL"]
    result = run("mapscribe:caption_raster", parameters)
    assert result["TILES"] == 4 and result["STOPPED"] == "completed"
    from mapscribe.model import read_caption_layer_info

    stored = read_caption_layer_info(tmp_path / "default.gpkg", "captions").run["model"]
    assert stored["name"] == "default.mscap"
    # Units are said where the numbers are asked for; bands and device are lists.
    algorithm = QgsApplication.processingRegistry().algorithmById("mapscribe:caption_raster")
    assert "tile size unit" in algorithm.parameterDefinition("TILE_SIZE").description()
    assert "percent or pixels" in algorithm.parameterDefinition("OVERLAP").description()
    for name in ("BANDS", "DEVICE"):
        assert algorithm.parameterDefinition(name).type() == "enum", name
    assert algorithm.parameterDefinition("MODEL").flags() & \
        algorithm.parameterDefinition("MODEL").FlagOptional
