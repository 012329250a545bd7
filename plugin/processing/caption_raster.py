"""Processing algorithm ``mapscribe:caption_raster``: the engine's ``caption_raster`` job
(raster + model file → GeoPackage grid of captions) behind Processing's parameters."""

from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeatureRequest, QgsGeometry,
                       QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterBoolean,
                       QgsProcessingParameterEnum, QgsProcessingParameterExtent,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsProcessingParameterVectorDestination,
                       QgsProcessingLayerPostProcessorInterface, QgsProcessingUtils,
                       QgsProviderRegistry)

from ..parameters import crs_text
from .common import GROUP_CAPTIONING, MODEL_FILE_FILTER, FeedbackReporter, MapScribeAlgorithm, advanced, default_model, engine_errors, engine_log_to, import_engine, split_ogr_destination, tr

TILE_SIZE_UNITS = ("map", "pixels")   # CaptionRasterParams.tile_size_unit
OVERLAP_UNITS = ("percent", "pixels")  # CaptionRasterParams.overlap_unit
DEFAULT_LAYER = "captions"


class CaptionRasterAlgorithm(MapScribeAlgorithm):
    NAME = "caption_raster"
    DISPLAY_NAME = "Caption raster"
    GROUP = GROUP_CAPTIONING
    TAGS = "caption,describe,accessibility,screen reader,deep learning,tiles,grid,imagery"
    HELP = (
        "Describes a raster in words: covers it (or an extent, or polygons) with a grid of "
        "tiles aligned to its pixels, captions every tile with a MapScribe model, and writes "
        "the grid to a GeoPackage layer with the fields tile_id, row, col, caption, score, "
        "status, model and created. Tiles that are mostly nodata are recorded as 'nodata' "
        "without a caption.\n\n"
        "<b>Input raster</b>: a raster file GDAL reads (GeoTIFF, ...), with a CRS.\n"
        "<b>Extent</b> (optional): only the tiles over this rectangle; in its own CRS (or the "
        "project's, else the raster's, when it names none).\n"
        "<b>Polygons</b> (optional): only the tiles that touch these polygons (the selected "
        "ones with 'Selected features only'). Give an extent or polygons, not both.\n"
        "<b>Model file</b>: a .mscap file written by 'Train captioner' (the bundled model by "
        "default when it is installed).\n"
        "<b>Tile size</b>: 0 takes the size the model was trained at (its input size × its "
        "ground resolution). <b>Tile size unit</b>: map = the raster CRS's units (metres for "
        "UTM), or pixels.\n"
        "<b>Overlap</b> between neighbouring tiles, in percent of the tile or in pixels.\n"
        "<b>Bands</b>: the raster bands shown to the model as red, green, blue, e.g. 1,2,3 or "
        "4,3,2, or one band for gray; empty = the first three (or the only one).\n"
        "<b>Batch size</b>: tiles captioned at once (lower it when memory runs out). "
        "<b>Beam width</b>: 1 is fastest; 3 gives better captions.\n"
        "<b>Device</b>: auto (a GPU when there is one), cpu, cuda, cuda:N or mps.\n"
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
    RESUME = "RESUME"
    OUTPUT = "OUTPUT"
    CAPTIONED = "CAPTIONED"
    NODATA = "NODATA"
    TILES = "TILES"
    STOPPED = "STOPPED"

    def __init__(self) -> None:
        super().__init__()
        # Filled by prepareAlgorithm (main thread) for processAlgorithm (any thread).
        self._raster_path = ""
        self._raster_crs = QgsCoordinateReferenceSystem()

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, tr("Input raster")))
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, tr("Extent to caption (empty: the whole raster)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POLYGONS, tr("Caption only tiles touching these polygons"),
            [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, tr("Model file"), QgsProcessingParameterFile.File, "",
            default_model(), False, MODEL_FILE_FILTER))
        self.addParameter(number(self.TILE_SIZE, tr("Tile size (0: from the model)"),
                                 number.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.TILE_SIZE_UNIT, tr("Tile size unit"), list(TILE_SIZE_UNITS), False, "map",
            False, usesStaticStrings=True))
        self.addParameter(number(self.OVERLAP, tr("Overlap between tiles"), number.Double,
                                 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.OVERLAP_UNIT, tr("Overlap unit"), list(OVERLAP_UNITS), False, "percent",
            False, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, tr("Bands as red,green,blue (empty: 1,2,3 or the only band)"), "",
            False, True))
        self.addParameter(number(self.BATCH_SIZE, tr("Batch size (tiles at once)"),
                                 number.Integer, 8, False, 1))
        self.addParameter(number(self.BEAM, tr("Beam width"), number.Integer, 3, False, 1, 20))
        self.addParameter(QgsProcessingParameterString(
            self.DEVICE, tr("Device (auto, cpu, cuda, cuda:N, mps)"), "auto"))
        self.addParameter(advanced(number(self.MAX_LENGTH, tr("Longest caption, in words"),
                                          number.Integer, 20, False, 2, 100)))
        self.addParameter(advanced(number(
            self.NODATA_THRESHOLD, tr("Nodata threshold: skip tiles with more nodata than this "
                                      "fraction"), number.Double, 0.5, False, 0.0, 0.99)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.RESUME, tr("Resume an interrupted run into the same output"), False)))
        output = QgsProcessingParameterVectorDestination(
            self.OUTPUT, tr("Captions"), QgsProcessing.TypeVectorPolygon)
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
    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(tr("Input raster: no raster layer was given (or it "
                                            "could not be loaded)."))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(tr(
                "Input raster '{name}' is a {kind} layer: MapScribe reads raster files through "
                "GDAL. Save it as a GeoTIFF first (right-click the layer > Export > Save As) "
                "and caption that.").format(name=layer.name(), kind=layer.providerType()))
        self._raster_path = gdal_path(layer.source())
        self._raster_crs = layer.crs()
        return True

    # -- any thread --------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        captioning = import_engine("jobs.caption")
        tiling = import_engine("geo.areas")
        reporter = FeedbackReporter(feedback)

        area = self._area(parameters, context, tiling)
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if not model:
            raise QgsProcessingException(tr(
                "Model file: none given, and the bundled model (resources/default.mscap) is not "
                "installed. Give a .mscap file written by 'Train captioner'."))
        path, layer_name = self._output(parameters, context)
        resume = self.parameterAsBoolean(parameters, self.RESUME, context)
        tile_size = self.parameterAsDouble(parameters, self.TILE_SIZE, context)
        bands = self.parameterAsString(parameters, self.BANDS, context).strip()
        options = {}
        if bands:
            options["bands"] = bands  # empty keeps the engine's default band mapping
        with engine_errors(*captioning.CAPTION_RASTER_ERRORS):
            params = captioning.CaptionRasterParams(
                raster=self._raster_path, model=model, output=path, layer=layer_name,
                area=area, tile_size=tile_size or None,
                tile_size_unit=self.parameterAsEnumString(parameters, self.TILE_SIZE_UNIT,
                                                          context),
                overlap=self.parameterAsDouble(parameters, self.OVERLAP, context),
                overlap_unit=self.parameterAsEnumString(parameters, self.OVERLAP_UNIT, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                beam_size=self.parameterAsInt(parameters, self.BEAM, context),
                max_length=self.parameterAsInt(parameters, self.MAX_LENGTH, context),
                device=self.parameterAsString(parameters, self.DEVICE, context).strip() or "auto",
                max_invalid_fraction=self.parameterAsDouble(parameters, self.NODATA_THRESHOLD,
                                                            context),
                # Processing replaces outputs by convention; resume keeps what is there.
                overwrite=not resume, resume=resume, **options)
            with engine_log_to(reporter):
                result = captioning.caption_raster(params, reporter, reporter.cancelled)

        for note in result.notes:
            reporter.warning(note)
        if result.stopped == "cancelled":
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

    def _area(self, parameters, context, tiling):
        """The engine's area of interest from EXTENT or POLYGONS (neither: the whole raster)."""
        has_extent = parameters.get(self.EXTENT) not in (None, "")
        polygons = self.parameterAsSource(parameters, self.POLYGONS, context)
        if has_extent and polygons is not None:
            raise QgsProcessingException(tr(
                "Give either an extent (EXTENT) or polygons (POLYGONS), not both: the tiles "
                "cover one area."))
        if polygons is not None:
            return self._polygon_area(polygons, tiling)
        if has_extent:
            extent = self.parameterAsExtent(parameters, self.EXTENT, context)
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not crs.isValid():
                crs = self._raster_crs  # a bare "xmin,xmax,ymin,ymax" is in the raster's CRS
            if extent.isNull() or extent.isEmpty():
                raise QgsProcessingException(tr(
                    "Extent: {value!r} is not a rectangle with an area; give "
                    "xmin,xmax,ymin,ymax [CRS].").format(value=parameters.get(self.EXTENT)))
            return tiling.BoundingBox(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(),
                                      extent.yMaximum(), crs=crs_text(crs))
        return tiling.WholeRaster()

    def _polygon_area(self, source, tiling):
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
        return tiling.PolygonArea(geometries=tuple(wkts), crs=crs_text(source.sourceCrs()),
                                  source=f"polygons layer '{name}'")

    def _output(self, parameters, context):
        """(GeoPackage path, layer name) for OUTPUT."""
        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not destination or destination.startswith("memory:"):
            # Only where a caller bypasses the parameter's no-memory-layer setting.
            destination = QgsProcessingUtils.generateTempFilename("captions.gpkg")
        path, layer = split_ogr_destination(destination)
        return path, layer or DEFAULT_LAYER


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

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API name)
        from ..layers import CAPTIONS_PROPERTY, LayerError, apply_style

        layer.setCustomProperty(CAPTIONS_PROPERTY, "1")
        try:
            apply_style(layer)
        except LayerError as error:
            if feedback is not None:
                feedback.pushWarning(str(error))
