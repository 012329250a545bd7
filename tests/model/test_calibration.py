"""The tiles' confidence: fitted on labelled val images, it must mean what it says."""

from __future__ import annotations

import numpy as np
import pytest

from mapscribe.model.errors import ParameterError
from mapscribe.model.evaluation.calibration import Calibration, calibrate


def _synthetic(n=2000, seed=0):
    """Images whose theme is right with probability = their theme probability (a calibrated
    head), and a caption score that also says something."""
    rng = np.random.default_rng(seed)
    probability = rng.uniform(0.05, 1.0, n)
    correct = rng.uniform(size=n) < probability
    score = np.where(correct, rng.normal(-0.3, 0.2, n), rng.normal(-0.8, 0.3, n))
    return probability, score, correct


def test_confidence_is_calibrated_and_the_threshold_reaches_the_target():
    probability, score, correct = _synthetic()
    calibration = calibrate(probability, score, correct)
    assert calibration.confident_accuracy >= 0.90
    assert 0.0 < calibration.confident_share < 1.0
    # Reliability: in every well-filled bin, accuracy is close to the mean confidence.
    for row in calibration.reliability:
        if row["images"] >= 100:
            assert abs(row["accuracy"] - row["mean_confidence"]) < 0.08, row
    # The two signals both count, in the right direction.
    w_probability, w_score, _ = calibration.weights
    assert w_probability > 0 and w_score > 0


def test_a_tile_below_the_threshold_is_uncertain_and_the_header_round_trips():
    calibration = calibrate(*_synthetic())
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    sure = again.confidence(0.99, -0.1)
    unsure = again.confidence(0.1, -1.5)
    assert not again.is_uncertain(sure) and again.is_uncertain(unsure)
    assert again.confidence(0.5, float("-inf")) == 0.0  # a damaged score is never trusted


def test_too_few_or_damaged_calibrations_are_refused():
    with pytest.raises(ParameterError, match="at least 10"):
        calibrate([0.5] * 3, [-1.0] * 3, [True] * 3)
    with pytest.raises(ParameterError, match="damaged"):
        Calibration.from_dict({"weights": [1.0, float("nan"), 0.0]})
