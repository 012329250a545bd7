"""The training dialog's values, as plain data, and how they become the engine's
TrainCaptionerParams.

No widget here: the dialog reads its form into :class:`TrainingFormValues`, and
:func:`train_params` checks them and makes the engine's parameters, raising
:class:`~..ui.ParameterError` with the field at fault. The dialog restates no engine default:
:data:`DEFAULTS` and :data:`DECODER_DEFAULTS` are the field defaults of the engine's own
parameter dataclasses, the model file's suffix and the checkpoint's name are the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from ...model import (
    MODEL_SUFFIX,
    DecoderParams,
    MapScribeError,
    TrainCaptionerParams,
    checkpoint_path_for,
)
from ..ui import ParameterError, field_default, tr

# The decoder parameters the dialog offers (arcgis.learn's names), with the engine's defaults.
DECODER_FIELDS = ("embed_size", "hidden_size", "attention_size", "teacher_forcing", "dropout")
DECODER_DEFAULTS: Dict[str, Any] = {name: field_default(DecoderParams, name)
                                    for name in DECODER_FIELDS}
# The training parameters the dialog offers, with the engine's defaults.
DEFAULTS: Dict[str, Any] = {name: field_default(TrainCaptionerParams, name)
                            for name in ("epochs", "batch_size", "val_split_pct",
                                         "min_word_count", "freeze_encoder")}


@dataclass(frozen=True)
class TrainingFormValues:
    """The dialog's fields as plain values (text as typed, numbers as the spin boxes hold them;
    ``pretrained_emb`` empty when none)."""

    dataset_folder: str
    output_path: str
    backbone: str
    epochs: int
    learning_rate: str
    batch_size: int
    val_split_pct: float
    min_word_count: int
    embed_size: int
    hidden_size: int
    attention_size: int
    teacher_forcing: float
    dropout: float
    pretrained_emb: str
    fine_tune: bool
    device: str


def model_path_for(output: "str | Path") -> str:
    """The model file training writes for the output field: the engine's suffix added when the
    name has none."""
    output = str(output)
    return output if Path(output).suffix else output + MODEL_SUFFIX


def checkpoint_for(output: "str | Path") -> Path:
    """The checkpoint the engine keeps while training into the output field's model file."""
    return Path(checkpoint_path_for(model_path_for(output)))


def learning_rate(text: str) -> Optional[float]:
    """The learning rate typed, or None for the engine's learning-rate finder (empty, or 0)."""
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParameterError("learning_rate", tr(
            "Learning rate {text!r} is not a number; write e.g. 0.001 or 1e-3, or leave it empty "
            "to find it automatically.").format(text=text)) from None
    if value < 0:
        raise ParameterError("learning_rate", tr(
            "Learning rate {value} is negative; use a positive number or leave it "
            "empty.").format(value=value))
    return value or None


def decoder_params(values: TrainingFormValues) -> Dict[str, Any]:
    """The decoder parameters, as the engine's ``decoder_params`` dictionary (checked by the
    engine's DecoderParams; its message names the parameter)."""
    params: Dict[str, Any] = {
        "embed_size": values.embed_size, "hidden_size": values.hidden_size,
        "attention_size": values.attention_size,
        "teacher_forcing": round(values.teacher_forcing, 4),
        "dropout": round(values.dropout, 4),
        "pretrained_emb": values.pretrained_emb.strip() or None}
    if params["pretrained_emb"] and not Path(params["pretrained_emb"]).is_file():
        raise ParameterError("pretrained_emb", tr(
            "pretrained_emb: {path} is not a file; give a fastText .vec or GloVe text file, or "
            "leave it empty.").format(path=params["pretrained_emb"]))
    try:
        DecoderParams(**params)
    except MapScribeError as error:
        raise ParameterError("decoder", str(error)) from None
    return params


def train_params(values: TrainingFormValues, *, resume: bool = False,
                 overwrite: bool = False) -> TrainCaptionerParams:
    """The engine's parameters for ``values``; ``resume`` continues from the checkpoint of the
    output's model file."""
    folder = values.dataset_folder.strip()
    if not folder:
        raise ParameterError("dataset", tr("Choose a dataset folder."))
    if not Path(folder).is_dir():
        raise ParameterError("dataset", tr("Dataset folder {folder} does not exist.").format(
            folder=folder))
    output = values.output_path.strip()
    if not output:
        raise ParameterError("output", tr("Choose the model file to write."))
    out = model_path_for(output)
    if not Path(out).parent.is_dir():
        raise ParameterError("output", tr("The folder of the model file, {folder}, does not "
                                          "exist.").format(folder=Path(out).parent))
    decoder = decoder_params(values)
    checkpoint = checkpoint_for(out)
    if resume and not checkpoint.is_file():
        raise ParameterError("output", tr("There is no checkpoint {path} to resume from.").format(
            path=checkpoint))
    return TrainCaptionerParams(
        dataset=folder, out=out, backbone=values.backbone or "auto", epochs=values.epochs,
        lr=learning_rate(values.learning_rate), batch_size=values.batch_size,
        val_split_pct=values.val_split_pct, min_word_count=values.min_word_count,
        decoder_params=decoder, freeze_encoder=not values.fine_tune,
        device=values.device or "auto", resume=str(checkpoint) if resume else None,
        overwrite=overwrite)
