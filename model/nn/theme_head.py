"""The scene-theme head: what kind of place an image shows (one of data.themes.THEMES), with a
probability, predicted from the encoder's features beside the caption.

Small on purpose: the encoder's grid of features (B, P, C) is averaged over the grid (B, C) and
one linear layer gives the theme logits (B, T). It trains jointly with the decoder on the cached
features, from the datasets' scene classes; images without a class train the caption only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

# Images without a scene class carry this label: the theme loss ignores them.
NO_THEME = -1


class ThemeHead(nn.Module):
    def __init__(self, feature_size: int, themes: int, dropout: float = 0.3):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(feature_size, themes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, P, C) → theme logits (B, T)."""
        return self.linear(self.dropout(features.float().mean(dim=1)))


def theme_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the images that have a theme (label ≠ NO_THEME); 0 when none has."""
    if not bool((labels != NO_THEME).any()):
        return logits.sum() * 0.0
    return functional.cross_entropy(logits.float(), labels, ignore_index=NO_THEME)
