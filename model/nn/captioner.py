"""The captioning network: an image encoder and an attention decoder, with their settings.

:class:`Captioner` is what a model file holds. Its :class:`CaptionerConfig` is everything needed
to rebuild the same network (the model file's header stores it), and the vocabulary maps the
decoder's outputs to words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..data.datasets import ImageInput
from ..data.text import Vocabulary, detokenize
from .beam_search import BeamResult, DecodingParams, beam_search
from .config import CaptionerConfig
from .decoder import AttentionDecoder


@dataclass
class Caption:
    """One image's caption as people and layers see it."""

    text: str
    words: List[str]
    score: float                     # mean log-probability per token (≤ 0; nearer 0 = surer)
    finished: bool                   # reached <end> within the maximum length
    attention: Optional[torch.Tensor] = None  # (words, grid, grid) when asked for


class Captioner(nn.Module):
    """Encoder + attention decoder + vocabulary."""

    def __init__(self, encoder: nn.Module, decoder: AttentionDecoder, vocabulary: Vocabulary,
                 config: CaptionerConfig):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.vocabulary = vocabulary
        self.config = config
        self.header = None  # the ModelHeader when the captioner was loaded from a file

    @classmethod
    def build(cls, vocabulary: Vocabulary, config: CaptionerConfig, encoder_weights: str = "auto",
              weights_path: Optional[str] = None, allow_download: bool = False
              ) -> Tuple["Captioner", object]:
        """A new captioner; returns it and the encoder's weights information."""
        from .encoder import build_encoder

        encoder, info = build_encoder(config.backbone, grid_size=config.grid_size,
                                      weights=encoder_weights, weights_path=weights_path,
                                      allow_download=allow_download,
                                      input_size=config.input_size)
        config.backbone = encoder.backbone_name
        config.input_size = int(encoder.input_size)
        config.mean, config.std = tuple(encoder.mean), tuple(encoder.std)
        config.feature_size = int(encoder.out_channels)
        decoder = AttentionDecoder(len(vocabulary), config.feature_size, config.decoder)
        return cls(encoder, decoder, vocabulary, config), info

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def image_input(self) -> ImageInput:
        return self.config.image_input

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S), float in 0..1 or uint8 → features (B, P, C) in float32."""
        return self.encoder(images).float()

    @torch.no_grad()
    def caption_features(self, features: torch.Tensor, decoding: DecodingParams) -> List[Caption]:
        result = beam_search(self.decoder, features, decoding)
        return self.captions_from(result, decoding)

    @torch.no_grad()
    def caption_images(self, images: torch.Tensor, decoding: DecodingParams) -> List[Caption]:
        """Images (B, 3, S, S) (0..1 floats or uint8) on the model's device → one caption each."""
        return self.caption_features(self.encode(images), decoding)

    def captions_from(self, result: BeamResult, decoding: DecodingParams) -> List[Caption]:
        captions = []
        grid = self.config.grid_size
        for index, words in enumerate(result.words(self.vocabulary)):
            attention = None
            if result.attention is not None:
                attention = result.attention[index, :len(words)].reshape(len(words), grid, grid)
                attention = attention.cpu()
            captions.append(Caption(detokenize(words), words,
                                    float(result.mean_log_prob[index]),
                                    bool(result.finished[index]), attention))
        return captions


def batched(items: Sequence, size: int):
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
