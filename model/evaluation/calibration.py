"""An honest confidence per tile: how likely the model's theme is right, calibrated on val.

Two signals predict whether a caption can be trusted: the theme head's probability for its
theme, and the caption's mean log-probability per word (the score). A logistic model fitted on
the labelled validation images turns the two into a confidence in [0, 1] that means what it
says (of the tiles with confidence about 0.8, about 80% have the right theme: the reliability
table checks it). Below a threshold, chosen on val so that the tiles at or above it have a
theme accuracy of at least 90%, a tile is marked ``uncertain``.

numpy only: the captioning job applies it with either runtime.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Sequence

import numpy as np

from ..errors import ParameterError

TARGET_ACCURACY = 0.90
RELIABILITY_BINS = 10
_STEPS, _RATE, _L2 = 4000, 0.5, 1e-3   # gradient descent of the logistic fit


@dataclass
class Calibration:
    """confidence = σ(w_p · theme probability + w_s · caption score + b)."""

    weights: List[float]                 # [w_p, w_s, b]
    threshold: float                     # confidence below this: "uncertain"
    target_accuracy: float               # what the threshold was chosen for
    images: int                          # labelled val images it was fitted on
    confident_share: float               # of those, the share at or above the threshold
    confident_accuracy: float            # theme accuracy of that share
    reliability: List[Dict[str, float]] = field(default_factory=list)

    def confidence(self, theme_probability: float, score: float) -> float:
        w_p, w_s, bias = self.weights
        if not (math.isfinite(theme_probability) and math.isfinite(score)):
            return 0.0
        z = w_p * theme_probability + w_s * score + bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def is_uncertain(self, confidence: float) -> bool:
        return confidence < self.threshold

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Calibration":
        try:
            weights = [float(w) for w in values["weights"]]
            if len(weights) != 3 or not all(math.isfinite(w) for w in weights):
                raise ValueError("weights")
            return cls(weights, float(values["threshold"]), float(values["target_accuracy"]),
                       int(values["images"]), float(values["confident_share"]),
                       float(values["confident_accuracy"]),
                       [dict(row) for row in values.get("reliability", [])])
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"the model's confidence calibration is damaged ({error}); "
                                 "calibrate it again") from None


def calibrate(theme_probability: Sequence[float], score: Sequence[float],
              correct: Sequence[bool], target_accuracy: float = TARGET_ACCURACY) -> Calibration:
    """Fit the confidence on labelled images: their theme probabilities, caption scores and
    whether their theme was right."""
    p = np.asarray(theme_probability, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if not (p.shape == s.shape == y.shape) or p.size < 10:
        raise ParameterError(f"calibration needs at least 10 labelled images with a theme "
                             f"probability, a score and a verdict each; got {p.size}")
    s = np.where(np.isfinite(s), s, np.min(s[np.isfinite(s)]) if np.isfinite(s).any() else -10.0)
    weights = _logistic_fit(np.stack([p, s], axis=1), y)
    calibration = Calibration(list(map(float, weights)), 0.0, target_accuracy, int(p.size),
                              1.0, float(y.mean()))
    confidence = np.array([calibration.confidence(a, b) for a, b in zip(p, s)])
    calibration.threshold = _threshold(confidence, y, target_accuracy)
    confident = confidence >= calibration.threshold
    calibration.confident_share = float(confident.mean())
    calibration.confident_accuracy = float(y[confident].mean()) if confident.any() else 0.0
    calibration.reliability = reliability_table(confidence, y)
    return calibration


def _logistic_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[w..., b] of a logistic regression (standardised features, L2, plain gradient descent:
    two features and a few hundred images need nothing more)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(_STEPS):
        predicted = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        error = predicted - y
        w -= _RATE * (z.T @ error / len(y) + _L2 * w)
        b -= _RATE * error.mean()
    # Back to the raw features' units.
    raw_w = w / scale
    return np.append(raw_w, b - float(np.sum(w * mean / scale)))


def _threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest confidence such that the images at or above it reach ``target`` accuracy
    (1.0, everything uncertain, when no such cut exists)."""
    order = np.argsort(-confidence)
    cumulative = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    reaching = np.nonzero(cumulative >= target)[0]
    if reaching.size == 0:
        return 1.0
    last = int(reaching.max())
    return float(confidence[order][last])


def reliability_table(confidence: np.ndarray, correct: np.ndarray,
                      bins: int = RELIABILITY_BINS) -> List[Dict[str, float]]:
    """Per confidence bin: its range, how many images, their mean confidence and accuracy."""
    rows = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence >= low) & ((confidence < high) | (high == 1.0))
        if not inside.any():
            continue
        rows.append({"from": round(float(low), 2), "to": round(float(high), 2),
                     "images": int(inside.sum()),
                     "mean_confidence": round(float(confidence[inside].mean()), 4),
                     "accuracy": round(float(correct[inside].mean()), 4)})
    return rows
