"""The fitted max length: the shorter length when it holds 95% of the training texts."""

from __future__ import annotations

import pytest

from training.sentiment.config import FineTuneConfig
from training.sentiment.finetune import fit_length, fitted_length


@pytest.mark.parametrize(
    "counts, length",
    [
        ([30] * 95 + [200] * 5, 64),  # 5% longer: 64 still holds 95%
        ([30] * 90 + [100] * 10, 128),  # 10% over 64 (online_shopping: 17.8%)
        ([300] * 100, 128),  # capped: CPU time grows with the length
        ([64] * 100, 64),  # exactly 64 tokens fit
        ([], 64),
    ],
)
def test_the_length_is_the_shorter_one_that_holds_95_percent(counts, length):
    assert fit_length(counts) == length


def test_a_given_length_is_kept_and_a_missing_one_is_fitted_to_the_texts(tiny_bert):
    given = FineTuneConfig(model=str(tiny_bert), max_length=32)
    assert fitted_length(given, ["word " * 300]) is given
    short, long = ["good value"] * 10, ["the strings went out of tune " * 16] * 10
    assert fitted_length(FineTuneConfig(model=str(tiny_bert)), short).length == 64
    assert fitted_length(FineTuneConfig(model=str(tiny_bert)), short + long).length == 128
    with pytest.raises(ValueError, match="not fitted"):
        _ = FineTuneConfig().length
