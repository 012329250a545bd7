"""The arcgis.learn-shaped Python API: prepare_data, ImageCaptioner and its methods."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from locations import TEST_DATA
from mapscribe.model.api import ImageCaptioner, prepare_data
from mapscribe.model.data.records import DatasetError
from mapscribe.model.nn.config import DecoderParams
from mapscribe.model.nn.decoder import AttentionDecoder
from mapscribe.model.nn.device import resolve_device
from mapscribe.model.nn.device_choice import DeviceError

SAMPLE = TEST_DATA / "ucm-sample"
SMALL = dict(embed_size=16, hidden_size=32, attention_size=16, context_size=32, dropout=0.0)


@pytest.fixture(scope="module")
def data():
    return prepare_data(SAMPLE, min_word_count=1, batch_size=4)


@pytest.fixture(scope="module")
def tiny(tiny_model_path, data):
    return ImageCaptioner.from_model(tiny_model_path, data=data, device="cpu")


def test_prepare_data_like_arcgis(data):
    assert len(data.train) == 6 and len(data.valid) == 1 and len(data.test) == 1
    assert data.chip_size == 224 and data.batch_size == 4
    assert "farmland" in data.vocabulary
    with pytest.raises(ValueError, match="dataset_type 'Classified_Tiles' is not supported"):
        prepare_data(SAMPLE, dataset_type="Classified_Tiles")
    with pytest.raises(ValueError, match="chip_size"):
        prepare_data(SAMPLE, chip_size=8)


def test_prepare_data_needs_a_train_split(tmp_path):
    import json

    folder = tmp_path / "data"
    shutil.copytree(SAMPLE, folder)
    document = json.loads((folder / "annotations.json").read_text())
    for item in document["images"]:
        item["split"] = "test"
    (folder / "annotations.json").write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="train split is empty"):
        prepare_data(folder)


def test_predict_takes_paths_pil_images_and_arrays(tiny):
    path = SAMPLE / "images" / "105.jpg"
    from_path = tiny.predict(path)
    assert isinstance(from_path, str) and from_path
    pil = Image.open(path)
    assert tiny.predict(pil) == from_path
    assert tiny.predict(np.asarray(pil)) == from_path
    rgba = np.dstack([np.asarray(pil), np.full((256, 256), 255, np.uint8)])
    assert tiny.predict(rgba) == from_path
    assert isinstance(tiny.predict(np.asarray(pil.convert("L"))), str)
    with pytest.raises(ValueError, match="must be uint8"):
        tiny.predict(np.asarray(pil).astype(np.float32))
    with pytest.raises(TypeError, match="not int"):
        tiny.predict(42)


def test_predict_with_attention_gives_a_map_per_word(tiny):
    caption = tiny.predict(SAMPLE / "images" / "1.tif", return_attention=True)
    assert caption.attention.shape == (len(caption.words), 7, 7)
    assert torch.allclose(caption.attention.sum(dim=(1, 2)), torch.ones(len(caption.words)),
                          atol=1e-4)
    assert caption.score < 0 and caption.text == " ".join(caption.words)


def test_bleu_score_has_arcgis_keys_and_evaluate_has_the_coco_metrics(tiny):
    bleu = tiny.bleu_score(split="train")
    assert list(bleu) == ["bleu-1", "bleu-2", "bleu-3", "bleu-4", "BLEU"]
    assert bleu["BLEU"] == bleu["bleu-4"] and 0 <= bleu["bleu-4"] <= bleu["bleu-1"] <= 1
    scores = tiny.evaluate(split="train", meteor=shutil.which("java") is not None)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"}
    assert scores["BLEU-4"] == pytest.approx(bleu["bleu-4"])
    assert scores["CIDEr-D"] > 0.5  # it has seen these images: far from random captions
    assert tiny.metrics["train"]["BLEU-4"] == scores["BLEU-4"]


def test_show_results_draws_images_captions_and_attention(tiny):
    figure = tiny.show_results(rows=2, split="train")
    images = [axes for axes in figure.axes if axes.images]
    assert len(images) >= 4  # two photos and at least one word map each
    titles = [axes.get_title() for axes in figure.axes]
    assert "1.tif" in titles and "105.jpg" in titles


def test_methods_that_need_data_say_so(tiny_model_path):
    captioner = ImageCaptioner.from_model(tiny_model_path, device="cpu")
    with pytest.raises(ValueError, match="needs data: pass prepare_data"):
        captioner.fit(1, 1e-3)
    with pytest.raises(ValueError, match="needs data"):
        captioner.bleu_score()
    with pytest.raises(ValueError, match="show_results needs data"):
        captioner.show_results()
    with pytest.raises(ValueError, match="needs data from prepare_data"):
        ImageCaptioner(None)


def test_decoder_params_are_checked(data):
    with pytest.raises(ValueError, match=r"unknown decoder_params \['hiden_size'\]"):
        ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params={"hiden_size": 8})
    with pytest.raises(ValueError, match="teacher_forcing'\\] must be a probability"):
        ImageCaptioner(data, backbone="efficientnet_lite0",
                       decoder_params={"teacher_forcing": 2})
    with pytest.raises(ValueError, match="'embed_size'\\] must be a positive whole number"):
        ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params={"embed_size": 0})


def test_pretrained_word_vectors_are_loaded_and_coverage_reported(data, tmp_path):
    vectors = tmp_path / "vectors.vec"
    words = ["farmland", "airplanes", "beach", "notinthevocabulary"]
    lines = [f"{len(words)} 6"] + [f"{w} " + " ".join(f"{i * 0.1 + j:.1f}" for j in range(6))
                                   for i, w in enumerate(words)]
    vectors.write_text("\n".join(lines) + "\n")
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params=dict(SMALL, pretrained_emb=str(vectors)))
    decoder = captioner.captioner.decoder
    assert decoder.params.embed_size == 6  # set from the file
    row = decoder.embedding.weight[data.vocabulary.stoi["airplanes"]]
    assert torch.allclose(row, torch.tensor([0.1, 1.1, 2.1, 3.1, 4.1, 5.1]))
    expected = 3 / (len(data.vocabulary) - 4)
    assert captioner.word_vector_coverage == pytest.approx(expected)
    bad = tmp_path / "bad.txt"
    bad.write_text("farmland 0.1 0.2\nbeach 0.1 0.2 0.3\n")
    with pytest.raises(ValueError, match="line 2 has 3 numbers, but embed_size is 2"):
        ImageCaptioner(data, backbone="efficientnet_lite0",
                       decoder_params=dict(SMALL, pretrained_emb=str(bad)))
    with pytest.raises(ValueError, match="is not a file"):
        ImageCaptioner(data, backbone="efficientnet_lite0",
                       decoder_params=dict(SMALL, pretrained_emb=str(tmp_path / "none.vec")))


def test_scheduled_sampling_feeds_the_models_own_words():
    torch.manual_seed(0)
    decoder = AttentionDecoder(30, 8, DecoderParams(**SMALL)).eval()
    features = torch.randn(2, 4, 8)
    captions = torch.randint(4, 30, (2, 6))
    captions[:, 0] = 1
    forced, _ = decoder(features, captions, teacher_forcing=1.0)
    free, _ = decoder(features, captions, teacher_forcing=0.0)
    assert torch.allclose(forced[:, 0], free[:, 0])  # the first word sees <start> either way
    assert not torch.allclose(forced[:, 2:], free[:, 2:])
    # Free running equals feeding the argmax by hand.
    words = [captions[:, 0]]
    for t in range(captions.size(1) - 2):
        words.append(free[:, t].argmax(dim=1))
    manual, _ = decoder(features, torch.stack(words + [captions[:, -1]], dim=1), 1.0)
    assert torch.allclose(manual, free, atol=1e-6)


def test_training_with_teacher_forcing_below_one(data):
    torch.manual_seed(0)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0",
                               decoder_params=dict(SMALL, teacher_forcing=0.5))
    result = captioner.fit(epochs=3, lr=2e-2, feature_variants=1, early_stopping=False)
    assert len(result.history) == 3
    # An untrained decoder guesses about uniformly: log(vocabulary size) per word (4.23 here).
    # Trained, even on its own words half of the time, it must do clearly better (3.7 here)
    # and better with every epoch.
    guessing = math.log(len(data.vocabulary))
    losses = [epoch.train_loss for epoch in result.history]
    assert losses[-1] < guessing - 0.3, f"train loss {losses} vs {guessing:.2f} for guessing"
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.3, losses


@pytest.mark.slow
def test_fine_tuning_trains_the_encoder_but_keeps_its_batch_norm_statistics(data):
    torch.manual_seed(0)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params=SMALL,
                               freeze_encoder=False)
    encoder = captioner.captioner.encoder
    weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = captioner.fit(epochs=1, lr=1e-3, encoder_lr=1e-3, early_stopping=False)
    assert result.stopped == "completed" and result.history[0].val_loss is not None
    after = encoder.state_dict()
    changed = [k for k in weights if not torch.equal(weights[k], after[k])]
    assert any(k.endswith("weight") for k in changed)
    assert not any("running_mean" in k or "running_var" in k for k in changed)


def test_devices():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("CPU").type == "cpu"
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU is usable here"):
            resolve_device("cuda:0")
