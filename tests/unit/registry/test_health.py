"""Drift and online-quality statistics against hand-computed values, and the online promotion rule."""

import math

import numpy as np
import pytest

from registry import health
from registry.health import Estimate, ShadowSummary, promotion_rule
from registry.monitoring import latest_per_label


def test_psi_matches_the_hand_computed_sum():
    expected, actual = [0.5, 0.5], [0.25, 0.75]
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert health.psi(expected, actual) == pytest.approx(by_hand)
    assert health.psi(expected, expected) == 0.0


def test_psi_of_an_empty_bin_is_finite():
    assert math.isfinite(health.psi([1.0, 0.0], [0.0, 1.0]))


def test_js_distance_is_zero_for_equal_and_one_for_disjoint():
    assert health.js_distance([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0.0)
    assert health.js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # by hand: m = (0.5, 0.5); KL(p||m) = 1 bit for p=(1,0); JS divergence = 0.5 -> distance sqrt(0.5)
    assert health.js_distance([1.0, 0.0], [0.5, 0.5]) ** 2 == pytest.approx(
        0.5 * (1 * math.log2(1 / 0.75)) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    )


def test_shares_bin_by_the_training_edges_and_count_missing_apart():
    edges = [1.0, 2.0]
    got = health.shares(np.array([0.5, 1.0, 1.5, 2.5, np.nan]), edges)
    # bins (-inf,1), [1,2), [2,inf), missing
    assert got.tolist() == [0.2, 0.4, 0.2, 0.2]


def test_reference_then_drift_is_stable_on_the_same_data_and_drifted_on_shifted_data():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 5000)
    ref = health.reference({"x": train}, rng.normal(4, 1, 5000), "rating")
    same = health.feature_drift(ref, {"x": list(rng.normal(0, 1, 2000))}, min_rows=100)[0]
    shifted = health.feature_drift(ref, {"x": list(rng.normal(1.5, 1, 2000))}, min_rows=100)[0]
    assert same.score < 0.05 and same.verdict == "stable"
    assert shifted.score > health.PSI_ALERT and shifted.verdict == "drifted"


def test_drift_says_insufficient_data_below_the_minimum():
    ref = health.reference({"x": np.arange(100.0)}, ["positive", "negative"] * 50, "label")
    d = health.feature_drift(ref, {"x": [1.0, 2.0]}, min_rows=10)[0]
    assert d.score is None and d.verdict == "insufficient data"
    assert health.prediction_drift(ref, ["positive"], min_rows=10).score is None


def test_label_prediction_drift_sees_a_new_label_mix():
    ref = health.reference({}, ["positive"] * 80 + ["negative"] * 20, "label")
    assert health.prediction_drift(ref, ["positive"] * 80 + ["negative"] * 20, 10).score == pytest.approx(0.0)
    assert health.prediction_drift(ref, ["negative"] * 90 + ["positive"] * 10, 10).score > 0.3


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_labels():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 2, 50).astype(float)
    large = rng.integers(0, 2, 5000).astype(float)
    a = health.bootstrap(health.hit_rate, [small], "hit_rate", 30)
    b = health.bootstrap(health.hit_rate, [large], "hit_rate", 30)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert (b.high - b.low) < (a.high - a.low) / 5
    assert health.bootstrap(health.hit_rate, [small[:10]], "hit_rate", 30).value is None


def test_online_rule_promotes_only_a_clear_win_that_is_not_slower_or_failing():
    better = Estimate("rmse", -0.1, -0.15, -0.05, 400)
    unclear = Estimate("rmse", -0.1, -0.2, 0.01, 400)
    fast, slow = ShadowSummary(10.0, 0.0, 400), ShadowSummary(13.0, 0.0, 400)
    failing = ShadowSummary(10.0, 0.05, 400)
    assert promotion_rule(better, False, fast, fast).promote
    assert not promotion_rule(unclear, False, fast, fast).promote
    assert not promotion_rule(better, False, fast, slow).promote  # 1.3x the champion's p95
    assert not promotion_rule(better, False, fast, failing).promote
    assert not promotion_rule(Estimate("rmse", None, None, None, 3), False, fast, fast).promote
    assert promotion_rule(Estimate("hit_rate", 0.1, 0.05, 0.15, 400), True, fast, fast).promote


def test_late_label_join_keeps_the_newest_earlier_answer_of_each_version():
    # (review, label, alias, version, request id, prediction): the SQL gives only earlier answers in the window
    rows = [
        (1, 5, "champion", "3", 10, 4.0),
        (1, 5, "champion", "3", 12, 4.5),  # newer: this one grades v3
        (1, 5, "champion", "2", 11, 3.0),  # another version keeps its own
        (1, 5, "challenger", "4", 13, 4.9),
        (2, 1, "champion", "3", 9, None),  # no prediction for the item: not a label
    ]
    got = latest_per_label(rows)
    assert got[("champion", "3")][1][:2] == (5, 4.5)
    assert got[("champion", "2")][1][:2] == (5, 3.0)
    assert got[("challenger", "4")][1][:2] == (5, 4.9)
    assert 2 not in got[("champion", "3")]


def test_macro_f1_equals_scikit_learns_on_labels_either_side_has():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    for n, labels in ((50, ["negative", "neutral", "positive"]), (7, ["negative", "positive"]), (1, ["positive"])):
        actual, predicted = rng.choice(labels, n), rng.choice(labels + ["neutral"], n)
        expected = f1_score(actual, predicted, average="macro", zero_division=0)
        assert health.macro_f1(predicted, actual) == pytest.approx(expected, abs=1e-12)
    assert health.macro_f1(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0
