"""The training chart: tick values for any range, and drawing any epoch values without an
exception (one escaping paintEvent aborts QGIS: PyQt calls qFatal)."""

from __future__ import annotations

import logging
import math
import random

import pytest
from pytest_qgis.utils import process_events

from mapscribe.plugin.training.live_chart import EpochPoint, LiveChart, nice_ticks


def _check_ticks(low: float, high: float) -> list:
    ticks = nice_ticks(low, high)
    assert len(ticks) >= 2, (low, high, ticks)
    assert all(b > a for a, b in zip(ticks, ticks[1:])), (low, high, ticks)
    assert ticks[0] <= low and ticks[-1] >= high, (low, high, ticks)
    return ticks


def test_round_ticks_cover_a_range():
    assert nice_ticks(0.0, 3.4) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert nice_ticks(2.13, 2.61) == [2.0, 2.2, 2.4, 2.6, 2.8]
    assert nice_ticks(0.0, 1e-6) == [0.0, 5e-07, 1e-06]


def test_tiny_and_flat_ranges_still_give_distinct_ticks():
    # One epoch of a barely trained model: BLEU-4 1e-12 beside CIDEr-D 0 (the ranges that
    # once rounded every tick to 0 and divided by zero in paintEvent).
    assert _check_ticks(0.0, 1.08e-12) == [0.0, 0.5, 1.0]
    assert _check_ticks(4.0, 4.0) == [4.0, 4.5, 5.0]
    _check_ticks(1e6, 1e6 + 1e-4)
    _check_ticks(-3e-15, 0.0)


def test_ticks_for_random_ranges():
    rng = random.Random(7)
    for _ in range(2000):
        low = rng.uniform(-1, 1) * 10 ** rng.randint(-14, 6)
        high = low + abs(rng.gauss(0, 1)) * 10 ** rng.randint(-14, 6)
        ticks = _check_ticks(low, high)
        assert len(ticks) <= 12, (low, high, ticks)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_no_ticks_for_non_finite_ends(bad):
    assert nice_ticks(bad, 1.0) == [] and nice_ticks(0.0, bad) == []


@pytest.mark.parametrize("points", [
    [EpochPoint(1, 4.21, 4.37, 1e-12, 0.0)],
    [EpochPoint(1, 4.2, 4.2, 0.0, 0.0), EpochPoint(2, 4.2, 4.2, 0.0, 0.0)],
    [EpochPoint(1, math.nan, math.inf, None, None), EpochPoint(2, 3.9, math.nan, 0.01, 0.2)],
    [EpochPoint(3, None, None, None, None)],
    [],
], ids=["tiny-metrics", "flat", "non-finite", "not-measured", "empty"])
def test_chart_draws_any_epoch_values(qgis_new_project, caplog, points):
    chart = LiveChart()
    chart.resize(560, 360)
    chart.set_epochs(points)
    with caplog.at_level(logging.DEBUG, logger="mapscribe"):
        image = chart.canvas.grab().toImage()  # runs paintEvent
        process_events()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert image.width() == chart.canvas.width() and not image.isNull()
    assert chart.table.rowCount() == len(points)
    if points and points[-1].epoch == 2 and math.isnan(points[0].train_loss or 0.0):
        assert chart.table.item(0, 1).text() == "nan"
