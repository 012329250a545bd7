"""Processing algorithm ``mapscribe:export_captions``: a captions GeoPackage to GeoJSON, CSV or
an accessible HTML report, through the engine's ``export_captions``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterVectorLayer,
)

from ...model import export_captions, format_from_suffix
from .common import (
    GROUP_CAPTIONING,
    FeedbackReporter,
    MapScribeAlgorithm,
    captions_layer_gpkg,
    engine_errors,
    engine_log_to,
    tr,
)

# The engine's EXPORT_FORMATS, in the order shown, with the suffix a temporary file gets.
FORMAT_SUFFIXES = {"html": ".html", "geojson": ".geojson", "csv": ".csv"}


class ExportCaptionsAlgorithm(MapScribeAlgorithm):
    NAME = "export_captions"
    DISPLAY_NAME = "Export captions"
    GROUP = GROUP_CAPTIONING
    TAGS = "export,report,html,geojson,csv,accessibility,screen reader,captions"
    HELP = (
        "Exports the captions layer written by 'Caption raster' for reading outside QGIS.\n\n"
        "<b>Captions layer</b>: the GeoPackage layer 'Caption raster' wrote.\n"
        "<b>Format</b>: html = an accessible report a screen reader can navigate (a summary "
        "of the area, the subjects that recur most, and every tile in reading order, north to "
        "south and west to east); geojson = RFC 7946 GeoJSON in WGS 84; csv = one row per tile "
        "with its caption, score, centre (longitude, latitude) and polygon as WKT.\n"
        "<b>Output file</b>: its suffix must fit the format (.html, .geojson or .csv).\n\n"
        "Outputs: the file and the number of tiles exported (TILES).")

    INPUT = "INPUT"
    FORMAT = "FORMAT"
    OUTPUT = "OUTPUT"
    TILES = "TILES"

    def __init__(self) -> None:
        super().__init__()
        self._gpkg = ""
        self._layer = None

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.INPUT, tr("Captions layer (written by Caption raster)"),
            [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterEnum(
            self.FORMAT, tr("Format"), list(FORMAT_SUFFIXES), False, "html", False,
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, tr("Output file"),
            tr("HTML report (*.html);;GeoJSON (*.geojson);;CSV (*.csv)")))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, tr("Tiles exported")))

    # -- main thread -------------------------------------------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        self._gpkg, self._layer = captions_layer_gpkg(layer)
        return True

    # -- any thread --------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        # Exporting needs no torch: no import_engine() gate here.
        fmt = self.parameterAsEnumString(parameters, self.FORMAT, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        out = self._fit_suffix(out, fmt, format_from_suffix(out),
                               _is_temporary(parameters.get(self.OUTPUT)))
        reporter = FeedbackReporter(feedback)
        with engine_errors(tr("Export captions")), engine_log_to(reporter):
            # Processing replaces its outputs (its dialogs warn first), as every algorithm does.
            result = export_captions(self._gpkg, fmt, out, layer=self._layer, overwrite=True)
        feedback.setProgress(100)
        feedback.pushInfo(tr("Wrote {tiles} tiles as {fmt} to {path}").format(
            tiles=result.tiles, fmt=fmt, path=result.path))
        return {self.OUTPUT: str(result.path), self.TILES: result.tiles}

    def _fit_suffix(self, out: str, fmt: str, suffix_format, temporary: bool) -> str:
        """A temporary output takes the format's suffix; a named file must already have a
        suffix of the format (``suffix_format``: the format its suffix says), so that no .csv
        file ever holds HTML."""
        if suffix_format == fmt:
            return out
        if temporary:
            return str(Path(out).with_suffix(FORMAT_SUFFIXES[fmt]))
        raise QgsProcessingException(tr(
            "Output file {out} does not fit the format {fmt}: name it with {suffix} (or choose "
            "the format its suffix says).").format(out=out, fmt=fmt,
                                                   suffix=FORMAT_SUFFIXES[fmt]))


def _is_temporary(value) -> bool:
    """Whether an OUTPUT value asks for a temporary file (as text or as an output
    definition)."""
    sink = getattr(value, "sink", None)
    if sink is not None:
        value = sink.staticValue() if hasattr(sink, "staticValue") else sink
    return str(value or "") in ("", QgsProcessing.TEMPORARY_OUTPUT)
