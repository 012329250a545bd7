"""Reading and editing a model file's header without torch: what a model is, checked.

The header of a ``.mscap`` file (see :mod:`mapscribe.model.modelfile` for the layout) is plain
JSON, so describing a model, sizing tiles from it or refusing a bad file needs neither torch nor
the weights: the QGIS plugin can show it the moment a file is picked.
"""

from __future__ import annotations

import datetime
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from ..atomic import write_bytes_atomic
from ..data.text import Vocabulary, VocabularyError
from ..nn.config import CaptionerConfig

FORMAT = "mapscribe-captioner"


FORMAT_VERSION = 1


MODEL_SUFFIX = ".mscap"


_MAX_HEADER = 64 * 1024 * 1024


_ITEM_SIZES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8}


class ModelFileError(ValueError):
    """A file that is not a MapScribe model MapScribe can open."""


@dataclass
class ModelHeader:
    """What a model file says about itself."""

    config: CaptionerConfig
    vocabulary: Vocabulary
    weights_dtype: str = "float32"
    ground_resolution_m: Optional[float] = None
    training: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    created: str = ""
    mapscribe_version: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "mapscribe_version": self.mapscribe_version or _mapscribe_version(),
                "created": self.created or _now(), "architecture": self.config.to_dict(),
                "vocabulary": self.vocabulary.to_dict(), "weights_dtype": self.weights_dtype,
                "ground_resolution_m": self.ground_resolution_m, "training": self.training,
                "metrics": self.metrics}

    def describe(self) -> str:
        """A few lines for people: backbone, vocabulary, training data, metrics."""
        lines = [f"Backbone {self.config.backbone}, {self.config.grid_size}×"
                 f"{self.config.grid_size} attention grid, input {self.config.input_size} px",
                 f"Vocabulary {len(self.vocabulary) - len(Vocabulary.SPECIALS)} words"]
        if self.training:
            data = self.training.get("dataset", "unknown data")
            lines.append(f"Trained on {data}: {self.training.get('images', '?')} images, "
                         f"{self.training.get('epochs', '?')} epochs")
        if self.ground_resolution_m:
            lines.append(f"Ground resolution about {self.ground_resolution_m:g} m per pixel")
        for split, values in (self.metrics or {}).items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items()
                              if isinstance(v, (int, float)))
            lines.append(f"{split}: {shown}")
        return "\n".join(lines)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _mapscribe_version() -> str:
    from ... import __version__

    return __version__


def record_metrics(path: "str | os.PathLike", key: str, values: Dict[str, Any]) -> ModelHeader:
    """Store ``values`` under ``metrics[key]`` in the model file's header (atomically; the
    weights are copied byte for byte)."""
    path = Path(path)
    header, index = _read_layout(path)
    header.metrics[key] = dict(values)
    index["__metadata__"]["mapscribe"] = json.dumps(header.to_dict())
    text = json.dumps(index, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # safetensors keeps the data 8-byte aligned
    with open(path, "rb") as stream:
        (old_length,) = struct.unpack("<Q", stream.read(8))
        stream.seek(8 + old_length)
        data = stream.read()
    write_bytes_atomic(path, struct.pack("<Q", len(text)) + text + data)
    return header


def read_header(path: "str | os.PathLike") -> ModelHeader:
    """The model file's header, checked, without reading the weights."""
    header, _ = _read_layout(Path(path))
    return header


def _read_layout(path: Path):
    """Check the file's structure and parse its header; returns (ModelHeader, tensor index)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{path}: only {size} bytes long; it is not a MapScribe "
                                     "model file, or it was cut short")
            (header_length,) = struct.unpack("<Q", prefix)
            if header_length > min(_MAX_HEADER, size - 8):
                raise ModelFileError(_foreign_file_message(path, prefix, size))
            raw = stream.read(header_length)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: the header is not valid JSON; the file is corrupted or "
                             "is not a MapScribe model") from None
    if not isinstance(index, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object; not a MapScribe model")
    metadata = index.get("__metadata__") or {}
    if "mapscribe" not in metadata:
        raise ModelFileError(f"{path}: a safetensors file, but not a MapScribe model (its "
                             "header has no 'mapscribe' description); train one with "
                             "`mapscribe train` or ImageCaptioner.save()")
    try:
        document = json.loads(metadata["mapscribe"])
    except (TypeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: the MapScribe description in the header is not valid "
                             "JSON; the file is corrupted") from None
    _check_extent(path, index, size, header_length)
    return _parse_header(path, document), index


def _foreign_file_message(path: Path, prefix: bytes, size: int) -> str:
    if prefix.startswith(b"PK\x03\x04"):
        kind = "a zip archive (a PyTorch .pt/.pth checkpoint is one: it holds a pickle)"
    elif prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        kind = "a Python pickle"
    elif prefix.lstrip().startswith((b"{", b"[")):
        kind = "a JSON document"
    else:
        kind = f"of an unknown kind ({size} bytes)"
    advice = (" MapScribe never opens pickles, because opening one can run any code."
              if "pickle" in kind else "")
    return (f"{path}: not a MapScribe model file: the file is {kind}.{advice} Use a .mscap "
            "file written by MapScribe.")


def _check_extent(path: Path, index: Dict, size: int, header_length: int) -> None:
    """Every tensor's bytes must lie inside the file (else it was cut short)."""
    data_size = size - 8 - header_length
    end = 0
    for name, entry in index.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = entry["data_offsets"]
            itemsize = _ITEM_SIZES[entry["dtype"]]
            count = 1
            for dimension in entry["shape"]:
                count *= int(dimension)
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path}: tensor {name!r} is described wrongly in the header; "
                                 "the file is corrupted") from None
        if stop - begin != count * itemsize:
            raise ModelFileError(f"{path}: tensor {name!r} has the wrong byte size; the file "
                                 "is corrupted")
        end = max(end, stop)
    if end > data_size:
        raise ModelFileError(f"{path}: the file is cut short ({size} bytes, "
                             f"{end - data_size} missing); copy or download it again")
    if end < data_size:
        raise ModelFileError(f"{path}: {data_size - end} unexpected bytes after the weights; "
                             "the file is corrupted")


def _parse_header(path: Path, document: Any) -> ModelHeader:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a MapScribe captioner (format "
                             f"{document.get('format') if isinstance(document, dict) else None!r})")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise ModelFileError(
            f"{path}: model file format version {version!r}, but this MapScribe reads version "
            f"{FORMAT_VERSION}" + ("; update MapScribe to open it" if newer else ""))
    try:
        config = CaptionerConfig.from_dict(document["architecture"])
        vocabulary = Vocabulary.from_dict(document["vocabulary"], source=str(path))
        return ModelHeader(config, vocabulary, document.get("weights_dtype", "float32"),
                           document.get("ground_resolution_m"), document.get("training") or {},
                           document.get("metrics") or {}, document.get("created", ""),
                           document.get("mapscribe_version", ""))
    except (KeyError, TypeError, ValueError, VocabularyError) as error:
        raise ModelFileError(f"{path}: the model description is incomplete or wrong "
                             f"({error}); the file is damaged") from None
