"""The ONNX graphs a model file can carry, for captioning without torch: read and written with
numpy and plain Python (no torch, no onnx).

``mapscribe export-onnx`` (:mod:`..runtime.export`) adds three serialised ONNX graphs to the
safetensors file, as 1-D uint8 tensors named ``onnx.<graph>``:

    encoder        images uint8 (B, 3, S, S) → features float32 (B, P, C) [+ theme_logits (B, T)]
    decoder_start  features (B, P, C) → memory_features, memory_keys, hidden, cell
    decoder_step   words int64 (N,), memory_features, memory_keys, hidden, cell
                   → logits (N, V), hidden, cell, weights (N, P)

They are described in the safetensors header, under ``__metadata__["mapscribe.onnx"]`` (a JSON
document: format version, opset, each graph's tensor, inputs, outputs, batch, and which of its
weights it shares). The graphs hold no copy of the model's weights: each weight that equals one
of the file's tensors is an "external" initializer, given to ONNX Runtime from that tensor when
the graph is loaded, so the graphs add a few hundred kB, not the weights a second time. The file
stays one safe file: ONNX graphs are data, and no path in them is ever followed.

Rewriting the header (``record_metrics``) keeps all of this; ``load_model`` (torch) skips the
``onnx.`` tensors.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..atomic import write_bytes_atomic
from .checks import NOT_WEIGHTS_PREFIX, check_weight_dtypes, weights_checksum
from .header import ModelFileError, read_layout

ONNX_PREFIX = NOT_WEIGHTS_PREFIX   # the graphs' tensors: "onnx.<graph>"
ONNX_METADATA_KEY = "mapscribe.onnx"
ONNX_SECTION_VERSION = 1
GRAPH_NAMES = ("encoder", "decoder_start", "decoder_step")

# Bounds on what a file may ask to load: graphs without weights are small.
MAX_GRAPH_BYTES = 64 * 1024 * 1024
MAX_FIXED_BATCH = 4096

_NUMPY_DTYPES = {"F16": np.float16, "F32": np.float32}


@dataclass
class OnnxGraph:
    """One serialised graph and how to run it."""

    name: str
    model: bytes                      # the serialised ONNX ModelProto
    inputs: List[str]
    outputs: List[str]
    batch: Optional[int]              # None: any batch; else the fixed batch it was exported at
    shared: Dict[str, str]            # external initializer → the model tensor that holds it

    def describe(self) -> Dict[str, Any]:
        return {"tensor": ONNX_PREFIX + self.name, "bytes": len(self.model),
                "inputs": list(self.inputs), "outputs": list(self.outputs),
                "batch": self.batch, "shared": dict(self.shared)}


@dataclass
class OnnxSection:
    """The graphs of a model file, with the shared weights they need as float32 arrays."""

    graphs: Dict[str, OnnxGraph]
    weights: Dict[str, np.ndarray]
    description: Dict[str, Any]


def _advice(path: Path) -> str:
    return (f"export the graphs again with `mapscribe export-onnx {path}` (needs torch), or "
            "caption with the runtime 'torch'")


def onnx_description(index: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The JSON description of the graphs from a file's tensor index, or None."""
    text = (index.get("__metadata__") or {}).get(ONNX_METADATA_KEY)
    if text is None:
        return None
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        return {"invalid": True}
    return document if isinstance(document, dict) else {"invalid": True}


def has_onnx_graphs(path: "str | os.PathLike") -> bool:
    """Whether the model file carries ONNX graphs (header only; nothing is loaded)."""
    _, index = read_layout(Path(path))
    return onnx_description(index) is not None


def read_onnx_section(path: "str | os.PathLike") -> OnnxSection:
    """The graphs and the weights they share, checked as ``load_model`` checks the weights
    (their dtype, the checksum in the header, no NaN or infinity) and for references to other
    files. Raises :class:`ModelFileError`."""
    path = Path(path)
    header, index = read_layout(path)
    description = onnx_description(index)
    if description is None:
        raise ModelFileError(f"{path}: this model file has no ONNX graphs, so it cannot caption "
                             f"without torch; {_advice(path)}")
    graphs_info = _checked_description(path, description, index)
    data_start = _data_start(path)
    wanted = {tensor for info in graphs_info.values() for tensor in info["shared"].values()}
    arrays = _read_arrays(path, index, data_start,
                          [ONNX_PREFIX + name for name in GRAPH_NAMES] + sorted(wanted))
    graphs = {name: OnnxGraph(name, arrays[ONNX_PREFIX + name].tobytes(), list(info["inputs"]),
                              list(info["outputs"]), info["batch"], dict(info["shared"]))
              for name, info in graphs_info.items()}
    weights = {name: arrays[name].astype(np.float32, copy=False) for name in wanted}
    for graph in graphs.values():
        _check_external(path, graph, weights)
    _check_weights(path, header, index, data_start, weights)
    return OnnxSection(graphs, weights, description)


def _check_external(path: Path, graph: OnnxGraph, weights: Dict[str, np.ndarray]) -> None:
    """Every weight the graph wants from outside it is a float tensor of the model file of the
    very shape it declares (ONNX Runtime trusts the declared shape: a smaller tensor would be
    read past its end)."""
    try:
        external = external_tensors(graph.model)
    except ValueError as error:
        raise ModelFileError(f"{path}: its {graph.name} graph is not a readable ONNX graph "
                             f"({error}); {_advice(path)}") from None
    outside = sorted(set(external) - set(graph.shared))
    if outside:
        raise ModelFileError(
            f"{path}: its {graph.name} graph wants weights from outside the model file "
            f"({', '.join(outside[:3])}); MapScribe never lets a model file read other files. "
            f"The file is damaged or was made to do harm: {_advice(path)}")
    for initializer, tensor in graph.shared.items():
        data_type, dims = external.get(initializer, (None, None))
        if data_type != _ONNX_FLOAT or dims != tuple(weights[tensor].shape):
            raise ModelFileError(
                f"{path}: its {graph.name} graph's weight {initializer!r} (type {data_type}, "
                f"shape {dims}) does not fit the tensor {tensor!r} {weights[tensor].shape} it "
                f"names; the file is damaged or was edited: {_advice(path)}")


def _check_weights(path: Path, header: Any, index: Dict[str, Any], data_start: int,
                   weights: Dict[str, np.ndarray]) -> None:
    """What load_model checks of the weights, for the runtime without torch."""
    check_weight_dtypes(path, index, header.weights_dtype)
    if (header.weights_sha256 and weights_checksum(index, path=path, data_start=data_start)
            != header.weights_sha256):
        raise ModelFileError(f"{path}: its weights do not match the checksum in its header: "
                             "the file is damaged (a bad copy, a failing disk) or was edited. "
                             "Copy or download it again.")
    bad = sorted(name for name, array in weights.items() if not np.isfinite(array).all())
    if bad:
        raise ModelFileError(f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values "
                             f"(e.g. {bad[:3]}): the file is damaged, or the training that made "
                             "it diverged. Copy it again, or train again.")


def _checked_description(path: Path, description: Dict[str, Any], index: Dict[str, Any]
                         ) -> Dict[str, Dict[str, Any]]:
    def wrong(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: the description of its ONNX graphs is wrong ({what}); "
                              f"the file is damaged or was edited: {_advice(path)}")

    if description.get("invalid"):
        raise wrong("not a JSON object")
    version = description.get("version")
    if version != ONNX_SECTION_VERSION:
        newer = isinstance(version, int) and version > ONNX_SECTION_VERSION
        raise ModelFileError(
            f"{path}: its ONNX graphs are of format version {version!r}, this MapScribe reads "
            f"version {ONNX_SECTION_VERSION}: "
            + ("update MapScribe" if newer else _advice(path)))
    graphs = description.get("graphs")
    if not isinstance(graphs, dict) or sorted(graphs) != sorted(GRAPH_NAMES):
        raise wrong(f"graphs {sorted(graphs) if isinstance(graphs, dict) else graphs!r}, "
                    f"expected {list(GRAPH_NAMES)}")
    for name, info in graphs.items():
        entry = index.get(ONNX_PREFIX + name)
        if not isinstance(info, dict) or info.get("tensor") != ONNX_PREFIX + name:
            raise wrong(f"graph {name!r} does not name its tensor {ONNX_PREFIX + name!r}")
        if (not isinstance(entry, dict) or entry.get("dtype") != "U8"
                or len(entry.get("shape", [])) != 1):
            raise wrong(f"tensor {ONNX_PREFIX + name!r} is missing or is not bytes")
        if entry["shape"][0] > MAX_GRAPH_BYTES:
            raise wrong(f"graph {name!r} is {entry['shape'][0]} bytes, more than the "
                        f"{MAX_GRAPH_BYTES} a graph without weights can need")
        for key in ("inputs", "outputs"):
            if (not isinstance(info.get(key), list)
                    or not all(isinstance(item, str) for item in info[key])):
                raise wrong(f"graph {name!r}: {key} is not a list of names")
        batch = info.get("batch")
        if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool)
                                  or not 1 <= batch <= MAX_FIXED_BATCH):
            raise wrong(f"graph {name!r}: batch {batch!r}")
        shared = info.get("shared")
        if not isinstance(shared, dict):
            raise wrong(f"graph {name!r}: 'shared' is not a mapping")
        for initializer, tensor in shared.items():
            target = index.get(tensor) if isinstance(tensor, str) else None
            if (not isinstance(target, dict) or tensor.startswith(ONNX_PREFIX)
                    or target.get("dtype") not in _NUMPY_DTYPES):
                raise wrong(f"graph {name!r}: weight {initializer!r} names {tensor!r}, which is "
                            "not a float tensor of the file")
    return graphs


def _data_start(path: Path) -> int:
    with open(path, "rb") as stream:
        (header_length,) = struct.unpack("<Q", stream.read(8))
    return 8 + header_length


def _read_arrays(path: Path, index: Dict[str, Any], data_start: int, names: List[str]
                 ) -> Dict[str, np.ndarray]:
    """Tensors of the file as numpy arrays (offsets were checked by read_layout)."""
    dtypes = {**_NUMPY_DTYPES, "U8": np.uint8}
    arrays = {}
    with open(path, "rb") as stream:
        for name in names:
            entry = index[name]
            begin, end = entry["data_offsets"]
            stream.seek(data_start + begin)
            raw = stream.read(end - begin)
            arrays[name] = np.frombuffer(raw, dtype=dtypes[entry["dtype"]]).reshape(
                entry["shape"])
    return arrays


# -- the graphs' "external data": every tensor stored outside the graph, found without onnx ----
# Where ONNX puts tensors (field numbers of onnx.proto): a message kind → {field: kind}.
_ONNX_FIELDS: Dict[str, Dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_DATA_LOCATION = 1, 2, 8, 14
_EXTERNAL = 1
_ONNX_FLOAT = 1
_MAX_DEPTH = 64


def _varint(data: memoryview, at: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a number runs past the end")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _fields(data: memoryview):
    """(field number, value) of one protobuf message: an int, or a memoryview of the bytes."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        wire = key & 7
        value: Any
        if wire == 0:
            value, at = _varint(data, at)
        elif wire in (1, 5):
            value, at = None, at + (8 if wire == 1 else 4)
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at:at + length], at + length
        else:
            raise ValueError(f"unknown wire type {wire}")
        if at > len(data):
            raise ValueError("a field runs past the end")
        yield key >> 3, value


def _packed(value: Any) -> List[int]:
    """A repeated integer field's values: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    numbers, at = [], 0
    while at < len(value):
        number, at = _varint(value, at)
        numbers.append(number)
    return numbers


def external_tensors(model: bytes) -> Dict[str, Tuple[Optional[int], Tuple[int, ...]]]:
    """The tensors of a serialised ONNX model whose data lies outside it (``data_location:
    EXTERNAL``), wherever they are (initializers, constants, subgraphs): name → (ONNX data
    type, dims)."""
    found: Dict[str, Tuple[Optional[int], Tuple[int, ...]]] = {}

    def visit(data: memoryview, kind: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("graphs nested too deep")
        if kind == "tensor":
            fields = list(_fields(data))
            if any(number == _TENSOR_DATA_LOCATION and value == _EXTERNAL
                   for number, value in fields):
                names = [bytes(value).decode("utf-8", "replace") for number, value in fields
                         if number == _TENSOR_NAME and isinstance(value, memoryview)]
                types = [value for number, value in fields
                         if number == _TENSOR_DATA_TYPE and isinstance(value, int)]
                dims = tuple(dim for number, value in fields if number == _TENSOR_DIMS
                             for dim in _packed(value))
                found[names[0] if names else "(a tensor without a name)"] = (
                    types[0] if types else None, dims)
            return
        for number, value in _fields(data):
            inner = _ONNX_FIELDS[kind].get(number)
            if inner is not None and isinstance(value, memoryview):
                visit(value, inner, depth + 1)

    visit(memoryview(model), "model", 0)
    return found


def write_onnx_section(path: "str | os.PathLike", graphs: Dict[str, OnnxGraph],
                       description: Optional[Dict[str, Any]]) -> None:
    """Put ``graphs`` (all of GRAPH_NAMES) into the model file, replacing any there, with
    ``description`` (completed with each graph's entry) in the header; None removes the
    section. Atomic; every other tensor is copied byte for byte."""
    path = Path(path)
    _, index = read_layout(path)
    data_start = _data_start(path)
    with open(path, "rb") as stream:
        stream.seek(data_start)
        data = stream.read()
    kept: List[Tuple[str, Dict[str, Any]]] = sorted(
        ((name, entry) for name, entry in index.items()
         if name != "__metadata__" and not name.startswith(ONNX_PREFIX)),
        key=lambda item: item[1]["data_offsets"][0])
    metadata = dict(index.get("__metadata__") or {})
    metadata.pop(ONNX_METADATA_KEY, None)
    new_index: Dict[str, Any] = {}
    chunks: List[bytes] = []
    offset = 0
    for name, entry in kept:
        begin, end = entry["data_offsets"]
        chunks.append(data[begin:end])
        new_index[name] = {**entry, "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    if description is not None:
        description = {**description, "version": ONNX_SECTION_VERSION,
                       "graphs": {name: graphs[name].describe() for name in GRAPH_NAMES}}
        for name in GRAPH_NAMES:
            blob = graphs[name].model
            chunks.append(blob)
            new_index[ONNX_PREFIX + name] = {"dtype": "U8", "shape": [len(blob)],
                                             "data_offsets": [offset, offset + len(blob)]}
            offset += len(blob)
        metadata[ONNX_METADATA_KEY] = json.dumps(description, separators=(",", ":"))
    text = json.dumps({"__metadata__": metadata, **new_index},
                      separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # safetensors keeps the data 8-byte aligned
    write_bytes_atomic(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))
