"""Processing algorithm ``mapscribe:export_captions``: a captions GeoPackage to GeoJSON, CSV or
an accessible HTML report, through the engine's ``export_captions``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingParameterEnum, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterVectorLayer, QgsProviderRegistry)

from .common import GROUP_CAPTIONING, FeedbackReporter, MapScribeAlgorithm, engine_errors, engine_log_to, import_engine, tr

# model/export.py EXPORT_FORMATS, in the order shown, with the suffix a temporary file gets.
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

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.INPUT, tr("Captions layer (written by Caption raster)"),
            [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterEnum(
            self.FORMAT, tr("Format"), list(FORMAT_SUFFIXES), False, "html", False,
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, tr("Output file"),
            tr("HTML report (*.html);;GeoJSON (*.geojson);;CSV (*.csv)")))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, tr("Tiles exported")))

    # -- main thread -------------------------------------------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(tr("Captions layer: none was given (or it could not be "
                                            "loaded)."))
        parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        path = parts.get("path") or ""
        if layer.providerType() != "ogr" or Path(path).suffix.lower() != ".gpkg":
            raise QgsProcessingException(tr(
                "Captions layer '{name}' ({source}) is not a GeoPackage layer: give the layer "
                "'Caption raster' wrote.").format(name=layer.name(), source=layer.source()))
        self._gpkg = path
        self._layer = parts.get("layerName") or None
        return True

    # -- any thread --------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        export = import_engine("output.exports")
        fmt = self.parameterAsEnumString(parameters, self.FORMAT, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        out = self._fit_suffix(out, fmt, export.format_from_suffix(out),
                               _is_temporary(parameters.get(self.OUTPUT)))
        reporter = FeedbackReporter(feedback)
        with engine_errors(export.ExportError), engine_log_to(reporter):
            result = export.export_captions(self._gpkg, fmt, out, layer=self._layer)
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
