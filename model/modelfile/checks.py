"""Checks of a model file made before anything is allocated or trusted: no torch here.

A model file may come from a stranger, so its header is data to check, not sizes to obey:

* **sizes** (:data:`SIZE_LIMITS`, :data:`MAX_VOCABULARY`): every size and count that would
  decide an allocation (input size, attention grid, vocabulary, embedding, hidden, attention and
  context sizes, encoder channels) must lie in the range real models use;
* **the tensor index**: every entry a known dtype, a shape of whole numbers, byte offsets inside
  the file that fit the shape;
* **the checksum** (``weights_sha256`` in the header, written by ``save_model``): a SHA-256 of
  every weight tensor's name, dtype, shape and bytes, verified by ``load_model``; a bit flip or
  a relabelled dtype no longer loads as a model that writes nonsense. Files written before the
  checksum existed still load (a log line says they were not verified). The ONNX graphs of
  ``mapscribe export-onnx`` are left out of it, so adding them keeps a file's checksum.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

from ..errors import MapScribeError

# (smallest, largest) for each size of the architecture; far beyond what real captioners use
# (224–512 px inputs, 7–14 cell grids, 256–1024 wide decoders, 512–2048 encoder channels),
# far below what would exhaust a machine.
SIZE_LIMITS: Dict[str, Tuple[int, int]] = {
    "input_size": (16, 1024),
    "grid_size": (1, 32),
    "feature_size": (0, 4096),
    "max_words": (1, 512),
    "decoder.embed_size": (1, 4096),
    "decoder.hidden_size": (1, 4096),
    "decoder.attention_size": (1, 4096),
    "decoder.context_size": (0, 4096),
}

# Words in the vocabulary (RSICD's is about 3,000; COCO's about 10,000).
MAX_VOCABULARY = 100_000

# Items of any other list in the architecture.
MAX_LIST_ITEMS = 10_000

# Bytes per element of each safetensors dtype MapScribe reads (U8: the ONNX graphs).
ITEM_SIZES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8, "U8": 1}

# Floating-point dtypes a file may store its weights in, per the header's weights_dtype.
FLOAT_DTYPES = {"float16": "F16", "float32": "F32"}

# Tensors that are not weights of the network (modelfile.onnx_section).
NOT_WEIGHTS_PREFIX = "onnx."

CHECKSUM_KEY = "weights_sha256"


class ModelFileError(MapScribeError, ValueError):
    """A file that is not a MapScribe model MapScribe can open (also importable from
    :mod:`.header`)."""


def _error(path: Path, text: str) -> ModelFileError:
    return ModelFileError(f"{path}: {text}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- sizes --------------------------------------------------------------------------------------
def check_header_sizes(path: Path, document: Mapping[str, Any]) -> None:
    """Refuse a header whose sizes lie outside :data:`SIZE_LIMITS` before any is used."""
    architecture = document.get("architecture")
    if not isinstance(architecture, dict):
        raise _error(path, "the model description has no 'architecture' object; the file is "
                           "damaged")
    for key, (low, high) in SIZE_LIMITS.items():
        section: Any = architecture
        *parents, name = key.split(".")
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if not isinstance(section, dict) or name not in section:
            continue  # the architecture's own defaults apply
        value = section[name]
        if not _whole(value) or not low <= value <= high:
            raise _error(path, f"architecture {key} = {_shown(value)} lies outside the range "
                               f"{low}–{high} that MapScribe models use; the file is damaged "
                               "or was made to exhaust memory, and is not opened")
    for name, value in architecture.items():
        if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
            raise _error(path, f"architecture {name} has {len(value)} items, more than "
                               f"{MAX_LIST_ITEMS}; the file is damaged")
    vocabulary = document.get("vocabulary")
    words = vocabulary.get("words") if isinstance(vocabulary, dict) else None
    if isinstance(words, list) and len(words) > MAX_VOCABULARY:
        raise _error(path, f"its vocabulary has {len(words):,} words, more than the "
                           f"{MAX_VOCABULARY:,} MapScribe models use; the file is damaged or "
                           "was made to exhaust memory, and is not opened")
    _check_header_types(path, document)


# The header's other fields: (what it must be, the check); None is always allowed.
_FIELD_TYPES = {
    "weights_dtype": ("text", lambda v: isinstance(v, str)),
    "created": ("text", lambda v: isinstance(v, str)),
    "mapscribe_version": ("text", lambda v: isinstance(v, str)),
    "ground_resolution_m": ("a number of metres between 0 and 100,000",
                            lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                                       and 0 < v <= 100_000)),
    "training": ("an object", lambda v: isinstance(v, dict)),
    "calibration": ("an object", lambda v: isinstance(v, dict)),
    "scene_themes": ("an object", lambda v: isinstance(v, dict)),
    "metrics": ("an object of objects",
                lambda v: isinstance(v, dict) and all(isinstance(m, dict) for m in v.values())),
}


def _check_header_types(path: Path, document: Mapping[str, Any]) -> None:
    for name, (kind, check) in _FIELD_TYPES.items():
        value = document.get(name)
        if value is not None and not check(value):
            raise _error(path, f"the header's {name} is {_shown(value)}, not {kind}; the file "
                               "is damaged or was edited")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the tensor index -----------------------------------------------------------------------------
def check_tensor_index(path: Path, index: Mapping[str, Any], size: int, header_length: int
                       ) -> None:
    """Every tensor described with a known dtype, a shape of whole numbers and byte offsets
    inside the file's data that fit its shape (else: corrupted, or cut short). ``size``: the
    file's, ``header_length``: the JSON header's."""
    data_size = size - 8 - header_length
    end = 0
    for name, entry in index.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = entry["data_offsets"]
            itemsize = ITEM_SIZES[entry["dtype"]]
            shape = entry["shape"]
            if not (_whole(begin) and _whole(stop) and 0 <= begin <= stop
                    and isinstance(shape, list) and len(shape) <= 8
                    and all(_whole(d) and d >= 0 for d in shape)):
                raise ValueError
            count = 1
            for dimension in shape:
                count *= dimension
        except (KeyError, TypeError, ValueError):
            raise _error(path, f"tensor {name!r} is described wrongly in the header; the file "
                               "is corrupted") from None
        if stop - begin != count * itemsize:
            raise _error(path, f"tensor {name!r} has the wrong byte size; the file is corrupted")
        end = max(end, stop)
    if end > data_size:
        raise _error(path, f"the file is cut short ({size} bytes, {end - data_size} missing); "
                           "copy or download it again")
    if end < data_size:
        raise _error(path, f"{data_size - end} unexpected bytes after the weights; the file is "
                           "corrupted")


def check_weight_dtypes(path: Path, index: Mapping[str, Any], weights_dtype: str) -> None:
    """Every floating-point weight in the dtype the header says (a relabelled dtype reads the
    same bytes as other numbers)."""
    wanted = FLOAT_DTYPES.get(weights_dtype)
    if wanted is None:
        raise _error(path, f"weights_dtype {_shown(weights_dtype)} is none of "
                           f"{sorted(FLOAT_DTYPES)}; the file is damaged")
    for name, entry in weight_entries(index):
        dtype = entry["dtype"]
        if dtype in ("F16", "BF16", "F32", "F64") and dtype != wanted:
            raise _error(path, f"tensor {name!r} is stored as {dtype}, but the header says the "
                               f"weights are {weights_dtype}; the file is damaged or was "
                               "edited")


# -- the checksum ---------------------------------------------------------------------------------
def weight_entries(index: Mapping[str, Any]) -> List[Tuple[str, Mapping[str, Any]]]:
    """The network's tensors (name, entry), sorted by name: not the metadata, not ONNX."""
    return sorted((name, entry) for name, entry in index.items()
                  if name != "__metadata__" and not name.startswith(NOT_WEIGHTS_PREFIX))


def weights_checksum(index: Mapping[str, Any], data: "bytes | memoryview | None" = None, *,
                     path: "Path | None" = None, data_start: int = 0) -> str:
    """SHA-256 (hex) of every weight tensor's name, dtype, shape and bytes, in name order.

    The bytes come from ``data`` (the file's data section) or are read from ``path`` at
    ``data_start`` (the data section's offset), a tensor at a time.
    """
    digest = hashlib.sha256()
    stream = open(path, "rb") if data is None and path is not None else None
    try:
        for name, entry in weight_entries(index):
            described = json.dumps([name, entry["dtype"], list(entry["shape"])],
                                   separators=(",", ":"))
            digest.update(described.encode("utf-8") + b"\n")
            begin, stop = entry["data_offsets"]
            if data is not None:
                digest.update(data[begin:stop])
            elif stream is not None:
                stream.seek(data_start + begin)
                remaining = stop - begin
                while remaining:
                    chunk = stream.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    digest.update(chunk)
                    remaining -= len(chunk)
    finally:
        if stream is not None:
            stream.close()
    return digest.hexdigest()


def split_blob(blob: bytes) -> Tuple[Dict[str, Any], memoryview]:
    """A safetensors file's bytes → (its JSON index, its data section)."""
    length = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + length].decode("utf-8")), memoryview(blob)[8 + length:]


def join_blob(index: Mapping[str, Any], data: "bytes | memoryview") -> bytes:
    """The bytes of a safetensors file with ``index`` and ``data`` (offsets unchanged)."""
    text = json.dumps(index, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # safetensors keeps the data 8-byte aligned
    return len(text).to_bytes(8, "little") + text + bytes(data)


# -- what the network gives -------------------------------------------------------------------
def check_caption_output(model: object, text: str, score: float, where: str) -> None:
    """Refuse what only damaged weights give: an empty caption, or a score that is not a
    finite number (NaN, −Inf). Such a caption is never written, printed or scored."""
    if text.strip() and math.isfinite(score):
        return
    what = "an empty caption" if not text.strip() else f"the caption {text[:40]!r}"
    raise ModelFileError(f"{model}: the model gave {what} with score {score} for {where}: its "
                         "weights are damaged or unusable. Nothing was written for it; copy the "
                         "model file again, or use another model.")
