"""Captioning without torch: ONNX Runtime + the numpy beam search give the captions of torch.

- the numpy beam search against the torch one, driven by the same decoder (so only the search
  differs), over beams, lengths, penalties and the unfinished fallback;
- the bundled default model (it ships with its ONNX graphs) on the committed samples: the UCM
  sample images and the tiles of the test rasters, captions and metrics of both runtimes;
- the ONNX path in a process where torch cannot be imported;
- which runtime and device are chosen, and what is said when one cannot be used.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from locations import REPO, UCM_SAMPLE
from mapscribe.model.data.folder import read_caption_folder
from mapscribe.model.data.images import load_rgb_image
from mapscribe.model.data.text import Vocabulary
from mapscribe.model.evaluation.scores import evaluate_captions
from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster
from mapscribe.model.jobs.caption_params import CaptioningError
from mapscribe.model.modelfile.weights import load_model
from mapscribe.model.nn import beam_search as torch_beam
from mapscribe.model.nn.config import DecodingParams
from mapscribe.model.nn.decoder import DecoderState, ImageMemory
from mapscribe.model.nn.device_choice import DeviceError
from mapscribe.model.runtime import base, numpy_beam
from mapscribe.model.runtime.base import RuntimeChoiceError, image_pixels, resolve_runtime
from mapscribe.model.runtime.choice import check_runtime, open_runtime
from mapscribe.model.runtime.onnx_sessions import choose_providers
from rasters import NAIP, RGB_BYTE

DEFAULT_MODEL = REPO / "resources" / "default.mscap"


# -- the search itself: numpy against torch, same decoder ------------------------------------
def _numpy_decoder(decoder):
    """The torch decoder behind the numpy search's start/step interface."""

    def start(features):
        memory, state = decoder.start(torch.from_numpy(features))
        return ((memory.features.numpy(), memory.keys.numpy()),
                (state.hidden.numpy(), state.cell.numpy()))

    def step(words, memory, state):
        logits, new_state, weights = decoder.step(
            torch.from_numpy(words), ImageMemory(*map(torch.from_numpy, memory)),
            DecoderState(*map(torch.from_numpy, state)))
        return logits.numpy(), (new_state.hidden.numpy(), new_state.cell.numpy()), \
            weights.numpy()

    return start, step


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_model(tiny_model_path)


@pytest.mark.parametrize("params", [
    DecodingParams(beam_size=1, max_length=20),
    DecodingParams(beam_size=3, max_length=20, return_attention=True),
    DecodingParams(beam_size=5, max_length=6, return_attention=True),   # some never finish
    DecodingParams(beam_size=4, max_length=20, length_penalty=0.0, allow_unknown=True),
    DecodingParams(beam_size=2, max_length=2),
], ids=["greedy", "beam3", "beam5-short", "penalty0-unk", "beam2-len2"])
@torch.no_grad()
def test_the_numpy_search_is_the_torch_search(tiny, params):
    generator = torch.Generator().manual_seed(1)
    # Real features of the sample images and random ones (captions of every kind and length).
    images = torch.stack([torch.from_numpy(image_pixels(load_rgb_image(path), 224))
                          for path in sorted((UCM_SAMPLE / "images").iterdir())])
    features = torch.cat([tiny.encode(images),
                          torch.rand((8, 49, tiny.config.feature_size), generator=generator) * 3])
    want = torch_beam.beam_search(tiny.decoder, features, params)
    start, step = _numpy_decoder(tiny.decoder)
    got = numpy_beam.beam_search(start, step, features.numpy(), params)
    assert got.tokens.tolist() == want.tokens.tolist()
    assert got.lengths.tolist() == want.lengths.tolist()
    assert got.finished.tolist() == want.finished.tolist()
    np.testing.assert_allclose(got.total_log_prob, want.total_log_prob.numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(got.mean_log_prob, want.mean_log_prob.numpy(), rtol=1e-5,
                               atol=1e-5)
    if params.return_attention:
        np.testing.assert_allclose(got.attention, want.attention.numpy(), atol=1e-6)
    if params.max_length == 6:
        assert not got.finished.all() and got.finished.any()


def test_the_banned_words_are_one_rule_for_both_searches():
    assert numpy_beam.banned_word_ids is torch_beam.banned_word_ids
    strict = numpy_beam.banned_word_ids(DecodingParams(allow_unknown=False))
    lenient = numpy_beam.banned_word_ids(DecodingParams(allow_unknown=True))
    assert Vocabulary.unk_id in strict and Vocabulary.unk_id not in lenient
    assert {Vocabulary.pad_id, Vocabulary.start_id} <= set(lenient)
    assert Vocabulary.end_id not in strict


def test_repetitions_are_banned_as_in_torch():
    generator = np.random.default_rng(0)
    sequences = generator.integers(4, 9, size=(16, 7))
    log_probs = generator.normal(size=(16, 12)).astype(np.float32)
    want = torch.from_numpy(log_probs.copy())
    torch_beam.ban_repetitions(want, torch.from_numpy(sequences[:, -1]),
                               torch.from_numpy(sequences))
    numpy_beam.ban_repetitions(log_probs, sequences[:, -1], sequences)
    np.testing.assert_array_equal(log_probs, want.numpy())


# -- the default model on the committed samples -----------------------------------------------
@pytest.fixture(scope="module")
def runtimes():
    assert check_runtime(DEFAULT_MODEL, "onnx") == "onnx", "resources/default.mscap must ship " \
        "with its ONNX graphs (mapscribe export-onnx)"
    return open_runtime(DEFAULT_MODEL, "torch", "cpu"), open_runtime(DEFAULT_MODEL, "onnx", "cpu")


def test_both_runtimes_caption_the_ucm_sample_alike(runtimes):
    torch_runtime, onnx_runtime = runtimes
    records = read_caption_folder(UCM_SAMPLE).records
    pixels = np.stack([image_pixels(load_rgb_image(r.image_path), onnx_runtime.input_size)
                       for r in records])
    references = {r.filename: [" ".join(words) for words in r.tokens] for r in records}
    for beam in (1, 3):
        decoding = DecodingParams(beam_size=beam, max_length=20)
        want = torch_runtime.caption_batch(pixels, decoding)
        got = onnx_runtime.caption_batch(pixels, decoding)
        same = sum(a.text == b.text for a, b in zip(want, got))
        assert same >= 0.99 * len(records), [(a.text, b.text) for a, b in zip(want, got)]
        assert all(abs(a.score - b.score) < 1e-4 and a.finished == b.finished
                   for a, b in zip(want, got))
        scores = [evaluate_captions({r.filename: c.text for r, c in zip(records, captions)},
                                    references, meteor=False).as_dict()
                  for captions in (want, got)]
        for name, value in scores[0].items():
            if isinstance(value, float):
                assert abs(value - scores[1][name]) <= 0.005, (name, scores)


def _layer(path):
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("SELECT tile_id, caption FROM captions").fetchall())


@pytest.mark.parametrize("raster", [NAIP, RGB_BYTE], ids=["naip", "rgb-byte"])
def test_both_runtimes_caption_raster_tiles_alike(tmp_path, raster):
    layers = {}
    for runtime in ("torch", "onnx"):
        result = caption_raster(CaptionRasterParams(
            raster=raster, model=DEFAULT_MODEL, output=tmp_path / f"{runtime}.gpkg",
            tile_size=224, tile_size_unit="pixels", batch_size=4, device="cpu",
            runtime=runtime))
        assert result.runtime == runtime and result.captioned > 3
        layers[runtime] = _layer(tmp_path / f"{runtime}.gpkg")
    assert layers["onnx"].keys() == layers["torch"].keys()
    same = sum(layers["onnx"][tile] == caption for tile, caption in layers["torch"].items())
    assert same >= 0.99 * len(layers["torch"])
    assert "ONNX Runtime" in result.device


# -- without torch -----------------------------------------------------------------------------
_WITHOUT_TORCH = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None   # import torch now raises ImportError, as when not installed
    import numpy as np
    from mapscribe.model.data.images import load_rgb_image
    from mapscribe.model.nn.config import DecodingParams
    from mapscribe.model.runtime.base import image_pixels
    from mapscribe.model.runtime.choice import open_runtime

    model, images = sys.argv[1], sys.argv[2:]
    runtime = open_runtime(model, "auto", "auto")
    pixels = np.stack([image_pixels(load_rgb_image(path), runtime.input_size) for path in images])
    captions = runtime.caption_batch(pixels, DecodingParams(beam_size=3))
    loaded = sorted(name for name in sys.modules
                    if name.split(".")[0] in ("torch", "torchvision") and sys.modules[name])
    print(json.dumps({"runtime": runtime.name, "device": runtime.device_label,
                      "captions": [c.text for c in captions], "torch_modules": loaded}))
""")


def test_onnx_captioning_runs_where_torch_cannot_be_imported(runtimes):
    images = [str(path) for path in sorted((UCM_SAMPLE / "images").iterdir())]
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, str(DEFAULT_MODEL), *images],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["runtime"] == "onnx" and report["torch_modules"] == []
    assert report["device"].startswith("cpu (ONNX Runtime")
    pixels = np.stack([image_pixels(load_rgb_image(path), 224) for path in images])
    want = [c.text for c in runtimes[0].caption_batch(pixels, DecodingParams(beam_size=3))]
    assert report["captions"] == want


# -- choosing ----------------------------------------------------------------------------------
def test_auto_takes_torch_when_installed_else_onnx(monkeypatch):
    assert resolve_runtime("auto") == "torch"
    installed = {"torch": False, "onnxruntime": True}
    monkeypatch.setattr(base, "module_installed", lambda name: installed[name])
    assert resolve_runtime("auto") == "onnx"
    with pytest.raises(RuntimeChoiceError, match="torch is not installed; pip install torch"):
        resolve_runtime("torch")
    installed["onnxruntime"] = False
    with pytest.raises(RuntimeChoiceError, match="neither torch nor onnxruntime"):
        resolve_runtime("auto")
    with pytest.raises(RuntimeChoiceError, match="pip install onnxruntime"):
        resolve_runtime("onnx")
    with pytest.raises(RuntimeChoiceError, match="unknown runtime 'tflite'"):
        resolve_runtime("tflite")


def test_a_model_without_graphs_says_how_to_add_them(tiny_model_path, tmp_path):
    with pytest.raises(RuntimeChoiceError, match=f"export-onnx {tiny_model_path}"):
        check_runtime(tiny_model_path, "onnx")
    with pytest.raises(CaptioningError, match="runtime must be one of auto, torch, onnx"):
        CaptionRasterParams(raster=NAIP, model=tiny_model_path, output=tmp_path / "x.gpkg",
                            runtime="gpu")
    with pytest.raises(RuntimeChoiceError, match="no ONNX graphs"):
        caption_raster(CaptionRasterParams(raster=NAIP, model=tiny_model_path,
                                           output=tmp_path / "x.gpkg", runtime="onnx"))
    assert not (tmp_path / "x.gpkg").exists()  # refused before anything was written


def test_onnx_devices(monkeypatch):
    assert choose_providers("auto") == (["CPUExecutionProvider"], "cpu")
    assert choose_providers("cpu") == (["CPUExecutionProvider"], "cpu")
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        choose_providers("cuda:1")
    with pytest.raises(DeviceError, match="runtime 'torch'"):
        choose_providers("mps")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        choose_providers("tpu")
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    providers, device = choose_providers("cuda:1")
    assert providers[0] == ("CUDAExecutionProvider", {"device_id": 1}) and device == "cuda:1"
    assert choose_providers("auto")[1] == "cuda:0"
