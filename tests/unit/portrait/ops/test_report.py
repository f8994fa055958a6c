"""The operations report under hostile strings and a few fresh rows (no database:
frames built here, rendered with matplotlib's Agg backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from portrait.ops.report import demand_movers, period_end, render, top_interest_tags


def history(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.Timestamp("2004-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 3650, n)), unit="D")
    return pd.DataFrame(
        {
            "user_id": [f"u_{i % 300}" for i in range(n)],
            "item_id": [f"I{rng.integers(0, 40)}" for _ in range(n)],
            "rating": rng.integers(1, 6, n),
            "event_timestamp": times,
        }
    )


def portraits(n: int) -> pd.DataFrame:
    """Latest portraits of n users, as portrait.ops.report.load gives them (for the segments)."""
    return pd.DataFrame(
        {
            "user_id": [f"u_{i}" for i in range(n)],
            "review_count_total": np.arange(n) % 7 + 1,
            "rating_mean": 3 + (np.arange(n) % 5) / 4,
            "low_rating_share": (np.arange(n) % 3) / 3,
            "helpful_ratio": 0.5,
            "review_words_mean": 100 + np.arange(n),
            "review_chars_mean_zh": np.nan,  # an English shop
            "share_positive": 0.6,
            "share_negative": 0.2,
        }
    )


def test_a_handful_of_fresh_rows_does_not_move_the_window():
    old = history()
    fresh = pd.DataFrame(
        {
            "user_id": ["u_api"] * 3,
            "item_id": ["I1"] * 3,
            "rating": [5] * 3,
            "event_timestamp": [pd.Timestamp("2026-11-29", tz="UTC")] * 3,
        }
    )
    both = pd.concat([old, fresh], ignore_index=True)
    assert period_end(both["event_timestamp"]) == old["event_timestamp"].max()
    assert demand_movers(both).equals(demand_movers(old))
    assert len(demand_movers(both)) > 2  # many movers, not the one item the fresh rows name
    # data that simply continues is its own period
    assert period_end(old["event_timestamp"]) == old["event_timestamp"].max()


def test_user_supplied_strings_are_escaped_in_charts_and_html(tmp_path):
    reviews = history()
    hostile = ["$\\frac{1}{0}$", "<script>alert(1)</script>", "$x^{$", "a_b^c\\n"]
    for i, item in enumerate(hostile):
        extra = reviews.sample(60, random_state=i).assign(item_id=item)
        extra["user_id"] = [f"u_h{i}_{j}" for j in range(60)]
        reviews = pd.concat([reviews, extra], ignore_index=True)
    users = portraits(50)
    page = render(reviews, users, tmp_path).read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("trends.png", "item_trends.png", "movers.png"))


def test_chinese_labels_render_with_a_cjk_font(tmp_path):
    """No tofu: with a CJK font installed, matplotlib finds a glyph for every label."""
    import os

    import pytest

    from portrait.ops.report import cjk_fonts

    if not cjk_fonts():
        if os.environ.get("CI"):
            pytest.fail("no CJK font: .ci/run installs fonts-wqy-microhei")
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    reviews = history()
    items = ["洗发水-001", "平板电脑-002", "酒店-003", "蒙牛-004"]
    reviews["item_id"] = [items[i % 4] for i in range(len(reviews))]
    users = portraits(20).assign(interest_tags=["质量 +, 物流 -", "物流 ~, 性价比 +", "", None] * 5)
    page = render(reviews, users, tmp_path).read_text()
    assert "data-missing-glyphs='0'" in page
    assert "物流" in page and (tmp_path / "interest_tags.png").stat().st_size > 1000


def test_missing_glyphs_are_counted_on_the_page(tmp_path, monkeypatch):
    """Without a CJK font the Chinese labels are boxes: the page says so."""
    from portrait.ops import report

    monkeypatch.setattr(report, "cjk_fonts", lambda: [])
    users = portraits(20).assign(interest_tags="质量 +, 物流 -")
    page = render(history(), users, tmp_path).read_text()
    count = int(page.split("data-missing-glyphs='")[1].split("'")[0])
    assert count >= 4 and "show as boxes" in page


def test_the_report_counts_placeholder_reviews_by_reason(tmp_path):
    reviews = history()
    reviews["placeholder"] = None
    reviews.loc[reviews.index[:7], "placeholder"] = "platform default"
    reviews.loc[reviews.index[7:9], "placeholder"] = "empty"
    page = render(reviews, portraits(50), tmp_path).read_text()
    assert "9 of them are placeholder texts" in page and "platform default 7, empty 2" in page
    assert "placeholder texts" not in render(history(), portraits(50), tmp_path / "clean").read_text()


def test_the_model_health_section_draws_drift_quality_shadow_and_history(tmp_path):
    from datetime import datetime, timezone

    from portrait.ops.report import ModelHealth
    from registry.audit import AuditRow
    from registry.health import Drift, Estimate, ShadowSummary
    from registry.monitoring import Freshness, HealthTables, Quality

    tables = HealthTables(
        drift={"rating-predictor": [Drift("rating_mean", 0.31, 500, "psi"), Drift("prediction", None, 5, "js")]},
        quality=[Quality("rating-predictor", "3", "champion", Estimate("rmse", 0.95, 0.9, 1.0, 400), 0.9)],
        shadow={
            "rating-predictor": {"champion": ShadowSummary(12.0, 0.0, 400), "challenger": ShadowSummary(14.0, 0.0, 400)}
        },
        agreement={"rating-predictor": {"rating_difference": 0.12}},
        champions={"rating-predictor": "3"},
        freshness=[Freshness("user_behavior", datetime(2014, 7, 1, tzinfo=timezone.utc), 3e8, 1.2e9, 0.0, 400)],
    )
    when = datetime(2026, 12, 3, tzinfo=timezone.utc)
    history = {
        "rating-predictor": [AuditRow(when, "ana", "rating-predictor", "champion", "rollback", 3, 2, {}, "back")]
    }
    page = render(history_frame(), portraits(50), tmp_path, ModelHealth(tables, history)).read_text()
    assert "<h2>Model health</h2>" in page and "rating_mean" in page and "drifted" in page
    assert "insufficient data" in page and "Online quality from late labels" in page
    assert "shadow challenger" in page and "rating_difference 0.120" in page
    assert "promotion history" in page and "rollback" in page and "Feature freshness" in page
    assert (tmp_path / "health_drift.png").exists() and (tmp_path / "health_quality.png").exists()
    unavailable = render(history_frame(), portraits(50), tmp_path, ModelHealth(error="no registry")).read_text()
    assert "not available: no registry" in unavailable


def history_frame() -> pd.DataFrame:
    frame = history()
    frame["placeholder"] = None
    return frame


def test_interests_are_aspects_counted_by_users_with_how_they_feel():
    users = pd.DataFrame({"interest_tags": ["string +, tuner -", "tuner -, price ~", "tuner +", "", None, "broken"]})
    got = top_interest_tags(users)
    assert list(got.index) == ["tuner", "price", "string"]
    assert got.loc["tuner"].to_dict() == {"users": 3, "positive": 1, "mixed": 0, "negative": 2}
    assert got.loc["price", "mixed"] == 1 and got.loc["string", "positive"] == 1
