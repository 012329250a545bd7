"""The figure of ``ImageCaptioner.show_results``: each image with its predicted and reference
captions, and where the decoder looked for each word."""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np

from ..data.images import load_rgb_image
from ..data.records import CaptionRecord
from ..nn.captioner import Caption

MAX_WORD_MAPS = 8


def results_figure(records: Sequence[CaptionRecord], captions: Sequence[Caption],
                   with_attention: bool = True, image_size: int = 224):
    """A matplotlib ``Figure`` (not shown; call ``savefig`` or display it in a notebook)."""
    images = [load_rgb_image(record.image_path) for record in records]
    references = [record.captions[0] for record in records]
    titles = [record.filename for record in records]
    return _figure(images, captions, titles, references, with_attention, image_size)


def attention_figure(image, caption: Caption, title: str = "", image_size: int = 224):
    """One image, its caption and the attention map of each word."""
    return _figure([image], [caption], [title], [None], True, image_size)


def _figure(images, captions, titles, references, with_attention: bool, image_size: int):
    from matplotlib.figure import Figure

    word_columns = 0
    if with_attention:
        word_columns = min(MAX_WORD_MAPS, max((len(c.words) for c in captions
                                               if c.attention is not None), default=0))
    columns = 2 + word_columns
    rows = len(images)
    figure = Figure(figsize=(2.4 * columns, 2.9 * rows))
    for row, (image, caption) in enumerate(zip(images, captions)):
        pixels = np.asarray(image.resize((image_size, image_size)))
        axes = figure.add_subplot(rows, columns, row * columns + 1)
        axes.imshow(pixels)
        axes.set_axis_off()
        axes.set_title(titles[row], fontsize=8)
        text_axes = figure.add_subplot(rows, columns, row * columns + 2)
        text_axes.set_axis_off()
        lines = ["Predicted:", *textwrap.wrap(caption.text or "(nothing)", 28),
                 f"score {caption.score:.2f}"]
        if references[row]:
            lines += ["", "Reference:", *textwrap.wrap(references[row], 28)]
        text_axes.text(0, 1, "\n".join(lines), va="top", fontsize=7, family="sans-serif")
        if caption.attention is None or not with_attention:
            continue
        for column, word in enumerate(caption.words[:word_columns]):
            axes = figure.add_subplot(rows, columns, row * columns + 3 + column)
            axes.imshow(pixels)
            axes.imshow(caption.attention[column].numpy(), cmap="inferno", alpha=0.55,
                        interpolation="bilinear", extent=(0, image_size, image_size, 0))
            axes.set_title(word, fontsize=8)
            axes.set_axis_off()
    figure.tight_layout()
    return figure
