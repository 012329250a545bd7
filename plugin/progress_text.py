"""The engine's progress updates in words, the same in the dock, the training dialog and the
Processing log.

An update is plain data (:class:`~mapscribe.model.ProgressUpdate`): a stage name from
:class:`~mapscribe.model.Stage`, counts, a rate, the time left and values such as the epoch or
the running loss. Nothing here parses the engine's log text.
"""

from __future__ import annotations

from typing import List

from ..model import EpochEnded, ProgressUpdate, Stage, format_duration
from .ui import tr


def _epoch_title(epoch, epochs) -> str:
    return f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}"


def stage_title(update: ProgressUpdate) -> str:
    """What the job is doing, in a few words: "epoch 2/10", "scoring the test split"."""
    values = update.values
    if isinstance(update.event, EpochEnded):
        return _epoch_title(update.event.epoch, update.event.epochs)
    if update.stage == Stage.TRAINING and "epoch" in values:
        return _epoch_title(values["epoch"], values.get("epochs"))
    if update.stage == Stage.SCORING and values.get("split"):
        return tr("scoring the {split} split").format(split=values["split"])
    return {Stage.READING: tr("reading the dataset"),
            Stage.ENCODING: tr("encoding the images"),
            Stage.TRAINING: tr("training"),
            Stage.VALIDATING: tr("decoding the validation images"),
            Stage.CAPTIONING: tr("captioning")}.get(update.stage, update.stage)


def counts_text(update: ProgressUpdate) -> str:
    """"12 of 42 tiles, 3.1 tiles/s, 00:10 left": how far the stage is."""
    parts: List[str] = [tr("{done} of {total} {unit}").format(done=update.done,
                                                            total=update.total,
                                                            unit=update.unit)]
    if update.rate:
        parts.append(f"{update.rate:.2g} {update.unit}/s")
    if update.eta_s is not None:
        parts.append(tr("{time} left").format(time=format_duration(update.eta_s)))
    return ", ".join(parts)


def status_line(update: ProgressUpdate) -> str:
    """One line for a status label: the stage, its counts and, while training, the loss."""
    if update.message:
        return update.message
    text = stage_title(update)
    if update.total:
        text += ": " + counts_text(update)
    if "loss" in update.values:
        text += f", loss {update.values['loss']:.3f}"
    return text
