"""The model file: self-describing, safe to open, and clear about every bad file."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from locations import TEST_DATA
from mapscribe.model.api import ImageCaptioner
from mapscribe.model.modelfile.header import FORMAT_VERSION, ModelFileError, read_header
from mapscribe.model.modelfile.weights import load_model, save_model

IMAGES = sorted((TEST_DATA / "ucm-sample" / "images").iterdir())


def test_header_describes_the_model(tiny_model_path):
    header = read_header(tiny_model_path)
    assert header.config.backbone == "efficientnet_lite0"
    assert header.config.feature_size == 1280 and header.config.grid_size == 7
    assert header.config.input_size == 224
    assert header.config.mean == pytest.approx((0.498, 0.498, 0.498), abs=1e-3)
    assert header.config.decoder.hidden_size == 64
    assert len(header.vocabulary) > 20
    assert header.ground_resolution_m == 0.3
    assert header.training["dataset"] == "ucm-sample" and header.training["images"] == 6
    assert header.training["epochs"] == 30
    assert "CIDEr-D" in header.metrics["val"]
    text = header.describe()
    assert "efficientnet_lite0" in text and "Trained on ucm-sample" in text


def test_save_load_gives_identical_predictions(tiny_model_path, tmp_path):
    first = ImageCaptioner.from_model(tiny_model_path, device="cpu")
    copy = first.save(tmp_path / "copy")
    assert copy.suffix == ".mscap"
    second = ImageCaptioner.from_model(copy, device="cpu")
    a = first.predict_batch(IMAGES, beam_width=3)
    b = second.predict_batch(IMAGES, beam_width=3)
    assert [c.text for c in a] == [c.text for c in b]
    assert [c.score for c in a] == pytest.approx([c.score for c in b], abs=1e-6)
    assert read_header(copy).training == read_header(tiny_model_path).training


def test_half_precision_file_is_smaller_and_predicts_the_same(tiny_model_path, tmp_path):
    full = ImageCaptioner.from_model(tiny_model_path, device="cpu")
    half_path = full.save(tmp_path / "half.mscap", half=True)
    assert half_path.stat().st_size < 0.6 * tiny_model_path.stat().st_size
    assert read_header(half_path).weights_dtype == "float16"
    half = ImageCaptioner.from_model(half_path, device="cpu")
    assert next(half.captioner.parameters()).dtype == torch.float32  # computed in float32
    same = sum(a.text == b.text for a, b in zip(full.predict_batch(IMAGES),
                                                half.predict_batch(IMAGES)))
    assert same >= len(IMAGES) - 1


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "model.mscap"
    evil.write_bytes(pickle.dumps(Payload(), protocol=4))
    with pytest.raises(ModelFileError, match="Python pickle.*never opens pickles"):
        load_model(evil)
    with pytest.raises(ModelFileError, match="pickle"):
        read_header(evil)
    assert not marker.exists()
    # A PyTorch checkpoint (a zip holding a pickle) is refused the same way.
    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint.mscap")
    with pytest.raises(ModelFileError, match="zip archive .*pickle"):
        load_model(tmp_path / "checkpoint.mscap")


def test_truncated_and_corrupted_files(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    cut = tmp_path / "cut.mscap"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelFileError, match="cut short .*1000 missing"):
        load_model(cut)
    tiny = tmp_path / "tiny.mscap"
    tiny.write_bytes(data[:5])
    with pytest.raises(ModelFileError, match="only 5 bytes"):
        load_model(tiny)
    (header_length,) = struct.unpack("<Q", data[:8])
    garbled = bytearray(data)
    garbled[8 + header_length // 2] = ord("\x00")
    (tmp_path / "garbled.mscap").write_bytes(bytes(garbled))
    with pytest.raises(ModelFileError, match="not valid JSON|corrupted"):
        load_model(tmp_path / "garbled.mscap")
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "absent.mscap")
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model(tmp_path)


def rewrite_header(source, target, change):
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    index = json.loads(data[8:8 + length])
    description = json.loads(index["__metadata__"]["mapscribe"])
    change(index, description)
    index["__metadata__"]["mapscribe"] = json.dumps(description)
    header = json.dumps(index).encode()
    header += b" " * (-len(header) % 8)
    target.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + length:])
    return target


def test_wrong_version_foreign_and_mismatched_files(tiny_model_path, tmp_path):
    newer = rewrite_header(tiny_model_path, tmp_path / "newer.mscap",
                           lambda i, d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="version 2, but this MapScribe reads version 1; "
                                             "update MapScribe"):
        load_model(newer)
    other = rewrite_header(tiny_model_path, tmp_path / "other.mscap",
                           lambda i, d: d.update(format="somebody-else"))
    with pytest.raises(ModelFileError, match="not a MapScribe captioner"):
        load_model(other)
    foreign = rewrite_header(tiny_model_path, tmp_path / "foreign.safetensors",
                             lambda i, d: d.clear())
    with pytest.raises(ModelFileError, match="not a MapScribe captioner"):
        load_model(foreign)

    def bigger_decoder(index, description):
        description["architecture"]["decoder"]["hidden_size"] = 65
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        load_model(rewrite_header(tiny_model_path, tmp_path / "mismatch.mscap", bigger_decoder))

    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFileError, match="not a MapScribe model .*no 'mapscribe'"):
        load_model(tmp_path / "plain.safetensors")


def test_saving_is_atomic(tiny_model_path, tmp_path):
    captioner = load_model(tiny_model_path)
    target = tmp_path / "model.mscap"
    save_model(captioner, target)
    assert [p.name for p in tmp_path.iterdir()] == ["model.mscap"]  # no temporary left


def test_recorded_metrics_land_in_the_header_and_the_weights_stay(tiny_model_path, tmp_path):
    from mapscribe.model.modelfile.header import record_metrics

    path = tmp_path / "model.mscap"
    path.write_bytes(tiny_model_path.read_bytes())
    before = load_model(path).state_dict()
    record_metrics(path, "ucm-captions test", {"BLEU-4": 0.5, "images": 210})
    header = read_header(path)
    assert header.metrics["ucm-captions test"] == {"BLEU-4": 0.5, "images": 210}
    assert "val" in header.metrics  # what was there stays
    after = load_model(path).state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_reading_a_header_needs_no_torch(tiny_model_path):
    """The QGIS dock describes a model the moment it is picked, torch or not."""
    import subprocess
    import sys

    code = ("import sys; from mapscribe.model.modelfile.header import read_header; "
            f"h = read_header({str(tiny_model_path)!r}); "
            "print(h.config.backbone, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["efficientnet_lite0", "False"]
