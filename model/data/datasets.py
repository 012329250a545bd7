"""Torch datasets over validated caption records: image tensors and caption token ids.

Two views of the same records:

* :class:`CaptionPairs` — one item per (image, caption) pair, for training;
* :class:`CaptionImages` — one item per image, with all its reference captions, for evaluation.

Images are resized to a square ``input_size`` (UC Merced has a few 247×247 originals) and
scaled to 0..1; the encoder normalises them itself. Training augmentations are the eight
symmetries of the square (flips and 90° rotations): overhead imagery has no "up".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ParameterError
from .images import load_rgb_image
from .records import CaptionRecord
from .text import Vocabulary


@dataclass(frozen=True)
class ImageInput:
    """How an RGB image becomes the encoder's input: resized to a square ``input_size`` and
    scaled to 0..1. The encoder normalises with its own mean and standard deviation, so the
    normalisation travels with the network (and its model file), not with the data."""

    input_size: int = 224

    def to_tensor(self, image) -> torch.Tensor:
        """A PIL RGB image → float tensor (3, input_size, input_size) in 0..1."""
        from PIL import Image

        if image.size != (self.input_size, self.input_size):
            image = image.resize((self.input_size, self.input_size), Image.BILINEAR)
        return self.array_to_tensor(np.asarray(image, dtype=np.uint8))

    @staticmethod
    def array_to_tensor(pixels: np.ndarray) -> torch.Tensor:
        """uint8 pixels (H, W, 3) → float tensor (3, H, W) in 0..1."""
        return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0


def dihedral(images: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on (..., H, W): k % 4 quarter turns, mirrored if
    k ≥ 4. k = 0 is the identity."""
    if not 0 <= k < 8:
        raise ParameterError(f"dihedral index must be 0..7, not {k}")
    out = torch.rot90(images, k % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if k >= 4 else out


def encode_caption(vocabulary: Vocabulary, words: Sequence[str], max_words: int) -> List[int]:
    """<start> w1 … wn <end>, with captions longer than ``max_words`` cut."""
    return vocabulary.encode(list(words)[:max_words])


class CaptionPairs(Dataset):
    """(image tensor (3, S, S), caption ids (L,)) for every caption of every record; with
    ``with_record`` a third item, the record's index (training looks up its theme by it)."""

    def __init__(self, records: Sequence[CaptionRecord], vocabulary: Vocabulary,
                 image_input: ImageInput, max_words: int = 30,
                 augment: bool = False, seed: Optional[int] = None, with_record: bool = False):
        self.records = list(records)
        self.pairs = [(i, j) for i, record in enumerate(self.records)
                      for j in range(len(record.tokens))]
        self.vocabulary = vocabulary
        self.image_input = image_input
        self.max_words = max_words
        self.augment = augment
        self.with_record = with_record
        self._random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Tuple:
        record_index, caption_index = self.pairs[index]
        record = self.records[record_index]
        image = self.image_input.to_tensor(load_rgb_image(record.image_path))
        if self.augment:
            image = dihedral(image, self._random.randrange(8))
        ids = torch.tensor(encode_caption(self.vocabulary, record.tokens[caption_index],
                                          self.max_words), dtype=torch.long)
        return (image, ids, record_index) if self.with_record else (image, ids)


class CaptionImages(Dataset):
    """(image tensor (3, S, S), record index) for every record; references in ``references``."""

    def __init__(self, records: Sequence[CaptionRecord], image_input: ImageInput):
        self.records = list(records)
        self.image_input = image_input

    @property
    def references(self) -> List[List[str]]:
        """Each record's reference captions as text, in record order."""
        return [[" ".join(words) for words in record.tokens] for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        image = load_rgb_image(self.records[index].image_path)
        return self.image_input.to_tensor(image), index


def pad_captions(captions: Sequence[torch.Tensor], pad_id: int = Vocabulary.pad_id
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Caption id tensors → (ids (B, L_max) padded with ``pad_id``, lengths (B,))."""
    lengths = torch.tensor([len(c) for c in captions], dtype=torch.long)
    padded = torch.full((len(captions), int(lengths.max())), pad_id, dtype=torch.long)
    for row, caption in enumerate(captions):
        padded[row, :len(caption)] = caption
    return padded, lengths


def collate_pairs(batch: Sequence[Tuple]) -> Tuple[torch.Tensor, ...]:
    """→ images (B, 3, S, S), caption ids (B, L_max), caption lengths (B,), and with records
    their indices (B,)."""
    images = torch.stack([item[0] for item in batch])
    ids, lengths = pad_captions([item[1] for item in batch])
    if len(batch[0]) == 3:
        return images, ids, lengths, torch.tensor([item[2] for item in batch])
    return images, ids, lengths
