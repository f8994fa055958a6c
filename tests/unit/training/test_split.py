"""The time split: quantiles of review time by default, given dates kept, refusals with reasons."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from training.common import SplitError, TimeSplit
from training.sentiment.data import refuse_thin_classes


def times(n: int) -> pd.Series:
    return pd.Series(pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC"))


def test_without_dates_the_cuts_are_the_70_and_80_percent_quantiles_of_time():
    t = times(100).sample(frac=1, random_state=0)  # order does not matter
    split = TimeSplit().resolved(t)
    parts = split.part(t).value_counts()
    assert (parts["train"], parts["val"], parts["test"]) == (70, 10, 20)
    assert split.train_before == datetime(2021, 3, 12, tzinfo=timezone.utc)  # day 71
    assert split.chosen_by == "quantiles 70/10/20 of review time"
    described = split.describe(t)
    assert described.startswith("split by quantiles 70/10/20 of review time: train 70 (2021-01-01 to 2021-03-11)")
    assert "test 20 (2021-03-22 to 2021-04-10)" in described


def test_ties_stay_on_one_side_and_given_dates_are_kept():
    t = pd.Series(pd.to_datetime(["2021-01-01"] * 8 + ["2021-02-01"] * 2, utc=True))
    parts = TimeSplit().resolved(t).part(t)
    assert parts[:8].nunique() == 1  # the same instant is never split
    given = TimeSplit(datetime(2021, 1, 15, tzinfo=timezone.utc), datetime(2021, 1, 20, tzinfo=timezone.utc))
    assert given.resolved(t) is given and given.chosen_by == "dates"


def test_bad_splits_are_refused_with_the_reason():
    with pytest.raises(SplitError, match="both --train-before and --test-from, or neither"):
        TimeSplit(datetime(2021, 1, 1, tzinfo=timezone.utc), None)
    with pytest.raises(SplitError, match="must not end before it starts"):
        TimeSplit(datetime(2021, 2, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(SplitError, match="resolve the split"):
        TimeSplit().part(times(5))
    with pytest.raises(SplitError, match="2 reviews cannot be split"):
        TimeSplit().resolved(times(2))


def test_a_class_too_thin_in_validation_or_test_is_refused_naming_it():
    val = pd.DataFrame({"label": ["positive"] * 30 + ["negative"] * 12 + ["neutral"] * 3})
    test = pd.DataFrame({"label": ["positive"] * 30 + ["negative"] * 12 + ["neutral"] * 12})
    with pytest.raises(SplitError, match=r"validation part .* holds only 3 neutral review\(s\) \(at least 10"):
        refuse_thin_classes(["negative", "neutral", "positive"], val, test, TimeSplit(), 10)
    refuse_thin_classes(["negative", "positive"], val, test, TimeSplit(), 10)  # a binary shop: no neutral asked
