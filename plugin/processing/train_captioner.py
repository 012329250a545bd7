"""Processing algorithm ``mapscribe:train_captioner``: dataset folder in, model file out,
through the engine's ``train_captioner`` job (the one the command line and the training dialog
run)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...model import BACKBONE_NAMES, CANCELLED, DecoderParams, TrainCaptionerParams
from ..deps.packages import TRAINING
from ..ui import field_default
from .common import (
    GROUP_TRAINING,
    MODEL_FILE_FILTER,
    FeedbackReporter,
    MapScribeAlgorithm,
    advanced,
    engine_errors,
    engine_log_to,
    import_engine,
    tr,
)

# "auto" (the best backbone available offline), then the engine's backbones.
BACKBONES = ("auto",) + BACKBONE_NAMES

# The engine's defaults, shown in Processing's dialog (never restated here).
TRAIN = partial(field_default, TrainCaptionerParams)
DECODER = partial(field_default, DecoderParams)


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

    def initAlgorithm(self, config=None):
        number = QgsProcessingParameterNumber
        add = self.addParameter
        add(QgsProcessingParameterFile(self.DATASET, tr("Dataset folder (images/ + "
                                                        "annotations.json)"),
                                       QgsProcessingParameterFile.Behavior.Folder))
        add(QgsProcessingParameterEnum(self.BACKBONE, tr("Backbone (encoder)"), list(BACKBONES),
                                       False, TRAIN("backbone"), False, usesStaticStrings=True))
        add(number(self.EPOCHS, tr("Epochs"), number.Integer, TRAIN("epochs"), False, 1))
        add(number(self.LR, tr("Learning rate (0: the learning-rate finder chooses)"),
                   number.Double, 0.0, False, 0.0))
        add(number(self.BATCH_SIZE, tr("Batch size"), number.Integer, TRAIN("batch_size"),
                   False, 1))
        add(number(self.EMBED_SIZE, tr("Decoder: embed_size"), number.Integer,
                   DECODER("embed_size"), False, 1))
        add(number(self.HIDDEN_SIZE, tr("Decoder: hidden_size"), number.Integer,
                   DECODER("hidden_size"), False, 1))
        add(number(self.ATTENTION_SIZE, tr("Decoder: attention_size"), number.Integer,
                   DECODER("attention_size"), False, 1))
        add(number(self.TEACHER_FORCING, tr("Decoder: teacher_forcing"), number.Double,
                   DECODER("teacher_forcing"), False, 0.0, 1.0))
        add(number(self.DROPOUT, tr("Decoder: dropout"), number.Double, DECODER("dropout"),
                   False, 0.0, 0.95))
        add(QgsProcessingParameterFile(
            self.PRETRAINED_EMB, tr("Decoder: pretrained_emb (word vectors, optional)"),
            QgsProcessingParameterFile.Behavior.File, "", None, True,
            tr("Word vectors (*.vec *.txt);;All files (*.*)")))
        add(advanced(number(self.CONTEXT_SIZE, tr("Decoder: context_size (encoder features "
                                                  "projected to this width; 0: not)"),
                            number.Integer, DECODER("context_size"), False, 0)))
        add(advanced(number(self.CHIP_SIZE, tr("Input chip size in pixels"), number.Integer,
                            TRAIN("chip_size"), False, 32)))
        add(advanced(number(self.GRID_SIZE, tr("Attention grid size"), number.Integer,
                            TRAIN("grid_size"), False, 1)))
        add(advanced(number(self.VAL_SPLIT_PCT, tr("Validation share when the annotations "
                                                   "give no split"),
                            number.Double, TRAIN("val_split_pct"), False, 0.0, 0.9)))
        add(advanced(number(self.MIN_WORD_COUNT, tr("Minimum word count for the vocabulary"),
                            number.Integer, TRAIN("min_word_count"), False, 1)))
        add(advanced(QgsProcessingParameterBoolean(
            self.FINE_TUNE, tr("Fine-tune the encoder too (slower)"),
            not TRAIN("freeze_encoder"))))
        add(advanced(number(self.ENCODER_LR, tr("Encoder learning rate (when fine-tuning)"),
                            number.Double, TRAIN("encoder_lr"), False, 0.0)))
        add(advanced(number(self.FEATURE_VARIANTS, tr("Flipped/rotated variants of each image "
                                                      "(1..8)"),
                            number.Integer, TRAIN("feature_variants"), False, 1, 8)))
        add(advanced(number(self.PATIENCE, tr("Early-stopping patience in epochs (0: never)"),
                            number.Integer, TRAIN("early_stopping_patience"), False, 0)))
        add(advanced(number(self.GROUND_RESOLUTION, tr("Ground resolution of the training "
                                                       "images, m per pixel (0: unknown)"),
                            number.Double, 0.0, False, 0.0)))
        add(advanced(QgsProcessingParameterBoolean(
            self.EVALUATE_TEST, tr("Score the test split into the model file"),
            TRAIN("evaluate_test"))))
        add(advanced(QgsProcessingParameterBoolean(self.HALF, tr("Store float16 weights"),
                                                   TRAIN("half"))))
        add(advanced(number(self.SEED, tr("Random seed"), number.Integer, TRAIN("seed"), False,
                            0)))
        add(advanced(QgsProcessingParameterString(
            self.DEVICE, tr("Device (auto, cpu, cuda, cuda:N, mps)"), TRAIN("device"))))
        add(advanced(QgsProcessingParameterFile(
            self.RESUME, tr("Resume from checkpoint (left by a cancelled run)"),
            QgsProcessingParameterFile.Behavior.File, "", None, True,
            tr("Checkpoint (*.pt);;All files (*.*)"))))
        add(QgsProcessingParameterFileDestination(self.OUTPUT, tr("Model file"),
                                                  MODEL_FILE_FILTER))
        self.addOutput(QgsProcessingOutputFile(self.CHECKPOINT, tr("Checkpoint")))
        self.addOutput(QgsProcessingOutputString(
            self.STOPPED, tr("How training ended (completed, early_stopping, cancelled)")))
        self.addOutput(QgsProcessingOutputNumber(self.BEST_EPOCH, tr("Best epoch")))
        for (split, metric), name in self.METRIC_OUTPUTS.items():
            self.addOutput(QgsProcessingOutputNumber(name, f"{split} {metric}"))

    def processAlgorithm(self, parameters, context, feedback):
        engine = import_engine(TRAINING)
        p = parameters
        number = self.parameterAsDouble
        integer = self.parameterAsInt
        decoder = {"embed_size": integer(p, self.EMBED_SIZE, context),
                   "hidden_size": integer(p, self.HIDDEN_SIZE, context),
                   "attention_size": integer(p, self.ATTENTION_SIZE, context),
                   "context_size": integer(p, self.CONTEXT_SIZE, context),
                   "teacher_forcing": number(p, self.TEACHER_FORCING, context),
                   "dropout": number(p, self.DROPOUT, context),
                   "pretrained_emb": self.parameterAsFile(p, self.PRETRAINED_EMB, context) or None}
        reporter = FeedbackReporter(feedback)
        with engine_errors(tr("Training")), engine_log_to(reporter):
            params = TrainCaptionerParams(
                dataset=self.parameterAsFile(p, self.DATASET, context),
                out=self.parameterAsFileOutput(p, self.OUTPUT, context),
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
            result = engine.train_captioner(params, reporter, reporter.cancelled)
        if result.stopped == CANCELLED:
            return self._cancelled(feedback, result)

        feedback.pushInfo(tr("Model written to {path} (best epoch {best}, {stopped}).").format(
            path=result.model_path, best=result.fit.best_epoch, stopped=result.stopped))
        outputs = {self.OUTPUT: result.model_path, self.CHECKPOINT: None,
                   self.STOPPED: result.stopped, self.BEST_EPOCH: result.fit.best_epoch}
        self._metrics(feedback, result, outputs)
        return outputs

    def _metrics(self, feedback, result, outputs) -> None:
        for (split, metric), name in self.METRIC_OUTPUTS.items():
            outputs[name] = (result.metrics.get(split) or {}).get(metric)
        for split, values in result.metrics.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if v is not None)
            feedback.pushInfo(f"{split}: {shown}")

    def _cancelled(self, feedback, result):
        checkpoint = result.checkpoint_path
        outputs = {self.OUTPUT: None, self.CHECKPOINT: None, self.STOPPED: CANCELLED}
        if result.model_path:
            # Cancelled while scoring: the engine writes the model before it scores it.
            feedback.pushWarning(tr(
                "Training cancelled while scoring: the model {path} is written, without the "
                "scores not computed yet.").format(path=result.model_path))
            outputs.update({self.OUTPUT: result.model_path, self.BEST_EPOCH: result.fit.best_epoch})
            self._metrics(feedback, result, outputs)
            return outputs
        if not Path(checkpoint).is_file():
            # Cancelled while the images were being encoded: no epoch began.
            feedback.pushWarning(tr("Training cancelled before the first epoch: nothing was "
                                    "written."))
            return outputs
        feedback.pushWarning(tr(
            "Training cancelled: no model file was written. The checkpoint {checkpoint} holds "
            "the training so far; to continue, run again with the same parameters and Resume "
            "from checkpoint = that file.").format(checkpoint=checkpoint))
        outputs[self.CHECKPOINT] = checkpoint
        return outputs
