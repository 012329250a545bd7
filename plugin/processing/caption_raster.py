"""Processing algorithm ``mapscribe:caption_raster``: the engine's ``caption_raster`` job
(raster + model file → GeoPackage grid of captions) behind Processing's parameters."""

from __future__ import annotations

from functools import partial
from typing import Union

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsProviderRegistry,
)

from ...model import (
    CANCELLED,
    OVERLAP_UNITS,
    TILE_SIZE_UNITS,
    BoundingBox,
    CaptionRasterParams,
    ImageSource,
    PolygonArea,
    WholeRaster,
)
from ..layer_sources import layer_image_source
from ..map_inputs import crs_text
from ..ui import ParameterError, field_default
from .common import (
    GROUP_CAPTIONING,
    MODEL_FILE_FILTER,
    FeedbackReporter,
    MapScribeAlgorithm,
    advanced,
    default_model,
    engine_errors,
    engine_log_to,
    import_engine,
    split_ogr_destination,
    tr,
)

# The engine's defaults, shown in Processing's dialog (never restated here).
DEFAULT = partial(field_default, CaptionRasterParams)
# Band mappings offered (R/G/B or one gray band); "auto": the engine's default, the first three
# bands (or the only one). Static strings, written with slashes: qgis_process reads a comma as a
# list of enum values (BANDS=4/3/2 on the command line).
BAND_CHOICES = ("auto", "1/2/3", "3/2/1", "2/3/4", "4/3/2", "5/4/3", "1", "2", "3", "4")
# Device names the engine takes (cuda is cuda:0).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:2", "cuda:3", "mps")


class CaptionRasterAlgorithm(MapScribeAlgorithm):
    NAME = "caption_raster"
    DISPLAY_NAME = "Caption raster"
    GROUP = GROUP_CAPTIONING
    TAGS = "caption,describe,accessibility,screen reader,deep learning,tiles,grid,imagery"
    HELP = (
        "Describes a raster in words: covers it (or an extent, or polygons) with a grid of "
        "tiles aligned to its pixels, captions every tile with a MapScribe model, and writes "
        "the grid to a GeoPackage layer with the fields tile_id, row, col, caption, score, "
        "status, level, parent_id, model and created. Tiles that are mostly nodata are "
        "recorded as 'nodata' without a caption.\n\n"
        "<b>Input raster</b>: any raster layer GDAL serves (a GeoTIFF, a GeoPackage raster "
        "table, a zipped or cloud GeoTIFF, …) or a web basemap (XYZ, WMS, WMTS), read at the "
        "zoom closest to the model's ground resolution; respect the imagery provider's terms "
        "and rate limits.\n"
        "<b>Extent</b> (optional): only the tiles over this rectangle; in its own CRS (or the "
        "project's, else the raster's, when it names none).\n"
        "<b>Polygons</b> (optional): only the tiles that touch these polygons (the selected "
        "ones with 'Selected features only'). Give an extent or polygons, not both.\n"
        "<b>Model file</b> (optional): a .mscap file written by 'Train captioner'; empty "
        "(or MODEL left out on the command line) takes the bundled default model.\n"
        "<b>Tile size</b>, in the tile size unit: 0 takes the size the model was trained at "
        "(its input size × its ground resolution). <b>Tile size unit</b>: map = the raster "
        "CRS's units (metres for UTM), or pixels.\n"
        "<b>Overlap</b> between neighbouring tiles, in the overlap unit: percent of the tile "
        "or pixels.\n"
        "<b>Bands</b>: the raster bands shown to the model as red/green/blue, e.g. 1/2/3 or "
        "4/3/2, or one band for gray; auto = the first three (or the only one).\n"
        "<b>Batch size</b>: tiles captioned at once (lower it when memory runs out). "
        "<b>Beam width</b>: 1 is fastest; 3 gives better captions.\n"
        "<b>Device</b>: auto (a GPU when there is one), cpu, cuda, cuda:N or mps. Without "
        "torch, MapScribe captions with ONNX Runtime (CPU, or an NVIDIA GPU with "
        "onnxruntime-gpu).\n"
        "<b>Caption pyramid levels</b> (advanced): besides the tiles, coarser levels in the "
        "same layer (field 'level', 0 = the coarsest; 'parent_id' the tile above), each tile "
        "covering 2 × 2 tiles of the level below, so the area can be read from the whole to "
        "the details; 0 plans as many as the model can read, 1 the tiles alone.\n"
        "<b>Resume</b> (advanced): continue an interrupted run into the same output instead "
        "of replacing it (same raster, area, tile size and model).\n\n"
        "Outputs: the captions layer, and the counts of tiles captioned (CAPTIONED), nodata "
        "(NODATA) and in the grid (TILES). Cancelling keeps every tile captioned so far.")

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    POLYGONS = "POLYGONS"
    MODEL = "MODEL"
    TILE_SIZE = "TILE_SIZE"
    TILE_SIZE_UNIT = "TILE_SIZE_UNIT"
    OVERLAP = "OVERLAP"
    OVERLAP_UNIT = "OVERLAP_UNIT"
    BANDS = "BANDS"
    BATCH_SIZE = "BATCH_SIZE"
    BEAM = "BEAM"
    DEVICE = "DEVICE"
    MAX_LENGTH = "MAX_LENGTH"
    NODATA_THRESHOLD = "NODATA_THRESHOLD"
    LEVELS = "LEVELS"
    RESUME = "RESUME"
    OUTPUT = "OUTPUT"
    CAPTIONED = "CAPTIONED"
    NODATA = "NODATA"
    TILES = "TILES"
    STOPPED = "STOPPED"

    def __init__(self) -> None:
        super().__init__()
        # Filled by prepareAlgorithm (main thread) for processAlgorithm (any thread).
        self._raster_path: Union[str, ImageSource] = ""
        self._raster_crs = QgsCoordinateReferenceSystem()

    def initAlgorithm(self, config=None):
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, tr("Input raster")))
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, tr("Extent to caption (empty: the whole raster)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POLYGONS, tr("Caption only tiles touching these polygons"),
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        # Optional with the bundled model as default: qgis_process (3.22) reports a mandatory
        # parameter left out as missing even when it has a default.
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, tr("Model file (empty: the bundled default model)"),
            QgsProcessingParameterFile.Behavior.File, "", default_model(), True, MODEL_FILE_FILTER))
        self.addParameter(number(self.TILE_SIZE, tr(
            "Tile size, in the tile size unit (0: the model's own)"),
            number.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.TILE_SIZE_UNIT, tr("Tile size unit"), list(TILE_SIZE_UNITS), False,
            DEFAULT("tile_size_unit"),
            False, usesStaticStrings=True))
        self.addParameter(number(self.OVERLAP, tr(
            "Overlap between tiles, in the overlap unit (percent or pixels)"), number.Double,
            DEFAULT("overlap"), False, 0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.OVERLAP_UNIT, tr("Overlap unit"), list(OVERLAP_UNITS), False,
            DEFAULT("overlap_unit"),
            False, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.BANDS, tr("Bands as red/green/blue, or one gray band"), list(BAND_CHOICES),
            False, BAND_CHOICES[0], False, usesStaticStrings=True))
        self.addParameter(number(self.BATCH_SIZE, tr("Batch size (tiles at once)"),
                                 number.Integer, DEFAULT("batch_size"), False, 1))
        self.addParameter(number(self.BEAM, tr("Beam width"), number.Integer,
                                 DEFAULT("beam_size"), False, 1, 20))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, tr("Device"), list(DEVICE_CHOICES), False, DEFAULT("device"), False,
            usesStaticStrings=True))
        self.addParameter(advanced(number(self.MAX_LENGTH, tr("Longest caption, in words"),
                                          number.Integer, DEFAULT("max_length"), False, 2,
                                          100)))
        self.addParameter(advanced(number(
            self.NODATA_THRESHOLD, tr("Nodata threshold: skip tiles with more nodata than this "
                                      "fraction"), number.Double,
            DEFAULT("max_invalid_fraction"), False, 0.0, 0.99)))
        self.addParameter(advanced(number(
            self.LEVELS, tr("Caption pyramid levels: coarser levels above the tiles, each tile "
                            "covering 2 × 2 below it (0: as many as the model can read, 1: the "
                            "tiles alone)"), number.Integer, 0, False, 0, 30)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.RESUME, tr("Resume an interrupted run into the same output"), False)))
        output = QgsProcessingParameterVectorDestination(
            self.OUTPUT, tr("Captions"), QgsProcessing.SourceType.TypeVectorPolygon)
        # The engine writes GeoPackage files only: a "temporary layer" becomes a temporary
        # .gpkg rather than a memory layer.
        output.setSupportsNonFileBasedOutput(False)
        self.addParameter(output)
        self.addOutput(QgsProcessingOutputNumber(self.CAPTIONED, tr("Tiles captioned")))
        self.addOutput(QgsProcessingOutputNumber(self.NODATA, tr("Tiles recorded as nodata")))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, tr("Tiles in the grid")))
        self.addOutput(QgsProcessingOutputString(
            self.STOPPED, tr("How the run ended (completed or cancelled)")))

    # -- main thread -------------------------------------------------------------------------
    def checkParameterValues(self, parameters, context):
        """A layer MapScribe cannot read is refused before the run, in the dialog too."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is not None:
            try:
                layer_image_source(layer)
            except ParameterError as error:
                return False, tr("Input raster: {error}").format(error=error)
        return super().checkParameterValues(parameters, context)

    def prepareAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(tr("Input raster: no raster layer was given (or it "
                                            "could not be loaded)."))
        try:  # the layer's whole source: a GDAL string with its options, XYZ, WMS, WMTS
            self._raster_path = layer_image_source(layer)
        except ParameterError as error:
            raise QgsProcessingException(tr("Input raster: {error}").format(
                error=error)) from None
        self._raster_crs = layer.crs()
        return True

    # -- any thread --------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        engine = import_engine()
        reporter = FeedbackReporter(feedback)
        with engine_errors(tr("Caption raster")):
            area = self._area(parameters, context)
        model = self.parameterAsFile(parameters, self.MODEL, context) or default_model()
        if not model:
            raise QgsProcessingException(tr(
                "Model file: none given, and the bundled model (resources/default.mscap) is not "
                "installed. Give a .mscap file written by 'Train captioner'."))
        path, layer_name = self._output(parameters, context)
        resume = self.parameterAsBoolean(parameters, self.RESUME, context)
        tile_size = self.parameterAsDouble(parameters, self.TILE_SIZE, context)
        bands = self.parameterAsEnumString(parameters, self.BANDS, context).strip()
        options = {}
        if bands and bands != BAND_CHOICES[0]:
            options["bands"] = bands.replace("/", ",")  # auto: the engine's default mapping
        with engine_errors(tr("Caption raster")):
            params = CaptionRasterParams(
                raster=self._raster_path, model=model, output=path, layer=layer_name,
                area=area, tile_size=tile_size or None,
                tile_size_unit=self.parameterAsEnumString(parameters, self.TILE_SIZE_UNIT,
                                                          context),
                overlap=self.parameterAsDouble(parameters, self.OVERLAP, context),
                overlap_unit=self.parameterAsEnumString(parameters, self.OVERLAP_UNIT, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                beam_size=self.parameterAsInt(parameters, self.BEAM, context),
                max_length=self.parameterAsInt(parameters, self.MAX_LENGTH, context),
                device=self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
                max_invalid_fraction=self.parameterAsDouble(parameters, self.NODATA_THRESHOLD,
                                                            context),
                levels=self.parameterAsInt(parameters, self.LEVELS, context) or "auto",
                # Processing replaces outputs by convention; resume keeps what is there.
                overwrite=not resume, resume=resume, **options)
            with engine_log_to(reporter):
                result = engine.caption_raster(params, reporter, reporter.cancelled)

        for note in result.notes:
            reporter.warning(note)
        if result.stopped == CANCELLED:
            reporter.warning(tr(
                "Cancelled: {done} tiles were captioned and kept; {left} of {total} are still to "
                "caption. Run again with Resume (RESUME) checked to finish.").format(
                    done=result.processed, left=result.remaining, total=result.tiles_total))
        else:
            feedback.pushInfo(tr("Done: {captioned} tiles captioned, {nodata} nodata, {skipped} "
                                 "already in the layer, on {device}, in {seconds:.1f} s.").format(
                captioned=result.captioned, nodata=result.nodata,
                skipped=result.skipped_existing, device=result.device or "-",
                seconds=result.seconds))
            for example in result.examples:
                feedback.pushInfo(f"  row {example.row}, col {example.col}: {example.caption}")
        output = f"{result.output}|layername={result.layer}"
        retarget_layer_to_load(context, output, path)
        return {self.OUTPUT: output, self.CAPTIONED: result.captioned,
                self.NODATA: result.nodata, self.TILES: result.tiles_total,
                self.STOPPED: result.stopped}

    def _area(self, parameters, context):
        """The engine's area of interest from EXTENT or POLYGONS (neither: the whole raster)."""
        has_extent = parameters.get(self.EXTENT) not in (None, "")
        polygons = self.parameterAsSource(parameters, self.POLYGONS, context)
        if has_extent and polygons is not None:
            raise QgsProcessingException(tr(
                "Give either an extent (EXTENT) or polygons (POLYGONS), not both: the tiles "
                "cover one area."))
        if polygons is not None:
            return self._polygon_area(polygons)
        if has_extent:
            extent = self.parameterAsExtent(parameters, self.EXTENT, context)
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not crs.isValid():
                crs = self._raster_crs  # a bare "xmin,xmax,ymin,ymax" is in the raster's CRS
            if extent.isNull() or extent.isEmpty():
                raise QgsProcessingException(tr(
                    "Extent: {value!r} is not a rectangle with an area; give "
                    "xmin,xmax,ymin,ymax [CRS].").format(value=parameters.get(self.EXTENT)))
            return BoundingBox(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(),
                               extent.yMaximum(), crs=crs_text(crs))
        return WholeRaster()

    def _polygon_area(self, source):
        name = source.sourceName() or "polygons"
        if not source.sourceCrs().isValid():
            raise QgsProcessingException(tr(
                "Polygons layer '{name}' has no CRS: set one (Layer Properties > Source) and "
                "run again.").format(name=name))
        request = QgsFeatureRequest().setNoAttributes()
        wkts = []
        for feature in source.getFeatures(request):
            geometry = feature.geometry()
            if geometry.isNull() or geometry.isEmpty():
                continue
            if geometry.constGet().hasCurvedSegments():
                # OGR reads curved WKT too, but the engine densifies straight edges only.
                geometry = QgsGeometry(geometry.constGet().segmentize())
            wkts.append(geometry.asWkt())
        if not wkts:
            raise QgsProcessingException(tr(
                "Polygons layer '{name}' gives no polygon (with 'Selected features only', select "
                "some features first).").format(name=name))
        return PolygonArea(geometries=tuple(wkts), crs=crs_text(source.sourceCrs()),
                           source=f"polygons layer '{name}'")

    def _output(self, parameters, context):
        """(GeoPackage path, layer name) for OUTPUT."""
        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not destination or destination.startswith("memory:"):
            # Only where a caller bypasses the parameter's no-memory-layer setting.
            destination = QgsProcessingUtils.generateTempFilename("captions.gpkg")
        path, layer = split_ogr_destination(destination)
        return path, layer or DEFAULT("layer")


def gdal_path(source: str) -> str:
    """What GDAL (rasterio) opens for a QGIS gdal-provider layer source: the source itself
    (which may be a GDAL connection string such as GPKG:file:table), less any QGIS options."""
    if "|" not in source:
        return source
    return QgsProviderRegistry.instance().decodeUri("gdal", source).get("path") or source


def retarget_layer_to_load(context, new_id: str, path: str) -> None:
    """Let QGIS load the layer just written (``path|layername=...``) when the run ends, in place
    of the destination it noted, which names no layer (a GeoPackage may hold several); and
    style it as the MapScribe panel does once it is loaded."""
    layers = context.layersToLoadOnCompletion()
    for old_id in list(layers):
        if split_ogr_destination(old_id.split("|")[0])[0] != path:
            continue
        details = layers.pop(old_id)
        if details.postProcessor() is None:
            details.setPostProcessor(CaptionsLayerStyler.create())
        layers[new_id] = details
        context.setLayersToLoadOnCompletion(layers)
        return


class CaptionsLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Runs in the main thread once QGIS has loaded the output layer: gives it the captions
    style (resources/captions.qml: outlines, caption labels when zoomed in, map tips) and marks
    it as a MapScribe layer, so the captions panel lists it."""

    # The processing context owns its post-processors and deletes them when it is deleted, so
    # each layer gets its own. Python keeps a reference to each until then: QGIS holds a plain
    # pointer, and a collected Python object would leave it dangling.
    _alive: list = []

    @classmethod
    def create(cls) -> "CaptionsLayerStyler":
        from qgis.PyQt import sip

        cls._alive = [styler for styler in cls._alive if not sip.isdeleted(styler)]
        styler = cls()
        cls._alive.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):
        from ..layers import CAPTIONS_PROPERTY, LayerError, apply_style

        layer.setCustomProperty(CAPTIONS_PROPERTY, "1")
        try:
            apply_style(layer)
        except LayerError as error:
            if feedback is not None:
                feedback.pushWarning(str(error))
