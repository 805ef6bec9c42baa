"""benchmarks/validation.py: pooled F1, its bootstrap interval and the ship rule on hand-computed cases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("validation", Path(__file__).parents[1] / "benchmarks" / "validation.py")
validation = sys.modules["validation"] = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(validation)


def test_pooled_f1_and_an_interval_that_collapses_on_identical_units() -> None:
    assert validation.f1(np.array([2, 1, 1, 9])) == pytest.approx(4 / 6)
    assert validation.f1(np.array([0, 3, 5, 9])) == 0.0
    units = np.array([[2, 1, 1, 9]] * 4)
    assert validation.interval(units, np.random.default_rng(0)) == pytest.approx((4 / 6, 4 / 6))
    low, high = validation.interval(np.array([[1, 0, 0, 1], [0, 1, 1, 2]]), np.random.default_rng(0))
    assert low == 0.0 and high == 1.0  # some resamples hold only the perfect unit, some only the wrong one


def result(macro: float, f1: float, low: float, flagged: float) -> dict:
    return {"macro": macro, "rows": {"A": {"f1": f1, "low": low, "high": f1 + 0.1}, "no-change": {"flagged": flagged}}}


def test_ship_rule_needs_three_points_no_dataset_below_its_interval_and_no_more_false_alarms() -> None:
    baseline = result(0.50, 0.60, 0.55, 0.10)
    assert validation.ship_rule(baseline, result(0.53, 0.56, 0.5, 0.10)) == []
    assert validation.ship_rule(baseline, result(0.52, 0.60, 0.5, 0.10)) == ["macro F1 0.520 is not >= 0.500 + 0.03"]
    assert validation.ship_rule(baseline, result(0.60, 0.54, 0.5, 0.11)) == [
        "A: F1 0.540 below its interval [0.550, 0.700]", "no-change: 11.000% flagged, more than 10.000%"]
