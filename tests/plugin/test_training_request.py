"""The training dialog's pure request module (plugin/training/request.py), without a widget:
each value that cannot make a run gives a ParameterError naming the field at fault; good values
become the engine's TrainCaptionerParams; the defaults, the model suffix and the checkpoint name
are the engine's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest

from mapscribe.model import (
    MODEL_SUFFIX,
    DecoderParams,
    MapScribeError,
    TrainCaptionerParams,
    checkpoint_path_for,
)
from mapscribe.plugin.training.request import (
    DECODER_DEFAULTS,
    DEFAULTS,
    TrainingFormValues,
    checkpoint_for,
    learning_rate,
    model_path_for,
    train_params,
)
from mapscribe.plugin.ui import ParameterError

SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "ucm-sample"


@pytest.fixture
def values(tmp_path) -> TrainingFormValues:
    return TrainingFormValues(
        dataset_folder=str(SAMPLE), output_path=str(tmp_path / "out"), backbone="resnet18",
        epochs=3, learning_rate="5e-3", batch_size=4, val_split_pct=0.2, min_word_count=1,
        embed_size=16, hidden_size=32, attention_size=8, teacher_forcing=0.75, dropout=0.2,
        pretrained_emb="", fine_tune=True, device="cpu")


def test_good_values_make_the_engine_params(values, tmp_path):
    params = train_params(values)
    assert params == TrainCaptionerParams(
        dataset=str(SAMPLE), out=str(tmp_path / f"out{MODEL_SUFFIX}"), backbone="resnet18",
        epochs=3, lr=5e-3, batch_size=4, val_split_pct=0.2, min_word_count=1,
        decoder_params={"embed_size": 16, "hidden_size": 32, "attention_size": 8,
                        "teacher_forcing": 0.75, "dropout": 0.2, "pretrained_emb": None},
        freeze_encoder=False, device="cpu")
    assert params.checkpoint_path == str(checkpoint_path_for(params.out))
    assert train_params(values, overwrite=True).overwrite


def test_defaults_and_names_are_the_engine_s():
    engine_defaults = {f.name: f.default for f in dataclasses.fields(TrainCaptionerParams)}
    assert DEFAULTS == {name: engine_defaults[name] for name in DEFAULTS}
    decoder = DecoderParams()
    assert DECODER_DEFAULTS == {name: getattr(decoder, name) for name in DECODER_DEFAULTS}
    assert model_path_for("/m/model") == f"/m/model{MODEL_SUFFIX}"
    assert model_path_for("/m/model.mscap") == "/m/model.mscap"
    assert checkpoint_for("/m/model") == checkpoint_path_for(f"/m/model{MODEL_SUFFIX}")


@pytest.mark.parametrize("text, expected", [("", None), ("  ", None), ("0", None),
                                            ("1e-3", 1e-3), ("0,005", 0.005)])
def test_learning_rate_empty_or_zero_lets_the_engine_find_it(text, expected):
    assert learning_rate(text) == expected


@pytest.mark.parametrize("change, field, words", [
    ({"dataset_folder": ""}, "dataset", "Choose a dataset folder"),
    ({"dataset_folder": "/no/such/folder"}, "dataset", "does not exist"),
    ({"output_path": ""}, "output", "Choose the model file to write"),
    ({"output_path": "/no/such/folder/m.mscap"}, "output", "folder, does not exist"),
    ({"pretrained_emb": "/no/vectors.vec"}, "pretrained_emb",
     r"pretrained_emb: .*vectors.vec is not a file"),
    ({"dropout": 1.0}, "decoder", r"decoder_params\['dropout'\]"),
    ({"embed_size": 0}, "decoder", r"decoder_params\['embed_size'\]"),
    ({"learning_rate": "fast"}, "learning_rate", "'fast' is not a number"),
    ({"learning_rate": "-1"}, "learning_rate", "Learning rate -1.0 is negative"),
])
def test_each_bad_value_names_its_field(values, change, field, words):
    with pytest.raises(ParameterError, match=words) as error:
        train_params(replace(values, **change))
    assert error.value.field == field
    assert isinstance(error.value, MapScribeError)  # front doors catch one root


def test_resume_needs_the_checkpoint_of_the_output(values, tmp_path):
    with pytest.raises(ParameterError, match="no checkpoint") as error:
        train_params(values, resume=True)
    assert error.value.field == "output"
    checkpoint = checkpoint_for(values.output_path)
    checkpoint.write_bytes(b"")
    assert train_params(values, resume=True).resume == str(checkpoint)
