"""Checkpoints: everything needed to continue a run exactly (weights, optimiser, schedule,
epoch, random state, history), written atomically; reading one never unpickles code
(``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List

import torch

from ..atomic import write_bytes_atomic
from ..errors import MapScribeError
from ..modelfile.header import ModelHeader, parse_header
from ..nn.captioner import Captioner, build_captioner
from ..progress import EpochEnded
from .config import FitConfig

CHECKPOINT_FORMAT = "mapscribe-checkpoint"


class CheckpointError(MapScribeError, ValueError):
    """A file that is not a MapScribe training checkpoint MapScribe can open safely."""


# -- checkpoints --------------------------------------------------------------------------------
def _rng_state() -> Dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, captioner: Captioner, optimizer, scheduler, epoch: int,
                    history: List[EpochEnded], best: Dict, config: FitConfig,
                    loop_rng: Dict) -> None:
    header = ModelHeader(captioner.config, captioner.vocabulary).to_dict()
    payload = {"format": CHECKPOINT_FORMAT, "version": 1, "epoch": epoch,
               "model": captioner.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "history": [asdict(h) for h in history],
               "best": best, "rng": _rng_state(), "loop_rng": loop_rng,
               "fit_config": json.dumps(asdict(config)), "header": json.dumps(header)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: "str | Path") -> Dict:
    """Read a checkpoint safely (``weights_only``: no arbitrary unpickling)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:  # noqa: BLE001 - torch.load raises many types for a non-checkpoint
        raise CheckpointError(f"{path}: not a MapScribe checkpoint MapScribe can open safely "
                              f"({str(error).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a MapScribe training checkpoint")
    return payload


def captioner_from_checkpoint(payload: Dict) -> Captioner:
    """Rebuild the network a checkpoint was saved from (weights not loaded yet)."""
    header = parse_header(Path("checkpoint"), json.loads(payload["header"]))
    return build_captioner(header.vocabulary, header.config)[0]
