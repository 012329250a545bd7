"""Reading and editing a model file's header without torch: what a model is, checked.

The header of a ``.mscap`` file (see :mod:`mapscribe.model.modelfile` for the layout) is plain
JSON, so describing a model, sizing tiles from it or refusing a bad file needs neither torch nor
the weights: the QGIS plugin can show it the moment a file is picked.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ..atomic import write_bytes_atomic
from ..data.text import Vocabulary, VocabularyError
from ..nn.config import CaptionerConfig
from ..version import __version__
from .checks import (
    CHECKSUM_KEY,
    ModelFileError,
    check_header_sizes,
    check_tensor_index,
)

FORMAT = "mapscribe-captioner"


FORMAT_VERSION = 1


MODEL_SUFFIX = ".mscap"


# The longest JSON header read (a 100,000-word vocabulary takes about 2 MB): parsing JSON takes
# many times its size in memory, so this bounds what a file can make MapScribe allocate.
_MAX_HEADER = 16 * 1024 * 1024


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
    # The theme head's table (dataset scene class → theme) when the model has one.
    scene_themes: Dict[str, str] = field(default_factory=dict)
    # How a tile's confidence is computed and where "uncertain" begins
    # (evaluation.calibration.Calibration.to_dict); empty for models without a theme head.
    calibration: Dict[str, Any] = field(default_factory=dict)
    # SHA-256 of the weight tensors (modelfile.checks.weights_checksum), set by save_model and
    # verified by load_model; empty in files written before it existed.
    weights_sha256: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "mapscribe_version": self.mapscribe_version or _mapscribe_version(),
                "created": self.created or _now(), "architecture": self.config.to_dict(),
                "vocabulary": self.vocabulary.to_dict(), "weights_dtype": self.weights_dtype,
                "ground_resolution_m": self.ground_resolution_m, "training": self.training,
                "metrics": self.metrics, "scene_themes": self.scene_themes,
                "calibration": self.calibration,
                **({CHECKSUM_KEY: self.weights_sha256} if self.weights_sha256 else {})}

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
            shown = ", ".join(f"{k} {_number(v)}" for k, v in values.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool))
            lines.append(f"{split}: {shown}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line for people: network, vocabulary, training data and resolution, and one
        score, e.g. "EfficientNet-Lite0 + LSTM, 508 words, trained on UCM + RSICD at ~0.5 m;
        RSICD test BLEU-4 0.38"."""
        backbone = _BACKBONE_TITLES.get(self.config.backbone, self.config.backbone)
        words = len(self.vocabulary) - len(Vocabulary.SPECIALS)
        text = f"{backbone} + LSTM, {words} words"
        data = self.training.get("dataset") if self.training else None
        if data:
            text += " trained on " + " + ".join(_dataset_title(part)
                                                 for part in str(data).split("+"))
            if self.ground_resolution_m:
                text += f" at ~{self.ground_resolution_m:g} m"
        score = _headline_score(self.metrics or {})
        if score:
            text += "; " + score
        return text.replace(" trained", ", trained", 1)


# Names people know the backbones and datasets by, for ModelHeader.summary().
_BACKBONE_TITLES = {"efficientnet_lite0": "EfficientNet-Lite0",
                    "efficientnet_b0": "EfficientNet-B0", "resnet18": "ResNet-18",
                    "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                    "resnet101": "ResNet-101", "mobilenet_v3_large": "MobileNetV3-Large",
                    "convnext_tiny": "ConvNeXt-Tiny"}
_DATASET_TITLES = {"ucm-captions": "UCM", "ucm": "UCM", "rsicd": "RSICD", "rsicd-subset": "RSICD",
                   "sydney-captions": "Sydney", "nwpu-captions": "NWPU"}


def _number(value: Any) -> str:
    """A metric as people read it: counts as integers (images 210), scores to 3 decimals."""
    if isinstance(value, int):
        return f"{value}"
    return f"{value:.3f}"


def _dataset_title(name: str) -> str:
    name = name.strip()
    return _DATASET_TITLES.get(name.lower(), name)


def _headline_score(metrics: Dict[str, Any]) -> str:
    """BLEU-4 of a test split, preferring RSICD's (the harder, better-known benchmark)."""
    tests = [key for key, values in metrics.items()
             if "test" in key.lower() and isinstance(values, dict)
             and isinstance(values.get("BLEU-4"), (int, float))]
    if not tests:
        return ""
    key = next((k for k in tests if "rsicd" in k.lower()), tests[0])
    split = " ".join(_dataset_title(part) for part in key.split())
    return f"{split} BLEU-4 {metrics[key]['BLEU-4']:.2f}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _mapscribe_version() -> str:
    return __version__


def record_metrics(path: "str | os.PathLike", key: str, values: Dict[str, Any]) -> ModelHeader:
    """Store ``values`` under ``metrics[key]`` in the model file's header (atomically; the
    weights are copied byte for byte)."""
    return update_header(path, lambda header: header.metrics.__setitem__(key, dict(values)))


def record_calibration(path: "str | os.PathLike", calibration: Dict[str, Any]) -> ModelHeader:
    """Store a confidence calibration in the model file's header (atomically)."""
    return update_header(path, lambda header: setattr(header, "calibration", dict(calibration)))


def update_header(path: "str | os.PathLike", change: Callable[[ModelHeader], Any]
                  ) -> ModelHeader:
    """Apply ``change`` to the model file's header and rewrite the file atomically, the weights
    copied byte for byte."""
    path = Path(path)
    header, index = read_layout(path)
    change(header)
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
    header, _ = read_layout(Path(path))
    return header


def read_layout(path: Path):
    """Check the file's structure and parse its header; returns (ModelHeader, tensor index)."""
    try:
        info = path.stat()
        size = info.st_size
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            raise ModelFileError(f"{path}: not a regular file (a pipe or a device); give a "
                                 ".mscap file")
        with open(path, "rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{path}: only {size} bytes long; it is not a MapScribe "
                                     "model file, or it was cut short")
            (header_length,) = struct.unpack("<Q", prefix)
            if _MAX_HEADER < header_length <= size - 8 and stream.read(1) == b"{":
                raise ModelFileError(f"{path}: its JSON header is {header_length:,} bytes, more "
                                     f"than the {_MAX_HEADER:,} a MapScribe model's can be; the "
                                     "file is damaged or was made to exhaust memory, and is not "
                                     "opened")
            if header_length > min(_MAX_HEADER, size - 8):
                raise ModelFileError(_foreign_file_message(path, prefix, size))
            stream.seek(8)
            raw = stream.read(header_length)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    except OSError as error:  # a name too long, an unreadable disk …
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: the header is not valid JSON; the file is corrupted or "
                             "is not a MapScribe model") from None
    if not isinstance(index, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object; not a MapScribe model")
    metadata = index.get("__metadata__") or {}
    if not isinstance(metadata, dict) or "mapscribe" not in metadata:
        raise ModelFileError(f"{path}: a safetensors file, but not a MapScribe model (its "
                             "header has no 'mapscribe' description); train one with "
                             "`mapscribe train` or ImageCaptioner.save()")
    try:
        document = json.loads(metadata["mapscribe"])
    except (TypeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: the MapScribe description in the header is not valid "
                             "JSON; the file is corrupted") from None
    check_tensor_index(path, index, size, header_length)
    return parse_header(path, document), index


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


def parse_header(path: Path, document: Any) -> ModelHeader:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a MapScribe captioner (format "
                             f"{document.get('format') if isinstance(document, dict) else None!r})")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise ModelFileError(
            f"{path}: model file format version {version!r}, but this MapScribe reads version "
            f"{FORMAT_VERSION}" + ("; update MapScribe to open it" if newer else ""))
    check_header_sizes(path, document)
    try:
        config = CaptionerConfig.from_dict(document["architecture"])
        vocabulary = Vocabulary.from_dict(document["vocabulary"], source=str(path))
        header = ModelHeader(config, vocabulary, document.get("weights_dtype", "float32"),
                             document.get("ground_resolution_m"), document.get("training") or {},
                             document.get("metrics") or {}, document.get("created", ""),
                             document.get("mapscribe_version", ""),
                             dict(document.get("scene_themes") or {}),
                             dict(document.get("calibration") or {}))
        checksum = document.get(CHECKSUM_KEY, "")
        if not isinstance(checksum, str):
            raise ValueError(f"{CHECKSUM_KEY} is not text")
        header.weights_sha256 = checksum
        return header
    except (KeyError, TypeError, ValueError, VocabularyError) as error:
        raise ModelFileError(f"{path}: the model description is incomplete or wrong "
                             f"({error}); the file is damaged") from None
