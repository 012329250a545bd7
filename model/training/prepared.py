"""A dataset folder ready for training: its records per split and the vocabulary of its train
split (arcgis.learn's ``prepare_data``). No torch: the training job and the Python API share it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Union

from ..data.folder import CaptionFolder, read_caption_folder
from ..data.records import CaptionRecord, DatasetError
from ..data.text import Vocabulary
from ..errors import ParameterError
from ..nn.config import CaptionerConfig
from .config import FitConfig

# Words seen fewer times than this in train become <unk>; images put in val when the
# annotations give no split.
DEFAULT_MIN_WORD_COUNT = 5
DEFAULT_VAL_SPLIT_PCT = 0.1


@dataclass
class CaptionData:
    """A dataset folder ready for training: records per split and the vocabulary."""

    folder: CaptionFolder
    vocabulary: Vocabulary
    batch_size: int
    chip_size: int
    min_word_count: int

    @property
    def train(self) -> List[CaptionRecord]:
        return self.folder.split("train")

    @property
    def valid(self) -> List[CaptionRecord]:
        return self.folder.split("val")

    @property
    def test(self) -> List[CaptionRecord]:
        return self.folder.split("test")

    def split(self, name: str) -> List[CaptionRecord]:
        aliases = {"valid": "val", "validation": "val"}
        return self.folder.split(aliases.get(name, name))

    def summary(self) -> Dict[str, Any]:
        return {"dataset": self.folder.name, "format": self.folder.format,
                "images": len(self.train), "captions": sum(len(r.captions) for r in self.train),
                "val_images": len(self.valid), "vocabulary": len(self.vocabulary),
                "min_word_count": self.min_word_count}


def prepare_data(path: Union[str, os.PathLike], dataset_type: str = "ImageCaptioning",
                 batch_size: int = FitConfig.batch_size,
                 chip_size: int = CaptionerConfig.input_size,
                 val_split_pct: float = DEFAULT_VAL_SPLIT_PCT,
                 min_word_count: int = DEFAULT_MIN_WORD_COUNT, strict: bool = False,
                 check_images: str = "full") -> CaptionData:
    """Read an RSICD- or COCO-format folder (``images/`` + ``annotations.json``).

    The vocabulary holds the words seen at least ``min_word_count`` times in the train split.
    ``chip_size`` is the encoder's input size; the images are resized to it.
    """
    if dataset_type != "ImageCaptioning":
        raise ParameterError(f"dataset_type {dataset_type!r} is not supported; MapScribe prepares "
                             "'ImageCaptioning' data")
    if not isinstance(chip_size, int) or chip_size < 32:
        raise ParameterError(f"chip_size must be a whole number of pixels ≥ 32, not {chip_size!r}")
    folder = read_caption_folder(path, strict=strict, val_split_pct=val_split_pct,
                                 check_images=check_images)
    train = folder.split("train")
    if not train:
        raise DatasetError(f"{path}: the train split is empty; mark images as 'train' or leave "
                           "out the splits so val_split_pct makes one")
    vocabulary = Vocabulary.build((t for r in train for t in r.tokens), min_count=min_word_count)
    return CaptionData(folder, vocabulary, batch_size, chip_size, min_word_count)
