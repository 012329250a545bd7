"""The attention LSTM decoder of "Show, Attend and Tell" (Xu et al., 2015).

The encoder's feature grid is first projected to ``context_size`` channels (once per image:
far cheaper than feeding 1280-wide features to the LSTM at every word). At each step the
decoder looks at the projected grid through soft attention, gates the attended context with
its hidden state, and predicts the next word:

    f_p   = ReLU(W_c x_p)                      projected feature of grid cell p (B, P, D)
    e_p   = w · tanh(W_f f_p + W_h h)          attention energy of grid cell p
    α     = softmax(e)                         (B, P)
    z     = σ(W_β h) ⊙ Σ_p α_p f_p             gated context (B, D)
    h, c  = LSTM([embed(y_{t-1}); z], (h, c))
    p(y_t) = softmax(W_o dropout(h))

The parameters carry arcgis.learn's names (``embed_size``, ``hidden_size``, ``attention_size``,
``teacher_forcing``, ``dropout``, ``pretrained_emb``), plus MapScribe's ``context_size``.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..data.text import Vocabulary
from ..errors import ParameterError
from .config import DecoderParams

log = logging.getLogger(__name__)


class SoftAttention(nn.Module):
    """Additive attention over a feature grid."""

    def __init__(self, feature_size: int, hidden_size: int, attention_size: int):
        super().__init__()
        self.project_features = nn.Linear(feature_size, attention_size)
        self.project_hidden = nn.Linear(hidden_size, attention_size)
        self.energy = nn.Linear(attention_size, 1)

    def forward(self, keys: torch.Tensor, features: torch.Tensor,
                hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """keys (N, P, A) = project_features(features), features (N, P, D), hidden (N, H)
        → context (N, D), weights α (N, P)."""
        energy = self.energy(torch.tanh(keys + self.project_hidden(hidden).unsqueeze(1)))
        weights = torch.softmax(energy.squeeze(2), dim=1)                             # (N, P)
        context = torch.bmm(weights.unsqueeze(1), features).squeeze(1)                # (N, D)
        return context, weights


@dataclass
class ImageMemory:
    """What the decoder reads from each image at every word, computed once per image."""

    features: torch.Tensor   # (N, P, D) projected feature grid
    keys: torch.Tensor       # (N, P, A) the attention's projection of it

    def select(self, index: torch.Tensor) -> "ImageMemory":
        """Rows for other sequences: index (N',) of images (repeats allowed)."""
        return ImageMemory(self.features.index_select(0, index), self.keys.index_select(0, index))


@dataclass
class DecoderState:
    """What the decoder carries from one word to the next, for N sequences."""

    hidden: torch.Tensor   # (N, H)
    cell: torch.Tensor     # (N, H)

    def select(self, index: torch.Tensor) -> "DecoderState":
        """Keep/reorder sequences: index (N',) of rows."""
        return DecoderState(self.hidden.index_select(0, index), self.cell.index_select(0, index))


class AttentionDecoder(nn.Module):
    """Attention LSTM decoder; see the module docstring for the equations."""

    def __init__(self, vocabulary_size: int, feature_size: int, params: DecoderParams):
        super().__init__()
        self.params = params
        self.vocabulary_size = vocabulary_size
        self.feature_size = feature_size
        context = params.context_size or feature_size
        self.project_context = (nn.Sequential(nn.Linear(feature_size, context), nn.ReLU(),
                                              nn.Dropout(params.dropout))
                                if params.context_size else nn.Identity())
        self.embedding = nn.Embedding(vocabulary_size, params.embed_size,
                                      padding_idx=Vocabulary.pad_id)
        self.attention = SoftAttention(context, params.hidden_size, params.attention_size)
        self.init_hidden = nn.Linear(context, params.hidden_size)
        self.init_cell = nn.Linear(context, params.hidden_size)
        self.gate = nn.Linear(params.hidden_size, context)
        self.lstm = nn.LSTMCell(params.embed_size + context, params.hidden_size)
        self.dropout = nn.Dropout(params.dropout)
        self.output = nn.Linear(params.hidden_size, vocabulary_size)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[Vocabulary.pad_id].zero_()
        nn.init.uniform_(self.output.weight, -0.1, 0.1)
        nn.init.zeros_(self.output.bias)

    # -- pieces used by training and by decoding ------------------------------------------------
    def start(self, features: torch.Tensor) -> Tuple[ImageMemory, DecoderState]:
        """Encoder features (N, P, C) → each image's memory and the first state."""
        projected = self.project_context(features)                              # (N, P, D)
        mean = projected.mean(dim=1)
        state = DecoderState(torch.tanh(self.init_hidden(mean)), torch.tanh(self.init_cell(mean)))
        return ImageMemory(projected, self.attention.project_features(projected)), state

    def step(self, words: torch.Tensor, memory: ImageMemory, state: DecoderState
             ) -> Tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One word for N sequences: words (N,) previous word ids → logits (N, V), the new
        state, attention weights (N, P)."""
        context, weights = self.attention(memory.keys, memory.features, state.hidden)
        context = torch.sigmoid(self.gate(state.hidden)) * context
        hidden, cell = self.lstm(torch.cat([self.embedding(words), context], dim=1),
                                 (state.hidden, state.cell))
        logits = self.output(self.dropout(hidden))
        return logits, DecoderState(hidden, cell), weights

    def forward(self, features: torch.Tensor, captions: torch.Tensor,
                teacher_forcing: Optional[float] = None,
                image_index: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training pass. features (B, P, C); captions (R, L) starting with <start>, caption r
        describing image ``image_index[r]`` (default: caption r, image r) → logits (R, L-1, V)
        predicting captions[:, 1:] and attention weights (R, L-1, P).

        Several captions of one image share its memory, computed once. With teacher forcing
        below 1, each step feeds the reference word with that probability (one draw for the
        batch) and the model's own best guess otherwise (scheduled sampling)."""
        forcing = self.params.teacher_forcing if teacher_forcing is None else teacher_forcing
        memory, state = self.start(features)
        if image_index is not None:
            memory, state = memory.select(image_index), state.select(image_index)
        steps = captions.size(1) - 1
        all_logits, all_weights = [], []
        words = captions[:, 0]
        for t in range(steps):
            logits, state, weights = self.step(words, memory, state)
            all_logits.append(logits)
            all_weights.append(weights)
            if t + 1 < steps:
                use_reference = forcing >= 1.0 or random.random() < forcing
                words = captions[:, t + 1] if use_reference else logits.argmax(dim=1).detach()
        return torch.stack(all_logits, dim=1), torch.stack(all_weights, dim=1)

    # -- word vectors ---------------------------------------------------------------------------
    def load_word_vectors(self, path: "str | Path", vocabulary: Vocabulary) -> float:
        """Initialise embeddings from a fastText ``.vec`` or GloVe text file; returns the
        fraction of vocabulary words covered (special tokens not counted)."""
        vectors = read_word_vectors(Path(path), set(vocabulary.itos), self.params.embed_size)
        with torch.no_grad():
            for word, vector in vectors.items():
                self.embedding.weight[vocabulary.stoi[word]] = vector
        words = len(vocabulary) - len(Vocabulary.SPECIALS)
        coverage = len(vectors) / max(1, words)
        log.info("word vectors %s cover %d of %d vocabulary words (%.0f%%)", path, len(vectors),
                 words, 100 * coverage)
        return coverage


def read_word_vectors(path: Path, wanted: set, size: int) -> Dict[str, torch.Tensor]:
    """Vectors of the ``wanted`` words from a text file of ``word v1 … vD`` lines (GloVe), with
    an optional ``count dim`` first line (fastText ``.vec``)."""
    if not path.is_file():
        raise ParameterError(f"pretrained_emb: {path} is not a file; give a fastText .vec or GloVe "
                             ".txt word-vector file")
    found: Dict[str, torch.Tensor] = {}
    with open(path, encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # the fastText header: count, dimension
            if len(parts) < 2:
                continue
            if len(parts) - 1 != size:
                raise ParameterError(f"pretrained_emb: {path} line {number} has {len(parts) - 1} "
                                     f"numbers, but embed_size is {size}; set decoder_params "
                                     f"embed_size={len(parts) - 1}")
            word = parts[0].lower()
            if word in wanted and word not in found:
                try:
                    found[word] = torch.tensor([float(x) for x in parts[1:]])
                except ValueError:
                    raise ParameterError(f"pretrained_emb: {path} line {number}: not a list of "
                                         "numbers after the word") from None
    return found


def word_vector_size(path: "str | Path") -> int:
    """The dimension of a word-vector file, read from its first lines."""
    if not Path(path).is_file():
        raise ParameterError(f"pretrained_emb: {path} is not a file; give a fastText .vec or GloVe "
                             ".txt word-vector file")
    with open(path, encoding="utf-8", errors="replace") as stream:
        first = stream.readline().split()
        if len(first) == 2 and all(p.isdigit() for p in first):
            return int(first[1])
        return len(first) - 1


def attention_regulariser(weights: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The "doubly stochastic" penalty Σ_p (1 − Σ_t α_tp)², averaged over the batch: it pushes
    the decoder to look at every part of the image over a caption.

    weights (B, T, P) with padded steps; lengths (B,) real steps per caption."""
    steps = torch.arange(weights.size(1), device=weights.device)
    mask = (steps.unsqueeze(0) < lengths.unsqueeze(1)).to(weights.dtype)        # (B, T)
    attention_sum = (weights * mask.unsqueeze(2)).sum(dim=1)                    # (B, P)
    return ((1.0 - attention_sum) ** 2).sum(dim=1).mean()


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
                 ) -> torch.Tensor:
    """Mean cross-entropy per real word. logits (B, T, V), targets (B, T) padded with <pad>."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=Vocabulary.pad_id, label_smoothing=label_smoothing)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
