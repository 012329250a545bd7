"""The captioning network: an image encoder and an attention decoder, with their settings.

:class:`Captioner` is what a model file holds. Its :class:`CaptionerConfig` is everything needed
to rebuild the same network (the model file's header stores it), and the vocabulary maps the
decoder's outputs to words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..data.datasets import ImageInput
from ..data.text import Vocabulary, detokenize
from .beam_search import BeamResult, beam_search
from .config import CaptionerConfig, DecoderParams, DecodingParams
from .decoder import AttentionDecoder, word_vector_size
from .encoder import ImageEncoder, build_encoder
from .theme_head import ThemeHead
from .weights import EncoderWeightsInfo

log = logging.getLogger(__name__)


@dataclass
class Caption:
    """One image's caption as people and layers see it."""

    text: str
    words: List[str]
    score: float                     # mean log-probability per token (≤ 0; nearer 0 = surer)
    finished: bool                   # reached <end> within the maximum length
    attention: Optional[torch.Tensor] = None  # (words, grid, grid) when asked for
    theme: Optional[str] = None      # the scene theme, when the model has a theme head
    theme_probability: Optional[float] = None


class Captioner(nn.Module):
    """Encoder + attention decoder + vocabulary."""

    def __init__(self, encoder: ImageEncoder, decoder: AttentionDecoder, vocabulary: Vocabulary,
                 config: CaptionerConfig, theme_head: Optional[ThemeHead] = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.theme_head = theme_head
        self.vocabulary = vocabulary
        self.config = config
        self.header = None  # the ModelHeader when the captioner was loaded from a file

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
        captions = self.captions_from(result, decoding)
        if self.theme_head is not None:
            probabilities = torch.softmax(self.theme_head(features), dim=1)   # (B, T)
            best, index = probabilities.max(dim=1)
            for caption, p, i in zip(captions, best.tolist(), index.tolist()):
                caption.theme, caption.theme_probability = self.config.themes[i], float(p)
        return captions

    def heads(self) -> nn.ModuleList:
        """What trains on the encoder's features: the decoder, and the theme head when there
        is one (with a frozen encoder, all that learns)."""
        modules: List[nn.Module] = [self.decoder]
        if self.theme_head is not None:
            modules.append(self.theme_head)
        return nn.ModuleList(modules)

    def theme_probabilities(self, features: torch.Tensor) -> Optional[torch.Tensor]:
        """features (B, P, C) → theme probabilities (B, T), or None without a theme head."""
        if self.theme_head is None:
            return None
        return torch.softmax(self.theme_head(features), dim=1)

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


def build_captioner(vocabulary: Vocabulary, config: CaptionerConfig, *,
                    encoder_weights: str = "none", weights_path: Optional[str] = None,
                    allow_download: bool = False) -> Tuple[Captioner, EncoderWeightsInfo]:
    """The one way a :class:`Captioner` is made: a new one to train (``encoder_weights``
    "auto", "torchvision", "pypi", "file" …), or the skeleton that a model file or checkpoint
    fills (``"none"``: no weights are read, every shape comes from ``config``).

    For a new network, ``config`` is completed from the encoder (backbone chosen by "auto",
    feature size, normalisation); the input size asked for in ``config`` is kept.
    """
    encoder, info = build_encoder(config.backbone, grid_size=config.grid_size,
                                  weights=encoder_weights, weights_path=weights_path,
                                  allow_download=allow_download, input_size=config.input_size)
    if encoder_weights != "none":
        config.backbone = encoder.backbone_name
        config.mean = (float(encoder.mean[0]), float(encoder.mean[1]), float(encoder.mean[2]))
        config.std = (float(encoder.std[0]), float(encoder.std[1]), float(encoder.std[2]))
        config.feature_size = int(encoder.out_channels)
    decoder = AttentionDecoder(len(vocabulary), config.feature_size, config.decoder)
    theme_head = ThemeHead(config.feature_size, len(config.themes)) if config.themes else None
    return Captioner(encoder, decoder, vocabulary, config, theme_head), info


@dataclass
class NewCaptioner:
    """A captioner made to be trained, with what building it found out."""

    captioner: Captioner
    encoder_weights: EncoderWeightsInfo
    word_vector_coverage: Optional[float] = None   # share of the vocabulary with vectors


def new_captioner(vocabulary: Vocabulary, *, backbone: str = "auto", chip_size: int = 224,
                  grid_size: int = 7, decoder_params: Optional[Dict[str, Any]] = None,
                  max_words: int = 30, encoder_weights: str = "auto",
                  weights_path: Optional[str] = None,
                  themes: Tuple[str, ...] = ()) -> NewCaptioner:
    """A new captioner for ``vocabulary`` with arcgis.learn's decoder parameters.

    With ``pretrained_emb`` (a word-vector file) the embedding size follows the vectors' size
    and the vectors are loaded into the embedding.
    """
    params = DecoderParams.from_dict(decoder_params)
    if params.pretrained_emb:
        size = word_vector_size(params.pretrained_emb)
        if size != params.embed_size:
            log.info("embed_size set to %d to match the word vectors in %s", size,
                     params.pretrained_emb)
            params.embed_size = size
    config = CaptionerConfig(backbone=backbone, grid_size=grid_size, input_size=chip_size,
                             max_words=max_words, decoder=params, themes=tuple(themes))
    captioner, info = build_captioner(vocabulary, config, encoder_weights=encoder_weights,
                                      weights_path=weights_path)
    coverage = None
    if params.pretrained_emb:
        coverage = captioner.decoder.load_word_vectors(params.pretrained_emb, vocabulary)
    return NewCaptioner(captioner, info, coverage)


def batched(items: Sequence, size: int):
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
