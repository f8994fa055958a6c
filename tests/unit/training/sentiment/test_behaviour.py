"""The behavioural checks themselves: a model that gets them right passes, one
that does not is caught, failure by failure."""

import numpy as np

from training.sentiment.behaviour import COMPLAINT, MINIMUM, behaviour_report


def keyword_model(texts):
    """Positive unless a complaint word appears; P(positive) drops with each one."""
    bad = ("broke", "terrible", "junk", "awful", "poorly", "regret", "waste", "stopped")
    counts = np.array([sum(w in t.lower() for w in bad) for t in texts], dtype=float)
    return ["negative" if c else "positive" for c in counts], 1.0 / (1.0 + counts)


def test_a_model_with_the_right_behaviour_passes_everything():
    report = behaviour_report(keyword_model)
    assert report.all_passed, report.failures
    assert report.metrics() == {
        "behaviour_minimum_functionality_pass_rate": 1.0,
        "behaviour_invariance_pass_rate": 1.0,
        "behaviour_direction_pass_rate": 1.0,
    }


def test_each_kind_of_failure_is_caught():
    def contrary(texts):
        labels, p = keyword_model(texts)
        flipped = ["positive" if "Fender" in t else label for t, label in zip(texts, labels)]  # brand-sensitive
        return flipped, np.where([t.endswith(COMPLAINT.strip()) for t in texts], 0.99, 0.1 * p)  # a complaint raises P

    report = behaviour_report(contrary)
    kinds = {f.split(":")[0] for f in report.failures}
    assert kinds == {"INV", "DIR"} and report.metrics()["behaviour_direction_pass_rate"] == 0.0
    assert report.passed["minimum_functionality"] == len(MINIMUM)
