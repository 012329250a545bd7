"""Fixtures shared by every test: where the real data is, and where artifacts go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


def _shared_data() -> Path:
    configured = os.environ.get("MAPSCRIBE_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()


def require_shared(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test saying what is missing and why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read real RSICD/UCM data from ../shared/data "
                    "(set MAPSCRIBE_SHARED_DATA to its location)")
    return path


@pytest.fixture
def ucm_folder() -> Path:
    """The complete UCM-captions dataset (RSICD layout)."""
    return require_shared("ucm-captions")


@pytest.fixture
def rsicd_folder() -> Path:
    """The RSICD subset (complete test split, a sample of train and val)."""
    return require_shared("rsicd-subset")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and logs for people to look at (never committed)."""
    path = Path(os.environ.get("MAPSCRIBE_ARTIFACTS", REPO / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small real captioner: the pretrained EfficientNet-Lite0 encoder and a small decoder
    trained for a few seconds on the 8-image UCM sample (it mostly repeats those captions).
    For tests of everything around the network: files, pipelines, front doors."""
    from mapscribe.model.api import ImageCaptioner, prepare_data

    import torch

    torch.manual_seed(0)
    data = prepare_data(TEST_DATA / "ucm-sample", min_word_count=1, batch_size=2)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0", device="cpu",
                               ground_resolution_m=0.3,
                               decoder_params=dict(embed_size=32, hidden_size=64,
                                                   attention_size=32, context_size=64,
                                                   dropout=0.0))
    # keep_best=False: the sample's one validation image says little about which epoch is best.
    captioner.fit(epochs=30, lr=5e-3, early_stopping=False, keep_best=False, feature_variants=1,
                  attention_regularisation=0.1)
    return captioner.save(tmp_path_factory.mktemp("models") / "tiny.mscap")
