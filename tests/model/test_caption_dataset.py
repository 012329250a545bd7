"""Torch datasets: image tensors, caption ids, references, augmentation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from locations import TEST_DATA
from mapscribe.model.data.datasets import (
    CaptionImages,
    CaptionPairs,
    ImageInput,
    collate_pairs,
    dihedral,
)
from mapscribe.model.data.folder import read_caption_folder
from mapscribe.model.data.images import load_rgb_image
from mapscribe.model.data.text import Vocabulary


def sample_records():
    return read_caption_folder(TEST_DATA / "ucm-sample").records


def test_pairs_give_normalised_images_and_caption_ids():
    records = sample_records()
    vocabulary = Vocabulary.build((t for r in records for t in r.tokens))
    pairs = CaptionPairs(records, vocabulary, ImageInput(input_size=64), max_words=5)
    assert len(pairs) == 40
    image, ids = pairs[5]  # the airplane image's first caption
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert ids[0] == vocabulary.start_id and ids[-1] == vocabulary.end_id
    assert vocabulary.decode(ids) == ["two", "airplanes", "are", "surrounded", "with"]
    assert 0.0 <= image.min() and image.max() <= 1.0  # the encoder normalises, not the data
    resized = load_rgb_image(records[1].image_path).resize((64, 64), Image.BILINEAR)
    expected = torch.from_numpy(np.array(resized)).permute(2, 0, 1) / 255.0
    assert torch.allclose(image, expected, atol=1e-5)


def test_collate_pads_and_the_loader_batches():
    records = sample_records()
    vocabulary = Vocabulary.build((t for r in records for t in r.tokens))
    pairs = CaptionPairs(records, vocabulary, ImageInput(input_size=32), augment=True,
                         seed=0)
    images, ids, lengths = next(iter(DataLoader(pairs, batch_size=7, collate_fn=collate_pairs)))
    assert images.shape == (7, 3, 32, 32)
    assert ids.shape == (7, int(lengths.max()))
    for row, length in enumerate(lengths):
        assert (ids[row, length:] == vocabulary.pad_id).all()
        assert ids[row, length - 1] == vocabulary.end_id


def test_images_view_has_every_reference():
    records = sample_records()
    images = CaptionImages(records, ImageInput(input_size=48))
    assert len(images) == 8
    tensor, index = images[3]
    assert tensor.shape == (3, 48, 48) and index == 3
    assert len(images.references[3]) == 5
    assert images.references[0][0] == "there is a piece of farmland"


def test_dihedral_gives_the_eight_symmetries():
    square = torch.arange(9.0).view(1, 3, 3)
    variants = {tuple(dihedral(square, k).flatten().tolist()) for k in range(8)}
    assert len(variants) == 8
    assert torch.equal(dihedral(square, 0), square)
    assert torch.equal(dihedral(dihedral(square, 1), 3), square)
