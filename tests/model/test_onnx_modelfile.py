"""The ONNX graphs in a model file: `mapscribe export-onnx`, what the file looks like after it,
and what a damaged or hostile graph section gets."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import torch

from locations import UCM_SAMPLE
from mapscribe.model.data.images import load_rgb_image
from mapscribe.model.modelfile import onnx_section
from mapscribe.model.modelfile.header import ModelFileError, read_header, record_metrics
from mapscribe.model.modelfile.onnx_section import (
    ONNX_METADATA_KEY,
    has_onnx_graphs,
    read_onnx_section,
    write_onnx_section,
)
from mapscribe.model.modelfile.weights import load_model
from mapscribe.model.nn.config import DecodingParams
from mapscribe.model.runtime.base import image_pixels
from mapscribe.model.runtime.choice import open_runtime
from mapscribe.model.runtime.export import export_onnx
from mapscribe.model.runtime.onnx_captioner import OnnxCaptioner
from rasters import NAIP

SAMPLE_IMAGES = sorted((UCM_SAMPLE / "images").iterdir())


@pytest.fixture(scope="module")
def exported(tiny_model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny-onnx.mscap"
    return path, export_onnx(tiny_model_path, path)


def _pixels(count: int = len(SAMPLE_IMAGES)) -> np.ndarray:
    return np.stack([image_pixels(load_rgb_image(path), 224) for path in SAMPLE_IMAGES[:count]])


def test_the_graphs_are_small_and_share_the_weights(exported, tiny_model_path):
    path, result = exported
    assert result.encoder_batch is None                   # any batch
    assert result.shared_weights > 100 and result.embedded_bytes < 64 * 1024
    assert max(result.max_difference.values()) < 1e-4
    assert 0 < path.stat().st_size - tiny_model_path.stat().st_size < 1024 * 1024
    # torch ignores the graphs: same network, same header
    before, after = load_model(tiny_model_path).state_dict(), load_model(path).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert read_header(path).vocabulary == read_header(tiny_model_path).vocabulary
    # still a plain safetensors file: the graphs are uint8 tensors
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    assert {name for name in tensors if name.startswith("onnx.")} == {
        "onnx.encoder", "onnx.decoder_start", "onnx.decoder_step"}
    assert tensors["onnx.encoder"].dtype == np.uint8


def test_the_graphs_caption_as_torch_does(exported):
    path, _ = exported
    torch_runtime, onnx_runtime = open_runtime(path, "torch", "cpu"), open_runtime(path, "onnx",
                                                                                  "cpu")
    random = np.random.default_rng(0).integers(0, 256, (4, 3, 224, 224), dtype=np.uint8)
    pixels = np.concatenate([_pixels(), random])
    for decoding in (DecodingParams(beam_size=3), DecodingParams(beam_size=2, max_length=4)):
        want = torch_runtime.caption_batch(pixels, decoding)
        got = onnx_runtime.caption_batch(pixels, decoding)
        assert [c.text for c in got] == [c.text for c in want]
        assert [c.finished for c in got] == [c.finished for c in want]
        # the theme too, when the model has a theme head
        assert [c.theme for c in got] == [c.theme for c in want]
        for a, b in zip(got, want):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            if a.theme_probability is not None:
                assert a.theme_probability == pytest.approx(b.theme_probability, abs=1e-4)
    assert onnx_runtime.caption_batch(pixels[:0], DecodingParams()) == []


def test_an_encoder_of_fixed_batch_gets_padded_batches(exported):
    captioner = OnnxCaptioner(exported[0], "cpu")
    pixels = _pixels(5)
    want = captioner.graphs.encode(pixels)
    captioner.graphs.graphs["encoder"].batch = 2    # as a graph exported for batches of 2
    got = captioner.graphs.encode(pixels)
    assert got.keys() == want.keys() and got["features"].shape[0] == 5
    np.testing.assert_allclose(got["features"], want["features"], atol=1e-5)


def test_the_graphs_survive_header_edits_and_are_replaced_not_added(exported, tmp_path):
    copy = tmp_path / "model.mscap"
    shutil.copyfile(exported[0], copy)
    graphs = {name: graph.model for name, graph in read_onnx_section(copy).graphs.items()}
    record_metrics(copy, "test", {"BLEU-4": 0.5})
    assert read_header(copy).metrics["test"] == {"BLEU-4": 0.5}
    assert {name: g.model for name, g in read_onnx_section(copy).graphs.items()} == graphs
    size = copy.stat().st_size
    export_onnx(copy)
    assert abs(copy.stat().st_size - size) < 4096 and has_onnx_graphs(copy)
    write_onnx_section(copy, {}, None)
    assert not has_onnx_graphs(copy)
    load_model(copy)
    with pytest.raises(ModelFileError, match="export-onnx"):
        read_onnx_section(copy)


def _edit_index(path, change) -> None:
    """Rewrite the safetensors header of ``path`` after ``change(index)``."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    index = json.loads(data[8:8 + length])
    change(index)
    text = json.dumps(index).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length:])


def _set_description(index, change) -> None:
    description = json.loads(index["__metadata__"][ONNX_METADATA_KEY])
    change(description)
    index["__metadata__"][ONNX_METADATA_KEY] = json.dumps(description)


@pytest.mark.parametrize("damage, message", [
    (lambda index: index["__metadata__"].__setitem__(ONNX_METADATA_KEY, "{"),
     "not a JSON object"),
    (lambda index: _set_description(index, lambda d: d.__setitem__("version", 7)),
     "version 7.*update MapScribe"),
    (lambda index: _set_description(index, lambda d: d["graphs"].pop("decoder_step")),
     "expected"),
    (lambda index: _set_description(
        index, lambda d: d["graphs"]["encoder"]["shared"].__setitem__("w", "no.such.tensor")),
     "'no.such.tensor', which is not a float tensor"),
    (lambda index: _set_description(
        index, lambda d: d["graphs"]["encoder"].__setitem__("batch", -3)), "batch -3"),
    (lambda index: _set_description(
        index, lambda d: d["graphs"]["encoder"].__setitem__("tensor", "decoder.output.weight")),
     "does not name its tensor"),
    # ONNX Runtime would read a smaller tensor past its end: the shapes must be the same
    (lambda index: _set_description(index, lambda d: d["graphs"]["decoder_step"]["shared"]
                                    .__setitem__("decoder.output.bias",
                                                 "decoder.embedding.weight")),
     "does not fit the tensor 'decoder.embedding.weight'"),
], ids=["not-json", "newer", "graph-missing", "bad-weight", "bad-batch", "wrong-tensor",
        "wrong-shape"])
def test_a_damaged_graph_section_is_refused_with_its_reason(exported, tmp_path, damage, message):
    copy = tmp_path / "damaged.mscap"
    shutil.copyfile(exported[0], copy)
    _edit_index(copy, damage)
    with pytest.raises(ModelFileError, match=message):
        OnnxCaptioner(copy, "cpu")
    load_model(copy)  # torch does not need the graphs


def test_a_graph_cannot_read_a_file_of_this_machine(exported, tmp_path, monkeypatch):
    """A hostile model file whose graph names a weight in a file (ONNX "external data"):
    ONNX Runtime would read it from the working folder; MapScribe refuses the graph."""
    import onnx

    section = read_onnx_section(exported[0])
    graph = section.graphs["decoder_start"]
    proto = onnx.load_from_string(graph.model)
    stolen = sorted(graph.shared)[0]
    # The file holds exactly what the weight needs, so that ONNX Runtime would take it.
    (tmp_path / "secret.bin").write_bytes(section.weights[graph.shared.pop(stolen)].tobytes())
    for initializer in proto.graph.initializer:
        if initializer.name == stolen:
            initializer.external_data[0].value = "secret.bin"
    graph.model = proto.SerializeToString()
    hostile = tmp_path / "hostile.mscap"
    shutil.copyfile(exported[0], hostile)
    write_onnx_section(hostile, section.graphs, {"opset": 17})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="decoder_start graph wants weights from outside"):
        OnnxCaptioner(hostile, "cpu")
    # Second line of defence: ONNX Runtime may read external data from an empty folder only.
    monkeypatch.setattr(onnx_section, "_check_external", lambda path, graph, weights: None)
    with pytest.raises(ModelFileError, match="cannot load its decoder_start graph"):
        OnnxCaptioner(hostile, "cpu")


def test_external_tensors_are_found_wherever_they_are():
    """Initializers, constants, subgraphs: every tensor with its data outside the graph."""
    from onnx import TensorProto, helper

    def external(name):
        tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], [0.0])
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "elsewhere.bin"
        return tensor

    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=external("in-a-branch"))], "branch", [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["c"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
        [external("initializer"), helper.make_tensor("inside", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph).SerializeToString()
    assert onnx_section.external_tensors(model) == {"initializer": (TensorProto.FLOAT, (1,)),
                                                    "in-a-branch": (TensorProto.FLOAT, (1,))}
    with pytest.raises(ValueError, match="past the end"):
        onnx_section.external_tensors(model[:-3])


def test_the_command_line(exported, tiny_model_path, tmp_path, cli):
    copy = tmp_path / "copy.mscap"
    done = cli("export-onnx", str(tiny_model_path), "--out", str(copy))
    assert done.returncode == 0, done.stderr
    assert "ONNX graphs written into" in done.stdout and has_onnx_graphs(copy)
    assert not has_onnx_graphs(tiny_model_path)              # --out leaves MODEL as it was
    again = cli("export-onnx", str(tiny_model_path), "--out", str(copy))
    assert again.returncode == 1 and "--overwrite" in again.stderr
    images = [str(path) for path in SAMPLE_IMAGES[:3]]
    outputs = {}
    for runtime in ("torch", "onnx"):
        done = cli("predict", str(copy), *images, "--runtime", runtime, "--json")
        assert done.returncode == 0, done.stderr
        outputs[runtime] = [item["caption"] for item in json.loads(done.stdout)]
    assert outputs["onnx"] == outputs["torch"]
    done = cli("predict", str(copy), images[0], "--runtime", "onnx", "--attention",
               str(tmp_path / "a.png"))
    assert done.returncode == 1 and "--runtime torch" in done.stderr
    done = cli("caption", str(NAIP), "--model", str(tiny_model_path), "--runtime", "onnx",
               "--out", str(tmp_path / "grid.gpkg"))
    assert done.returncode == 1 and f"mapscribe export-onnx {tiny_model_path}" in done.stderr


def test_the_pooling_exports_as_a_matrix_when_the_map_is_not_the_grid(tiny_model_path):
    """adaptive_avg_pool2d does not export for a variable size; with the input size fixed it is a
    constant averaging matrix (or nothing at all when the map is already the grid)."""
    from torch.nn import functional

    from mapscribe.model.runtime.export import EncoderGraph, _pooling_matrix

    assert _pooling_matrix((7, 7), 7) is None
    for size, grid in (((10, 10), 7), ((9, 8), 4), ((7, 7), 3)):
        maps = torch.rand(2, 5, *size)
        pooled = torch.matmul(maps.flatten(2), _pooling_matrix(size, grid).t())
        want = functional.adaptive_avg_pool2d(maps, grid).flatten(2)
        assert torch.allclose(pooled, want, atol=1e-6)
    captioner = load_model(tiny_model_path)
    captioner.config.grid_size = captioner.encoder.grid_size = 3   # a 7 × 7 map onto 3 × 3
    images = torch.from_numpy(_pixels(2))
    with torch.no_grad():
        graph = EncoderGraph(captioner, (7, 7)).eval()
        assert graph.pooled
        assert torch.allclose(graph(images)[0], captioner.encode(images), atol=1e-5)


def test_damaged_weights_are_refused_as_torch_refuses_them(exported, tmp_path):
    from mapscribe.model.modelfile.onnx_section import _data_start

    copy = tmp_path / "flipped.mscap"
    shutil.copyfile(exported[0], copy)
    _, index = onnx_section.read_layout(copy)
    begin, _ = index["decoder.output.bias"]["data_offsets"]
    data = bytearray(copy.read_bytes())
    data[_data_start(copy) + begin] ^= 0x40
    copy.write_bytes(bytes(data))
    for load in (lambda: OnnxCaptioner(copy, "cpu"), lambda: load_model(copy)):
        with pytest.raises(ModelFileError, match="do not match the checksum"):
            load()


def test_a_theme_head_becomes_an_output_of_the_encoder_graph(tiny_model_path, tmp_path):
    """A model with the scene-theme head: its logits are an extra output of the encoder graph,
    and ONNX Runtime gives the theme and its probability that torch gives."""
    from mapscribe.model.data.themes import THEMES
    from mapscribe.model.modelfile.weights import save_model
    from mapscribe.model.nn.theme_head import ThemeHead

    captioner = load_model(tiny_model_path)
    captioner.config.themes = tuple(THEMES)
    torch.manual_seed(0)
    captioner.theme_head = ThemeHead(captioner.config.feature_size, len(THEMES)).eval()
    with torch.no_grad():
        captioner.theme_head.linear.weight.mul_(50)   # themes that differ between images
    save_model(captioner, tmp_path / "themed.mscap")
    result = export_onnx(tmp_path / "themed.mscap")
    assert result.max_difference["theme_logits"] < 1e-4
    pixels = _pixels()
    want = open_runtime(tmp_path / "themed.mscap", "torch", "cpu").caption_batch(
        pixels, DecodingParams(beam_size=2))
    got = open_runtime(tmp_path / "themed.mscap", "onnx", "cpu").caption_batch(
        pixels, DecodingParams(beam_size=2))
    assert [c.theme for c in got] == [c.theme for c in want]
    assert len({c.theme for c in got}) > 1 and all(c.theme is not None for c in got)
    for a, b in zip(got, want):
        assert a.theme_probability == pytest.approx(b.theme_probability, abs=1e-4)
