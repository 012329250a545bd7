"""Where training keeps its files, as plain names (no torch): front doors show them."""

from __future__ import annotations

from pathlib import Path

# A run writing model.mscap keeps its resumable state in model.mscap.checkpoint.pt.
CHECKPOINT_SUFFIX = ".checkpoint.pt"


def checkpoint_path_for(model_path: "str | Path") -> Path:
    """Where training a model into ``model_path`` keeps its checkpoint by default."""
    return Path(str(model_path) + CHECKPOINT_SUFFIX)
