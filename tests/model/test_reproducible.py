"""Training is reproducible: the same recipe on the same data gives the same model, byte for
byte in its weights (what `make default-model` relies on), resolution augmentation, the theme
head and its calibration included."""

from __future__ import annotations

import pytest
from safetensors.numpy import load_file

from locations import UCM_SAMPLE
from mapscribe.model import TrainCaptionerParams, read_header, train_captioner

RECIPE = dict(backbone="efficientnet_lite0", epochs=2, lr=5e-3, batch_size=2, min_word_count=1,
              feature_variants=3, resolution_augmentation=True, evaluate_test=False,
              meteor=False, device="cpu", seed=3,
              decoder_params=dict(embed_size=16, hidden_size=32, attention_size=16,
                                  context_size=32, dropout=0.1))


@pytest.mark.slow
def test_the_same_recipe_gives_the_same_weights(tmp_path):
    models = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.mscap"
        train_captioner(TrainCaptionerParams(dataset=str(UCM_SAMPLE), out=str(out), **RECIPE))
        models.append(out)
    first, second = (load_file(str(path)) for path in models)
    assert first.keys() == second.keys()
    assert all((first[name] == second[name]).all() for name in first), \
        [name for name in first if not (first[name] == second[name]).all()]
    headers = [read_header(path) for path in models]
    assert headers[0].config.themes and headers[0].config == headers[1].config
    assert headers[0].metrics == headers[1].metrics
