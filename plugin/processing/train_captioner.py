"""Processing algorithm ``mapscribe:train_captioner``: dataset folder in, model file out,
through the engine's ``train_captioner`` job (the one the command line and the training dialog
run)."""

from __future__ import annotations

import re
from pathlib import Path

from qgis.core import (QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingOutputString,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from .common import GROUP_TRAINING, MODEL_FILE_FILTER, FeedbackReporter, MapScribeAlgorithm, advanced, engine_errors, engine_log_to, import_engine, tr

# model/encoders.py BACKBONES, after "auto"; listed here so that the provider loads without
# torch (tests/plugin/test_processing.py checks the two lists agree).
BACKBONES = ("auto", "efficientnet_lite0", "resnet18", "resnet34", "resnet50", "resnet101",
             "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny")

# Shares of the progress bar: encoding the images (frozen-encoder features), the epochs, and
# the final decoded evaluation of the val (and test) split.
_ENCODING_SHARE, _EPOCHS_SHARE = 0.1, 0.8
_EPOCH_STAGE = re.compile(r"^epoch (\d+)/(\d+)$")


def training_fraction(update):
    """The whole training job's fraction done from one engine progress update."""
    epoch = _EPOCH_STAGE.match(update.stage)
    if epoch:
        done, total = int(epoch.group(1)) - 1, int(epoch.group(2))
        return _ENCODING_SHARE + _EPOCHS_SHARE * (done + update.fraction) / max(1, total)
    if update.stage.startswith("encoding"):
        return _ENCODING_SHARE * update.fraction
    if update.stage == "captioning":
        return _ENCODING_SHARE + _EPOCHS_SHARE + (1 - _ENCODING_SHARE - _EPOCHS_SHARE) * \
            update.fraction
    return None


class TrainCaptionerAlgorithm(MapScribeAlgorithm):
    NAME = "train_captioner"
    DISPLAY_NAME = "Train captioner"
    GROUP = GROUP_TRAINING
    TAGS = "train,deep learning,captioning,model,rsicd,attention,lstm,pytorch"
    HELP = (
        "Trains an image captioner (an ImageNet-pretrained encoder and an attention LSTM "
        "decoder) on a caption dataset and writes a MapScribe model file (.mscap) that "
        "'Caption raster' uses.\n\n"
        "<b>Dataset folder</b>: images/ and annotations.json (RSICD or COCO captions format); "
        "entries that cannot be used are reported in the log.\n"
        "<b>Backbone</b>: the encoder; auto = the best ImageNet-pretrained one available "
        "offline.\n"
        "<b>Epochs</b>; training stops earlier when the validation CIDEr-D stops improving "
        "(patience, advanced). <b>Learning rate</b>: 0 lets the learning-rate finder choose. "
        "<b>Batch size</b>: captions per step.\n"
        "<b>Decoder parameters</b> (arcgis.learn names): embed_size, hidden_size, "
        "attention_size, teacher_forcing (probability of feeding the reference word; below 1, "
        "scheduled sampling), dropout, pretrained_emb (word vectors, fastText .vec or GloVe "
        ".txt).\n"
        "Advanced: input chip size, attention grid, validation share, minimum word count, "
        "fine-tuning the encoder, feature variants, patience, the ground resolution of the "
        "training images (sets the default tile size when captioning), float16 weights, seed, "
        "device, and Resume from a checkpoint left by a cancelled run.\n\n"
        "Each epoch's loss and validation metrics appear in the log. Cancelling stops after "
        "the batch in hand and leaves a checkpoint (MODEL.checkpoint.pt) to resume from.\n"
        "Outputs: the model file, the checkpoint, how training ended (STOPPED), the best "
        "epoch and the validation and test BLEU-4 and CIDEr-D.")

    DATASET = "DATASET"
    BACKBONE = "BACKBONE"
    EPOCHS = "EPOCHS"
    LR = "LR"
    BATCH_SIZE = "BATCH_SIZE"
    EMBED_SIZE = "EMBED_SIZE"
    HIDDEN_SIZE = "HIDDEN_SIZE"
    ATTENTION_SIZE = "ATTENTION_SIZE"
    TEACHER_FORCING = "TEACHER_FORCING"
    DROPOUT = "DROPOUT"
    PRETRAINED_EMB = "PRETRAINED_EMB"
    CONTEXT_SIZE = "CONTEXT_SIZE"
    CHIP_SIZE = "CHIP_SIZE"
    GRID_SIZE = "GRID_SIZE"
    VAL_SPLIT_PCT = "VAL_SPLIT_PCT"
    MIN_WORD_COUNT = "MIN_WORD_COUNT"
    FINE_TUNE = "FINE_TUNE"
    ENCODER_LR = "ENCODER_LR"
    FEATURE_VARIANTS = "FEATURE_VARIANTS"
    PATIENCE = "PATIENCE"
    GROUND_RESOLUTION = "GROUND_RESOLUTION"
    EVALUATE_TEST = "EVALUATE_TEST"
    HALF = "HALF"
    SEED = "SEED"
    DEVICE = "DEVICE"
    RESUME = "RESUME"
    OUTPUT = "OUTPUT"
    CHECKPOINT = "CHECKPOINT"
    STOPPED = "STOPPED"
    BEST_EPOCH = "BEST_EPOCH"
    METRIC_OUTPUTS = {("val", "BLEU-4"): "VAL_BLEU_4", ("val", "CIDEr-D"): "VAL_CIDER_D",
                      ("test", "BLEU-4"): "TEST_BLEU_4", ("test", "CIDEr-D"): "TEST_CIDER_D"}

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        number = QgsProcessingParameterNumber
        add = self.addParameter
        add(QgsProcessingParameterFile(self.DATASET, tr("Dataset folder (images/ + "
                                                        "annotations.json)"),
                                       QgsProcessingParameterFile.Folder))
        add(QgsProcessingParameterEnum(self.BACKBONE, tr("Backbone (encoder)"), list(BACKBONES),
                                       False, "auto", False, usesStaticStrings=True))
        add(number(self.EPOCHS, tr("Epochs"), number.Integer, 10, False, 1))
        add(number(self.LR, tr("Learning rate (0: the learning-rate finder chooses)"),
                   number.Double, 0.0, False, 0.0))
        add(number(self.BATCH_SIZE, tr("Batch size"), number.Integer, 32, False, 1))
        add(number(self.EMBED_SIZE, tr("Decoder: embed_size"), number.Integer, 256, False, 1))
        add(number(self.HIDDEN_SIZE, tr("Decoder: hidden_size"), number.Integer, 512, False, 1))
        add(number(self.ATTENTION_SIZE, tr("Decoder: attention_size"), number.Integer, 256,
                   False, 1))
        add(number(self.TEACHER_FORCING, tr("Decoder: teacher_forcing"), number.Double, 1.0,
                   False, 0.0, 1.0))
        add(number(self.DROPOUT, tr("Decoder: dropout"), number.Double, 0.5, False, 0.0, 0.95))
        add(QgsProcessingParameterFile(
            self.PRETRAINED_EMB, tr("Decoder: pretrained_emb (word vectors, optional)"),
            QgsProcessingParameterFile.File, "", None, True,
            tr("Word vectors (*.vec *.txt);;All files (*.*)")))
        add(advanced(number(self.CONTEXT_SIZE, tr("Decoder: context_size (encoder features "
                                                  "projected to this width; 0: not)"),
                            number.Integer, 512, False, 0)))
        add(advanced(number(self.CHIP_SIZE, tr("Input chip size in pixels"), number.Integer,
                            224, False, 32)))
        add(advanced(number(self.GRID_SIZE, tr("Attention grid size"), number.Integer, 7,
                            False, 1)))
        add(advanced(number(self.VAL_SPLIT_PCT, tr("Validation share when the annotations "
                                                   "give no split"),
                            number.Double, 0.1, False, 0.0, 0.9)))
        add(advanced(number(self.MIN_WORD_COUNT, tr("Minimum word count for the vocabulary"),
                            number.Integer, 5, False, 1)))
        add(advanced(QgsProcessingParameterBoolean(
            self.FINE_TUNE, tr("Fine-tune the encoder too (slower)"), False)))
        add(advanced(number(self.ENCODER_LR, tr("Encoder learning rate (when fine-tuning)"),
                            number.Double, 1e-4, False, 0.0)))
        add(advanced(number(self.FEATURE_VARIANTS, tr("Flipped/rotated variants of each image "
                                                      "(1..8)"),
                            number.Integer, 4, False, 1, 8)))
        add(advanced(number(self.PATIENCE, tr("Early-stopping patience in epochs (0: never)"),
                            number.Integer, 4, False, 0)))
        add(advanced(number(self.GROUND_RESOLUTION, tr("Ground resolution of the training "
                                                       "images, m per pixel (0: unknown)"),
                            number.Double, 0.0, False, 0.0)))
        add(advanced(QgsProcessingParameterBoolean(
            self.EVALUATE_TEST, tr("Score the test split into the model file"), True)))
        add(advanced(QgsProcessingParameterBoolean(self.HALF, tr("Store float16 weights"),
                                                   False)))
        add(advanced(number(self.SEED, tr("Random seed"), number.Integer, 0, False, 0)))
        add(advanced(QgsProcessingParameterString(
            self.DEVICE, tr("Device (auto, cpu, cuda, cuda:N, mps)"), "auto")))
        add(advanced(QgsProcessingParameterFile(
            self.RESUME, tr("Resume from checkpoint (left by a cancelled run)"),
            QgsProcessingParameterFile.File, "", None, True,
            tr("Checkpoint (*.pt);;All files (*.*)"))))
        add(QgsProcessingParameterFileDestination(self.OUTPUT, tr("Model file"),
                                                  MODEL_FILE_FILTER))
        self.addOutput(QgsProcessingOutputFile(self.CHECKPOINT, tr("Checkpoint")))
        self.addOutput(QgsProcessingOutputString(
            self.STOPPED, tr("How training ended (completed, early_stopping, cancelled)")))
        self.addOutput(QgsProcessingOutputNumber(self.BEST_EPOCH, tr("Best epoch")))
        for (split, metric), name in self.METRIC_OUTPUTS.items():
            self.addOutput(QgsProcessingOutputNumber(name, f"{split} {metric}"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        train_job = import_engine("jobs.train")
        data = import_engine("data.folder")
        encoders = import_engine("nn.backbones")
        progress = import_engine("progress")
        p = parameters
        number = self.parameterAsDouble
        integer = self.parameterAsInt
        out = self.parameterAsFileOutput(p, self.OUTPUT, context)
        decoder = {"embed_size": integer(p, self.EMBED_SIZE, context),
                   "hidden_size": integer(p, self.HIDDEN_SIZE, context),
                   "attention_size": integer(p, self.ATTENTION_SIZE, context),
                   "context_size": integer(p, self.CONTEXT_SIZE, context),
                   "teacher_forcing": number(p, self.TEACHER_FORCING, context),
                   "dropout": number(p, self.DROPOUT, context),
                   "pretrained_emb": self.parameterAsFile(p, self.PRETRAINED_EMB, context) or None}
        params = train_job.TrainJobParams(
            dataset=self.parameterAsFile(p, self.DATASET, context), out=out,
            backbone=self.parameterAsEnumString(p, self.BACKBONE, context),
            grid_size=integer(p, self.GRID_SIZE, context),
            chip_size=integer(p, self.CHIP_SIZE, context),
            epochs=integer(p, self.EPOCHS, context),
            lr=number(p, self.LR, context) or None,
            batch_size=integer(p, self.BATCH_SIZE, context),
            val_split_pct=number(p, self.VAL_SPLIT_PCT, context),
            min_word_count=integer(p, self.MIN_WORD_COUNT, context),
            decoder_params=decoder,
            freeze_encoder=not self.parameterAsBoolean(p, self.FINE_TUNE, context),
            encoder_lr=number(p, self.ENCODER_LR, context),
            feature_variants=integer(p, self.FEATURE_VARIANTS, context),
            resume=self.parameterAsFile(p, self.RESUME, context) or None,
            early_stopping_patience=integer(p, self.PATIENCE, context),
            device=self.parameterAsString(p, self.DEVICE, context).strip() or "auto",
            seed=integer(p, self.SEED, context),
            half=self.parameterAsBoolean(p, self.HALF, context),
            ground_resolution_m=number(p, self.GROUND_RESOLUTION, context) or None,
            evaluate_test=self.parameterAsBoolean(p, self.EVALUATE_TEST, context),
            # Processing replaces outputs by convention.
            overwrite=True)
        reporter = FeedbackReporter(feedback, training_fraction, monotonic=True)
        errors = (data.DatasetError, encoders.EncoderError, ValueError, FileExistsError, OSError)
        with engine_errors(*errors), engine_log_to(reporter):
            try:
                result = train_job.train_captioner(params, reporter, reporter.cancelled)
            except progress.Cancelled:
                # Cancelled during the final evaluation: the trained weights are in the
                # checkpoint, which the job keeps until the model file is written.
                return self._cancelled(feedback, params.checkpoint_path)
        if result.stopped == "cancelled":
            return self._cancelled(feedback, result.checkpoint_path)

        feedback.pushInfo(tr("Model written to {path} (best epoch {best}, {stopped}).").format(
            path=result.model_path, best=result.fit.best_epoch, stopped=result.stopped))
        outputs = {self.OUTPUT: result.model_path, self.CHECKPOINT: None,
                   self.STOPPED: result.stopped, self.BEST_EPOCH: result.fit.best_epoch}
        for (split, metric), name in self.METRIC_OUTPUTS.items():
            outputs[name] = (result.metrics.get(split) or {}).get(metric)
        for split, values in result.metrics.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if v is not None)
            feedback.pushInfo(f"{split}: {shown}")
        return outputs

    def _cancelled(self, feedback, checkpoint: str):
        if not Path(checkpoint).is_file():
            # Cancelled while the images were being encoded: no epoch began.
            feedback.pushWarning(tr("Training cancelled before the first epoch: nothing was "
                                    "written."))
            return {self.OUTPUT: None, self.CHECKPOINT: None, self.STOPPED: "cancelled"}
        feedback.pushWarning(tr(
            "Training cancelled: no model file was written. The checkpoint {checkpoint} holds "
            "the training so far; to continue, run again with the same parameters and Resume "
            "from checkpoint = that file.").format(checkpoint=checkpoint))
        return {self.OUTPUT: None, self.CHECKPOINT: checkpoint, self.STOPPED: "cancelled"}
