"""Model files from a stranger (points 6 and 8 of issue 9): sizes bounded before anything is
allocated, a checksum of the weights, NaN/Inf and relabelled weights refused, empty captions an
error never written, and JSON output that is valid JSON."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from locations import TEST_DATA, UCM_SAMPLE
from mapscribe.model.modelfile.checks import MAX_VOCABULARY, check_caption_output
from mapscribe.model.modelfile.header import ModelFileError, read_header

RGB_BYTE = TEST_DATA / "RGB.byte.tif"
IMAGE = next((UCM_SAMPLE / "images").glob("*.jpg"))


def _split(path: Path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def _write(path: Path, index, weights: bytes) -> Path:
    header = json.dumps(index).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + weights)
    return path


def edited(source: Path, target: Path, change=None, change_index=None) -> Path:
    """A copy of ``source`` whose MapScribe description went through ``change``."""
    index, weights = _split(source)
    document = json.loads(index["__metadata__"]["mapscribe"])
    if change:
        change(document)
    if change_index:
        change_index(index)
    index["__metadata__"]["mapscribe"] = json.dumps(document)
    return _write(target, index, weights)


# -- point 6: sizes bounded before anything is allocated -------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("input_size", 100_000), ("grid_size", 10_000), ("decoder.hidden_size", 10**6),
    ("decoder.embed_size", 2**31), ("decoder.attention_size", -4), ("feature_size", 10**7),
    ("decoder.context_size", "wide"), ("max_words", 10**9),
])
def test_sizes_in_the_header_are_bounded(tiny_model_path, tmp_path, field, value):
    def change(document):
        section = document["architecture"]
        *parents, name = field.split(".")
        for parent in parents:
            section = section[parent]
        section[name] = value

    path = edited(tiny_model_path, tmp_path / "huge.mscap", change)
    with pytest.raises(ModelFileError, match=f"{field} = .* outside the range"):
        read_header(path)


def test_a_huge_vocabulary_or_header_is_refused(tiny_model_path, tmp_path):
    words = [f"w{i}" for i in range(MAX_VOCABULARY + 10)]
    path = edited(tiny_model_path, tmp_path / "vocabulary.mscap",
                  lambda d: d["vocabulary"].update(words=words))
    with pytest.raises(ModelFileError, match="vocabulary has 100,010 words"):
        read_header(path)
    padded = edited(tiny_model_path, tmp_path / "padded.mscap",
                    lambda d: d["training"].update(notes="x" * (17 * 2**20)))
    with pytest.raises(ModelFileError, match="JSON header is .* bytes, more than"):
        read_header(padded)


@pytest.mark.parametrize("field, value", [
    ("ground_resolution_m", "fine"), ("ground_resolution_m", -1), ("metrics", [1, 2]),
    ("metrics", {"test": 3}), ("training", "lots"), ("weights_dtype", 16),
])
def test_other_header_fields_of_the_wrong_type_are_refused(tiny_model_path, tmp_path, field,
                                                           value):
    path = edited(tiny_model_path, tmp_path / "typed.mscap", lambda d: d.update({field: value}))
    with pytest.raises(ModelFileError, match=field):
        read_header(path)


def test_huge_sizes_never_reach_an_allocation(tiny_model_path, tmp_path, run_limited):
    """The reported case: an input size of 100,000 px made `predict` allocate 23 GB. Run under
    a cap of what torch and the model need plus 1 GB: a regression fails here, not the
    machine."""
    path = edited(tiny_model_path, tmp_path / "wide.mscap",
                  lambda d: d["architecture"].update(input_size=100_000))
    hidden = edited(tiny_model_path, tmp_path / "hidden.mscap",
                    lambda d: d["architecture"]["decoder"].update(hidden_size=200_000))
    result = run_limited(f"""
        import torch
        from mapscribe.model.cli.main import main
        from mapscribe.model.modelfile.weights import load_model
        load_model({str(tiny_model_path)!r})  # what a model of this size needs, loaded once
        cap_here(1024)
        print("exit", main(["predict", {str(path)!r}, {str(IMAGE)!r}]))
        print("exit", main(["predict", {str(hidden)!r}, {str(IMAGE)!r}]))
    """, limit_mb=16_000)
    assert result.stdout.count("exit 1") == 2, result.stdout + result.stderr
    assert "input_size = 100000 lies outside the range" in result.stderr
    assert "hidden_size = 200000 lies outside the range" in result.stderr


def test_shapes_are_checked_before_the_network_is_built(tiny_model_path, tmp_path,
                                                        run_limited):
    # Sizes inside the ranges, but not those of the weights in the file: building this network
    # would take about 1.3 GB before the weights could be compared with it.
    def change(document):
        document["architecture"]["decoder"].update(hidden_size=4096, embed_size=4096,
                                                   attention_size=4096, context_size=4096)

    path = edited(tiny_model_path, tmp_path / "mismatch.mscap", change)
    result = run_limited(f"""
        import torch
        from mapscribe.model.modelfile.header import ModelFileError
        from mapscribe.model.modelfile.weights import load_model
        load_model({str(tiny_model_path)!r})
        cap_here(400)
        try:
            load_model({str(path)!r})
        except ModelFileError as error:
            print("refused:", error)
    """, limit_mb=16_000)
    assert "refused:" in result.stdout and "do not fit the architecture" in result.stdout, (
        result.stdout + result.stderr)


# -- point 8: damaged weights ----------------------------------------------------------------------
def test_save_writes_a_checksum_and_a_flipped_bit_is_refused(tiny_model_path, tmp_path):
    from mapscribe.model.modelfile.weights import load_model

    assert len(read_header(tiny_model_path).weights_sha256) == 64
    index, weights = _split(tiny_model_path)
    name, entry = max(((n, e) for n, e in index.items() if n != "__metadata__"),
                      key=lambda item: item[1]["data_offsets"][1] - item[1]["data_offsets"][0])
    flipped = bytearray(weights)
    flipped[entry["data_offsets"][0] + 101] ^= 0x04
    damaged = _write(tmp_path / "flipped.mscap", index, bytes(flipped))
    with pytest.raises(ModelFileError, match="do not match the checksum"):
        load_model(damaged)
    # Recording metrics rewrites the header and keeps the checksum valid.
    from mapscribe.model.modelfile.header import record_metrics

    copy = tmp_path / "recorded.mscap"
    copy.write_bytes(tiny_model_path.read_bytes())
    record_metrics(copy, "test", {"BLEU-4": 0.5})
    load_model(copy)


def test_relabelled_dtypes_are_refused_with_or_without_a_checksum(tiny_model_path, tmp_path):
    from mapscribe.model.modelfile.weights import load_model

    def relabel(index):
        name = next(n for n, e in sorted(index.items()) if n != "__metadata__"
                    and e["dtype"] == "F32")
        index[name]["dtype"] = "I32"

    with_checksum = edited(tiny_model_path, tmp_path / "relabelled.mscap",
                           change_index=relabel)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(with_checksum)
    without = edited(tiny_model_path, tmp_path / "old-relabelled.mscap",
                     lambda d: d.pop("weights_sha256"), relabel)
    with pytest.raises(ModelFileError, match="wrong shape or type"):
        load_model(without)
    as_half = edited(tiny_model_path, tmp_path / "half.mscap",
                     lambda d: d.update(weights_dtype="float16"))
    with pytest.raises(ModelFileError, match="stored as F32, but the header says"):
        load_model(as_half)


def test_files_without_a_checksum_still_load_and_say_so(tiny_model_path, tmp_path, caplog):
    from mapscribe.model.modelfile.weights import load_model

    old = edited(tiny_model_path, tmp_path / "old.mscap", lambda d: d.pop("weights_sha256"))
    with caplog.at_level("INFO"):
        load_model(old)
    assert "not verified" in caplog.text


def test_nan_or_infinite_weights_are_refused(tiny_model_path, tmp_path):
    import torch

    from mapscribe.model.modelfile.weights import load_model, save_model

    captioner = load_model(tiny_model_path)
    with torch.no_grad():
        captioner.decoder.output.weight[3, 5] = float("nan")
    save_model(captioner, tmp_path / "nan.mscap")  # with a valid checksum of the NaN
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        load_model(tmp_path / "nan.mscap")


@pytest.fixture
def silent_model(tiny_model_path, tmp_path) -> Path:
    """Finite weights that always say <end> first: every caption is empty."""
    import torch

    from mapscribe.model.modelfile.weights import load_model, save_model

    captioner = load_model(tiny_model_path)
    with torch.no_grad():
        captioner.decoder.output.bias[captioner.vocabulary.end_id] = 1000.0
    path = tmp_path / "silent.mscap"
    save_model(captioner, path)
    return path


def test_empty_captions_are_an_error_never_written(silent_model, tmp_path, run_cli):
    out = tmp_path / "grid.gpkg"
    result = run_cli("caption", RGB_BYTE, "--model", silent_model, "--out", out, "--tile-size",
                     "200", "--tile-size-unit", "pixels")
    assert result.returncode == 1 and "gave an empty caption" in result.stderr
    from osgeo import ogr

    dataset = ogr.Open(str(out))
    captions = [f.GetField("caption") for f in dataset.GetLayerByName("captions")] if dataset \
        else []
    assert not [c for c in captions if c is not None]
    predicted = run_cli("predict", silent_model, IMAGE, "--json")
    assert predicted.returncode == 1 and "gave an empty caption" in predicted.stderr
    assert predicted.stdout == ""


def test_caption_output_checks():
    check_caption_output("m", "a farm", -0.5, "tile 1")
    for text, score in (("", -0.1), ("  ", -0.1), ("a farm", float("-inf")),
                        ("a farm", float("nan"))):
        with pytest.raises(ModelFileError, match="damaged or unusable"):
            check_caption_output("m", text, score, "tile 1")


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_predict_json_is_valid_json(run_cli, tiny_model_path):
    result = run_cli("predict", tiny_model_path, IMAGE, "--json")
    assert result.returncode == 0, result.stderr
    [entry] = _strict_json(result.stdout)
    assert entry["caption"] and math.isfinite(entry["score"])


def test_json_output_never_holds_nan_or_infinity():
    from mapscribe.model.cli.common import json_text

    text = json_text({"a": float("nan"), "b": [float("-inf"), 1.5], "c": (float("inf"),)})
    assert _strict_json(text) == {"a": None, "b": [None, 1.5], "c": [None]}
