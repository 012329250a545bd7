"""Processing algorithm ``mapscribe:describe_captions`` (*Describe captioned area*): the
engine's ``describe_captions`` (a captions layer → its regions layer and its overview, written
into the same GeoPackage) behind Processing's parameters.

No torch is needed: describing reads the captions and their themes with GDAL. When the
algorithm runs from the toolbox, the regions layer is loaded into the project once it is done,
styled as the MapScribe dock styles it (resources/regions.qml), in place of an earlier copy.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterVectorLayer,
)

from ...model import describe_captions
from .common import (
    GROUP_CAPTIONING,
    FeedbackReporter,
    MapScribeAlgorithm,
    captions_layer_gpkg,
    engine_errors,
    engine_log_to,
    tr,
)


class DescribeCaptionsAlgorithm(MapScribeAlgorithm):
    NAME = "describe_captions"
    DISPLAY_NAME = "Describe captioned area"
    GROUP = GROUP_CAPTIONING
    TAGS = ("describe,overview,summary,regions,themes,accessibility,screen reader,blind,"
            "captions")
    HELP = (
        "Describes a captioned area the way a sighted person looks at a map: the whole first, "
        "then the parts. Each tile's theme (the model's theme when the layer has one, else the "
        "caption's words) is told; connected tiles of one theme are dissolved into regions; "
        "and an overview of at most five sentences is written, to be read first.\n\n"
        "<b>Captions layer</b>: the GeoPackage layer 'Caption raster' wrote.\n\n"
        "Written into the same GeoPackage: the regions layer ('regions' for the layer "
        "'captions', else '&lt;layer&gt;_regions'; an earlier one MapScribe wrote is "
        "replaced) with each region's theme, tiles, area in km², share, position, typical "
        "caption and sentence; and the overview, stored with the captions layer.\n\n"
        "Outputs: the regions layer (OUTPUT), the overview (OVERVIEW) and the number of "
        "regions (REGIONS).")

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    OVERVIEW = "OVERVIEW"
    REGIONS = "REGIONS"

    def __init__(self) -> None:
        super().__init__()
        self._gpkg = ""
        self._layer = None
        self._written = None  # (regions layer source, captions layer name) once described

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.INPUT, tr("Captions layer (written by Caption raster)"),
            [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.OUTPUT, tr("Regions"), QgsProcessing.SourceType.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputString(self.OVERVIEW, tr("Overview")))
        self.addOutput(QgsProcessingOutputNumber(self.REGIONS, tr("Regions found")))

    # -- main thread -------------------------------------------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        self._gpkg, self._layer = captions_layer_gpkg(layer)
        return True

    # -- any thread --------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        reporter = FeedbackReporter(feedback)
        with engine_errors(tr("Describe captioned area")), engine_log_to(reporter):
            description = describe_captions(self._gpkg, self._layer)
        feedback.setProgress(100)
        for sentence in description.overview:
            feedback.pushInfo(sentence)
        for note in description.notes:
            reporter.warning(note)
        output = f"{self._gpkg}|layername={description.regions_layer}"
        self._written = (output, description.layer)
        feedback.pushInfo(tr("{n} regions written to {output}; the overview is stored with "
                             "layer '{layer}'.").format(n=len(description.regions),
                                                         output=output, layer=description.layer))
        return {self.OUTPUT: output, self.OVERVIEW: description.text,
                self.REGIONS: len(description.regions)}

    # -- main thread -------------------------------------------------------------------------
    def postProcessAlgorithm(self, context, feedback):
        """Where the algorithm runs with a project (the toolbox), the regions layer is loaded
        into it when the run ends, styled."""
        if self._written is not None and context.project() is not None:
            output, captions_layer = self._written
            details = QgsProcessingContext.LayerDetails(
                f"{Path(self._gpkg).stem} regions", context.project(), self.OUTPUT)
            details.setPostProcessor(RegionsLayerStyler.create(captions_layer))
            context.addLayerToLoadOnCompletion(output, details)
        return {}


class RegionsLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Runs in the main thread once QGIS has loaded the regions layer: gives it the regions
    style (outlines, theme labels, the sentence as map tip) and MapScribe's mark, and takes an
    earlier copy of the same regions out of the project (its file layer was replaced)."""

    # The processing context deletes its post-processors; Python keeps each referenced until
    # then (QGIS holds a plain pointer: a collected Python object would leave it dangling).
    _alive: list = []

    def __init__(self, captions_layer: str = "") -> None:
        super().__init__()
        self.captions_layer = captions_layer

    @classmethod
    def create(cls, captions_layer: str) -> "RegionsLayerStyler":
        from qgis.PyQt import sip

        cls._alive = [styler for styler in cls._alive if not sip.isdeleted(styler)]
        styler = cls(captions_layer)
        cls._alive.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):
        from ..layers import LayerError, layer_source, remove_regions_layers, style_regions_layer

        path, _ = layer_source(layer)
        project = context.project() if context is not None else None
        if project is not None:
            remove_regions_layers(path, self.captions_layer, project)
        try:
            style_regions_layer(layer, self.captions_layer)
        except LayerError as error:
            if feedback is not None:
                feedback.pushWarning(str(error))
