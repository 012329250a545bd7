"""Processing algorithm ``mapscribe:evaluate_captioner``: caption every image of a dataset split
with a model (real beam-search decoding) and score the captions against the references
(BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), through the engine's ``evaluate_model`` job (the one the
command line runs)."""

from __future__ import annotations

import html
import json
from functools import partial
from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...model import CANCELLED, EvaluateModelParams
from ...model import SPLITS as ENGINE_SPLITS
from ..deps.packages import TRAINING
from ..ui import field_default
from .common import (
    GROUP_TRAINING,
    MODEL_FILE_FILTER,
    FeedbackReporter,
    MapScribeAlgorithm,
    advanced,
    default_model,
    engine_errors,
    engine_log_to,
    import_engine,
    tr,
)

# The engine's splits, the usual choice first.
SPLITS = ("test",) + tuple(split for split in ENGINE_SPLITS if split != "test")
# The engine's defaults, shown in Processing's dialog (never restated here).
DEFAULT = partial(field_default, EvaluateModelParams)
# The engine's metric names → Processing output names (letters, digits and _ only).
METRIC_OUTPUTS = {"BLEU-1": "BLEU_1", "BLEU-2": "BLEU_2", "BLEU-3": "BLEU_3", "BLEU-4": "BLEU_4",
                  "METEOR": "METEOR", "ROUGE-L": "ROUGE_L", "CIDEr-D": "CIDER_D"}


class EvaluateCaptionerAlgorithm(MapScribeAlgorithm):
    NAME = "evaluate_captioner"
    DISPLAY_NAME = "Evaluate captioner"
    GROUP = GROUP_TRAINING
    TAGS = "evaluate,metrics,bleu,cider,meteor,rouge,model,captioning,deep learning"
    HELP = (
        "Scores a MapScribe model on a split of a caption dataset: captions every image by "
        "beam search and compares the captions with the dataset's references.\n\n"
        "<b>Model file</b>: a .mscap file. <b>Dataset folder</b>: images/ and "
        "annotations.json (RSICD or COCO captions format). <b>Split</b>: test, val or train. "
        "<b>Beam width</b>: as when captioning (3 by default).\n"
        "<b>METEOR</b> (advanced) needs Java; without it the other metrics are still given.\n"
        "<b>Metrics (JSON)</b> and <b>Report (HTML)</b> (optional): every metric and every "
        "predicted caption with its references.\n\n"
        "Outputs: BLEU_1 … BLEU_4, METEOR (empty when it could not run), ROUGE_L, CIDER_D "
        "and IMAGES; the log shows them as a table.")

    MODEL = "MODEL"
    DATASET = "DATASET"
    SPLIT = "SPLIT"
    BEAM = "BEAM"
    MAX_LENGTH = "MAX_LENGTH"
    BATCH_SIZE = "BATCH_SIZE"
    COMPUTE_METEOR = "COMPUTE_METEOR"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    IMAGES = "IMAGES"

    def initAlgorithm(self, config=None):
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, tr("Model file"), QgsProcessingParameterFile.Behavior.File, "",
            default_model(), False, MODEL_FILE_FILTER))
        self.addParameter(QgsProcessingParameterFile(
            self.DATASET, tr("Dataset folder (images/ + annotations.json)"),
            QgsProcessingParameterFile.Behavior.Folder))
        self.addParameter(QgsProcessingParameterEnum(
            self.SPLIT, tr("Split"), list(SPLITS), False, DEFAULT("split"), False,
            usesStaticStrings=True))
        self.addParameter(number(self.BEAM, tr("Beam width"), number.Integer, DEFAULT("beam_size"),
                                 False, 1, 20))
        self.addParameter(advanced(number(self.MAX_LENGTH, tr("Longest caption, in words"),
                                          number.Integer, DEFAULT("max_length"), False, 2,
                                          100)))
        self.addParameter(advanced(number(self.BATCH_SIZE, tr("Batch size (images at once)"),
                                          number.Integer, DEFAULT("batch_size"), False, 1)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.COMPUTE_METEOR, tr("Compute METEOR (needs Java)"), DEFAULT("meteor"))))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.DEVICE, tr("Device (auto, cpu, cuda, cuda:N, mps)"), DEFAULT("device"))))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, tr("Metrics and predictions (JSON)"), tr("JSON (*.json)"), None, True,
            False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, tr("Report (HTML)"), tr("HTML (*.html)"), None, True, False))
        for name in METRIC_OUTPUTS.values():
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", "-")))
        self.addOutput(QgsProcessingOutputNumber(self.IMAGES, tr("Images evaluated")))

    def processAlgorithm(self, parameters, context, feedback):
        engine = import_engine(TRAINING)
        model_path = self.parameterAsFile(parameters, self.MODEL, context)
        if not model_path:
            raise QgsProcessingException(tr("Model file: none given, and the bundled model is "
                                            "not installed. Give a .mscap file."))
        reporter = FeedbackReporter(feedback)
        with engine_errors(tr("Evaluate captioner")), engine_log_to(reporter):
            params = EvaluateModelParams(
                model=model_path, dataset=self.parameterAsFile(parameters, self.DATASET, context),
                split=self.parameterAsEnumString(parameters, self.SPLIT, context),
                beam_size=self.parameterAsInt(parameters, self.BEAM, context),
                max_length=self.parameterAsInt(parameters, self.MAX_LENGTH, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                meteor=self.parameterAsBoolean(parameters, self.COMPUTE_METEOR, context),
                device=self.parameterAsString(parameters, self.DEVICE, context).strip()
                or DEFAULT("device"))
            feedback.pushInfo(tr("Captioning the images of the {split} split of {folder} with "
                                 "beam {beam}…").format(split=params.split, folder=params.dataset,
                                                       beam=params.beam_size))
            result = engine.evaluate_model(params, reporter, reporter.cancelled)
        if result.stopped == CANCELLED:
            raise QgsProcessingException(tr("Evaluation cancelled."))

        for line in metric_table(params.split, result.metrics):
            feedback.pushInfo(line)
        if result.metrics.get("METEOR") is None and result.meteor_unavailable_reason:
            feedback.pushInfo(result.meteor_unavailable_reason)
        summary = result.summary(params)
        summary["predictions"] = [{"filename": p.filename, "caption": p.caption,
                                   "score": p.score, "references": p.references}
                                  for p in result.predictions]
        outputs = {METRIC_OUTPUTS[name]: value for name, value in result.metrics.items()
                   if name in METRIC_OUTPUTS}
        outputs[self.IMAGES] = result.images
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if json_path:
            _write_text(Path(json_path), json.dumps(summary, indent=1))
            outputs[self.OUTPUT] = json_path
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context)
        if report_path:
            _write_text(Path(report_path), evaluation_html(summary))
            outputs[self.REPORT] = report_path
        return outputs


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all (a reader never sees half a file)."""
    partial_path = path.with_name(path.name + ".part")
    partial_path.write_text(text, encoding="utf-8")
    partial_path.replace(path)


def metric_table(split: str, metrics) -> list:
    """The metrics as a fixed-width table (one header line, one line for ``split``)."""
    names = list(METRIC_OUTPUTS)
    cells = "".join(f"{metrics[name]:>9.3f}" if metrics.get(name) is not None else f"{'n/a':>9}"
                    for name in names)
    return [f"{'split':<8}" + "".join(f"{name:>9}" for name in names), f"{split:<8}{cells}"]


def evaluation_html(summary) -> str:
    """A small report a screen reader can navigate: the metrics table, then every image's
    predicted caption beside its references, each table with a caption and header cells."""
    escape = html.escape
    metrics = summary["metrics"]
    metric_cells = "".join(
        f"<td>{metrics[name]:.3f}</td>" if metrics.get(name) is not None else "<td>n/a</td>"
        for name in METRIC_OUTPUTS)
    rows = "\n".join(
        f"<tr><th scope=\"row\">{escape(item['filename'])}</th><td>{escape(item['caption'])}"
        f"</td><td>{item['score']:.3f}</td><td><ul>"
        + "".join(f"<li>{escape(reference)}</li>" for reference in item["references"])
        + "</ul></td></tr>" for item in summary["predictions"])
    title = (f"Evaluation of {Path(summary['model']).name} on the {summary['split']} split of "
             f"{Path(summary['dataset']).name}")
    note = (f"<p>{escape(summary['meteor_unavailable_reason'])}</p>"
            if metrics.get("METEOR") is None and summary.get("meteor_unavailable_reason")
            else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(title)}</title></head>
<body>
<main>
<h1>{escape(title)}</h1>
<p>{summary['images']} images, beam width {summary['beam']}.</p>
<h2>Metrics</h2>
<table>
<caption>Caption metrics (higher is better)</caption>
<tr>{''.join(f'<th scope="col">{name}</th>' for name in METRIC_OUTPUTS)}</tr>
<tr>{metric_cells}</tr>
</table>
{note}
<h2>Captions</h2>
<table>
<caption>Each image's predicted caption, its score (mean log-probability per word, nearer 0 is
surer) and the reference captions</caption>
<tr><th scope="col">Image</th><th scope="col">Predicted caption</th><th scope="col">Score</th>
<th scope="col">References</th></tr>
{rows}
</table>
</main>
</body>
</html>
"""
