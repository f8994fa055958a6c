"""Behavioural tests of a sentiment model, in the spirit of Made With ML's model
tests: minimum functionality (obvious sentences get the obvious label),
invariance (swapping the product named keeps the label) and direction (adding
a complaint never raises the positive probability). Training logs the results
with every run; tests/model runs them against the served champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# predict: texts -> (labels, probability of "positive")
Predict = Callable[[list[str]], tuple[list[str], np.ndarray]]

MINIMUM = [
    ("These strings sound great and stay in tune for weeks. Love them!", "positive"),
    ("Excellent cable, solid build, no hum at all. Highly recommended.", "positive"),
    ("Perfect pedal, works exactly as described. Five stars.", "positive"),
    ("Terrible. It stopped working after two days and the seller never answered.", "negative"),
    ("Cheap junk, the jack broke the first time I used it. Returned it.", "negative"),
    ("Awful sound, constant buzzing, a complete waste of money.", "negative"),
]
PRODUCT_SWAPS = [("guitar strings", "microphone cable"), ("tuner", "capo"), ("Fender", "Yamaha")]
INVARIANCE_TEMPLATES = [
    "I love this {}; it does everything I wanted.",
    "This {} is poorly made and I regret buying it.",
    "The {} arrived quickly and works as expected.",
]
DIRECTION_BASES = [
    "Great sound and easy to set up.",
    "Does the job, nothing special.",
    "Nice looking and the price was right.",
    "Works fine for practice at home.",
]
COMPLAINT = " It broke after a week."


@dataclass
class BehaviourReport:
    passed: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {f"behaviour_{k}_pass_rate": self.passed[k] / self.total[k] for k in self.total}

    @property
    def all_passed(self) -> bool:
        return not self.failures


def behaviour_report(predict: Predict) -> BehaviourReport:
    report = BehaviourReport()
    labels, _ = predict([t for t, _ in MINIMUM])
    _tally(
        report,
        "minimum_functionality",
        [(got == want, f"MFT: {text!r} -> {got}, expected {want}") for (text, want), got in zip(MINIMUM, labels)],
    )

    checks = []
    for template in INVARIANCE_TEMPLATES:
        for a, b in PRODUCT_SWAPS:
            pair, _ = predict([template.format(a), template.format(b)])
            checks.append((pair[0] == pair[1], f"INV: {template.format(a)!r} -> {pair[0]} but {b!r} -> {pair[1]}"))
    _tally(report, "invariance", checks)

    _, before = predict(DIRECTION_BASES)
    _, after = predict([t + COMPLAINT for t in DIRECTION_BASES])
    _tally(
        report,
        "direction",
        [
            (float(a) <= float(b) + 1e-6, f"DIR: {t!r} + complaint raised P(positive) {float(b):.3f} -> {float(a):.3f}")
            for t, b, a in zip(DIRECTION_BASES, before, after)
        ],
    )
    return report


def _tally(report: BehaviourReport, name: str, checks: list[tuple[bool, str]]) -> None:
    report.total[name] = len(checks)
    report.passed[name] = sum(ok for ok, _ in checks)
    report.failures += [message for ok, message in checks if not ok]
