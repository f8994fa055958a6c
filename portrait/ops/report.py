"""`portrait report`: operations decision support as an HTML page with PNG
charts: user segments, sentiment and rating trends, rising and falling items,
cohort activity. Computation (DataFrames in, tables out) is split from the
rendering (charts, HTML)."""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.features.tags import parse_tags
from portrait.text.labels import ratings_sentiment

SEGMENT_FEATURES = [
    "review_count_total",
    "rating_mean",
    "low_rating_share",
    "helpful_ratio",
    "review_words_mean",
    "review_chars_mean_zh",
    "share_positive",
    "share_negative",
]


def load(engine: sa.Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reviews (user, item, rating, time, placeholder reason) and each user's latest portrait features."""
    with engine.connect() as conn:
        reviews = pd.DataFrame(
            conn.execute(sa.text("SELECT user_id, item_id, rating, event_timestamp, placeholder FROM reviews"))
            .mappings()
            .all(),
            columns=["user_id", "item_id", "rating", "event_timestamp", "placeholder"],
        )
        users = pd.DataFrame(
            conn.execute(
                sa.text("""
            SELECT b.user_id, b.review_count_total, b.rating_mean, b.low_rating_share, b.helpful_ratio,
                   b.review_words_mean, b.review_chars_mean_zh, t.share_positive, t.share_negative,
                   t.interest_tags
            FROM (SELECT DISTINCT ON (user_id) * FROM user_behavior ORDER BY user_id, event_timestamp DESC) b
            JOIN (SELECT DISTINCT ON (user_id) * FROM user_text_profile ORDER BY user_id, event_timestamp DESC) t
              USING (user_id)""")
            )
            .mappings()
            .all(),
            columns=["user_id", *SEGMENT_FEATURES, "interest_tags"],
        )
    reviews["event_timestamp"] = pd.to_datetime(reviews["event_timestamp"], utc=True)
    return reviews, users


@dataclass
class Segments:
    sizes: pd.Series  # segment name -> users
    traits: pd.DataFrame  # segment name -> mean of each feature
    z: pd.DataFrame  # segment name -> how far each mean is from all users (in std)


def segment_users(users: pd.DataFrame, k: int = 4, seed: int = 0) -> Segments:
    """k-means on standardized portrait features; each segment named by its most
    distinctive traits."""
    from sklearn.cluster import KMeans

    x = users[SEGMENT_FEATURES].astype(float)
    x = x.loc[:, x.notna().any()]  # e.g. Chinese characters per review in an English-only shop
    x = x.fillna(x.mean())
    z = (x - x.mean()) / x.std(ddof=0).replace(0, 1)
    k = max(1, min(k, len(users)))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z.to_numpy())
    traits = x.groupby(labels).mean()
    zmeans = z.groupby(labels).mean()
    names = {}
    for c in traits.index:
        top = zmeans.loc[c].abs().sort_values(ascending=False).index[:2]
        names[c] = " & ".join(f"{'high' if zmeans.loc[c, f] > 0 else 'low'} {f.replace('_', ' ')}" for f in top)
    sizes = pd.Series(labels).value_counts().rename(index=names).sort_values(ascending=False)
    return Segments(sizes, traits.rename(index=names), zmeans.rename(index=names))


def monthly_trends(reviews: pd.DataFrame) -> pd.DataFrame:
    """Per month: reviews, mean rating, share positive and negative (portrait.text.labels)."""
    r = reviews.assign(month=reviews["event_timestamp"].dt.tz_convert(None).dt.to_period("M").dt.to_timestamp())
    g = r.groupby("month")["rating"]
    return pd.DataFrame(
        {
            "reviews": g.size(),
            "rating_mean": g.mean(),
            "share_positive": g.apply(lambda s: (ratings_sentiment(s) == "positive").mean()),
            "share_negative": g.apply(lambda s: (ratings_sentiment(s) == "negative").mean()),
        }
    )


def period_end(times: pd.Series, straggler_share: float = 0.01, gap_days: int = 90) -> pd.Timestamp:
    """The end of the data's own period: the latest time, unless the last few rows
    (at most `straggler_share` of them) come after a gap of over `gap_days` — a handful
    of fresh rows (reviews posted today through the API onto a 2014 history) must not
    redefine "recent" for everything else."""
    t = times.sort_values().to_numpy()
    k = max(1, int(len(t) * straggler_share))
    tail = t[-(k + 1) :]
    gaps = np.flatnonzero(np.diff(tail) > np.timedelta64(gap_days, "D"))
    return pd.Timestamp(tail[gaps[0]] if gaps.size else t[-1])


def demand_movers(reviews: pd.DataFrame, days: int = 180, top: int = 8) -> pd.DataFrame:
    """Reviews per item in the last `days` of the data's period against the `days` before (demand trend)."""
    end = period_end(reviews["event_timestamp"])
    t = reviews["event_timestamp"]
    recent = reviews[(t > end - pd.Timedelta(days=days)) & (t <= end)]["item_id"].value_counts()
    before = reviews[
        (reviews["event_timestamp"] <= end - pd.Timedelta(days=days))
        & (reviews["event_timestamp"] > end - pd.Timedelta(days=2 * days))
    ]["item_id"].value_counts()
    change = recent.subtract(before, fill_value=0).sort_values()
    movers = pd.concat([change.tail(top)[::-1], change.head(top)])
    return pd.DataFrame(
        {
            "change": movers,
            "recent": recent.reindex(movers.index).fillna(0).astype(int),
            "before": before.reindex(movers.index).fillna(0).astype(int),
        }
    )


def cohort_activity(reviews: pd.DataFrame, max_quarters: int = 12) -> pd.DataFrame:
    """Share of each first-review cohort (by quarter) active n quarters later."""
    q = reviews["event_timestamp"].dt.tz_convert(None).dt.to_period("Q")
    r = reviews.assign(quarter=q, cohort=q.groupby(reviews["user_id"]).transform("min"))
    r["age"] = (r["quarter"] - r["cohort"]).apply(lambda d: d.n)
    active = r[r["age"] < max_quarters].groupby(["cohort", "age"])["user_id"].nunique().unstack(fill_value=0)
    size = r.groupby("cohort")["user_id"].nunique()
    table = active.div(size, axis=0)
    return table[size.reindex(table.index) >= 10].tail(16)


# --- rendering -------------------------------------------------------------------------


def top_interest_tags(users: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The aspects most users are interested in (their latest profile), most common first,
    with how many of them feel positive, mixed or negative about each."""
    columns = ["positive", "mixed", "negative"]
    if "interest_tags" not in users:
        return pd.DataFrame(columns=columns)
    pairs = [pair for tags in users["interest_tags"].dropna() for pair in parse_tags(tags)]
    if not pairs:
        return pd.DataFrame(columns=columns)
    counts = pd.crosstab(*zip(*pairs)).reindex(columns=columns, fill_value=0)
    counts["users"] = counts.sum(axis=1)
    counts = counts.sort_index().sort_values("users", ascending=False, kind="stable").head(top)  # ties by name
    counts.index.name, counts.columns.name = "aspect", None
    return counts[["users", *columns]]


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def render(reviews: pd.DataFrame, users: pd.DataFrame, out_dir: Path, health: ModelHealth | None = None) -> Path:
    """Charts as PNG files and an index.html beside them; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    # user-supplied strings (item ids) are text, never mathtext ("$...$") or markup;
    # CJK labels fall back to an installed CJK font (else they would be tofu boxes)
    fonts = ["DejaVu Sans", *cjk_fonts()]
    with (
        matplotlib.rc_context({"text.parse_math": False, "text.usetex": False, "font.family": fonts}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        path = _render(plt, reviews, users, out_dir, health)
    # glyphs no installed font has are drawn as boxes: say so on the page, not only in a log
    missing = sorted({str(w.message) for w in caught if "missing from font" in str(w.message)})
    page = path.read_text()
    banner = (
        f"<p class='warn'>{len(missing)} characters have no glyph in any installed font and show as boxes "
        "(install fonts-wqy-microhei or fonts-noto-cjk).</p>"
        if missing
        else ""
    )
    page = page.replace("<body>", f"<body data-missing-glyphs='{len(missing)}'>{banner}", 1)
    path.write_text(page)
    return path


# Families tried for Chinese labels, in order (Debian: fonts-wqy-microhei, fonts-noto-cjk).
CJK_FAMILIES = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "SimHei")


def cjk_fonts() -> list[str]:
    """The CJK font families installed here, in CJK_FAMILIES order; a warning when none is."""
    import logging

    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not any(f in installed for f in CJK_FAMILIES):  # installed after matplotlib cached its font list
        for path in font_manager.findSystemFonts():
            if any(k in path.lower() for k in ("wqy", "cjk", "sourcehan", "simhei", "notosanssc")):
                font_manager.fontManager.addfont(path)
        installed = {f.name for f in font_manager.fontManager.ttflist}
    found = [f for f in CJK_FAMILIES if f in installed]
    if not found:
        logging.getLogger(__name__).warning(
            "no CJK font installed: Chinese labels in the report render as boxes "
            "(install fonts-wqy-microhei or fonts-noto-cjk)"
        )
    return found


def _segments_section(plt, users: pd.DataFrame, out_dir: Path) -> list[str]:
    """User segments (k-means on portraits) and each one's mean portrait."""
    sections: list[str] = []
    seg = segment_users(users) if len(users) >= 4 else None
    if seg is not None:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.barh(seg.sizes.index[::-1], seg.sizes.values[::-1], color="tab:blue")
        ax.set_xlabel("users")
        ax.set_title("User segments (k-means on portraits)")
        img = _save(fig, out_dir / "segments.png")
        table = seg.traits.round(2).to_html(classes="t")
        sections.append(
            f"<h2>User segments</h2><img src='{img}' alt='segments'><p>Mean portrait of each segment:</p>{table}"
        )
    return sections


def _tags_section(plt, users: pd.DataFrame, out_dir: Path) -> list[str]:
    """The most common interest tags."""
    sections: list[str] = []
    tags = top_interest_tags(users)
    if len(tags):
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(tags) + 1))
        left = np.zeros(len(tags))
        for feeling, color in (("positive", "tab:green"), ("mixed", "tab:gray"), ("negative", "tab:red")):
            values = tags[feeling].to_numpy()[::-1]
            ax.barh(tags.index[::-1], values, left=left, color=color, label=feeling)
            left += values
        ax.set_xlabel("users")
        ax.legend(loc="lower right")
        ax.set_title("Interests: the aspects users write about, and how they feel about them")
        img = _save(fig, out_dir / "interest_tags.png")
        sections.append(f"<h2>Interests (aspects)</h2><img src='{img}' alt='interest tags'>{tags.to_html(classes='t')}")
    return sections


def _trends_section(plt, reviews: pd.DataFrame, out_dir: Path) -> list[str]:
    """Sentiment and rating over time, and the 5 most reviewed items' rating trends."""
    sections: list[str] = []
    trends = monthly_trends(reviews)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    axes[0].plot(trends.index, trends["rating_mean"].rolling(3, min_periods=1).mean(), label="mean rating (3-month)")
    axes[0].set_ylabel("stars")
    axes[0].legend()
    axes[1].plot(
        trends.index, trends["share_positive"].rolling(3, min_periods=1).mean(), label="positive", color="tab:green"
    )
    axes[1].plot(
        trends.index, trends["share_negative"].rolling(3, min_periods=1).mean(), label="negative", color="tab:red"
    )
    axes[1].set_ylabel("share of reviews")
    axes[1].legend()
    fig.suptitle("Sentiment and rating over time")
    img = _save(fig, out_dir / "trends.png")
    top_items = reviews["item_id"].value_counts().index[:5]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for item in top_items:
        r = reviews[reviews["item_id"] == item].sort_values("event_timestamp")
        ax.plot(r["event_timestamp"], r["rating"].expanding().mean(), label=item)
    ax.set_ylabel("running mean rating")
    ax.set_title("Rating trend of the 5 most reviewed items")
    ax.legend(fontsize=7)
    img_items = _save(fig, out_dir / "item_trends.png")
    sections.append(
        f"<h2>Sentiment and rating trends</h2><img src='{img}' alt='trends'><img src='{img_items}' alt='item trends'>"
    )
    return sections


def _movers_section(plt, reviews: pd.DataFrame, out_dir: Path) -> list[str]:
    """Rising and falling items by demand."""
    sections: list[str] = []
    movers = demand_movers(reviews)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(
        movers.index[::-1],
        movers["change"][::-1],
        color=["tab:green" if v > 0 else "tab:red" for v in movers["change"][::-1]],
    )
    ax.set_xlabel("reviews in the last 180 days minus the 180 before")
    ax.set_title("Rising and falling items (demand trend)")
    img = _save(fig, out_dir / "movers.png")
    sections.append(f"<h2>Rising and falling items</h2><img src='{img}' alt='movers'>{movers.to_html(classes='t')}")
    return sections


def _cohorts_section(plt, reviews: pd.DataFrame, out_dir: Path) -> list[str]:
    """The share of each cohort still reviewing, by quarter."""
    sections: list[str] = []
    cohorts = cohort_activity(reviews)
    if not cohorts.empty:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        im = ax.imshow(cohorts.to_numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1)
        ax.set_yticks(range(len(cohorts)), [str(c) for c in cohorts.index])
        ax.set_xlabel("quarters since the first review")
        ax.set_title("Cohort activity: share of each cohort reviewing")
        fig.colorbar(im, ax=ax)
        img = _save(fig, out_dir / "cohorts.png")
        sections.append(f"<h2>Cohort activity</h2><img src='{img}' alt='cohorts'>")
    return sections


@dataclass
class ModelHealth:
    """What the report's Model health section shows (registry.monitoring's tables and the audit trail)."""

    tables: Any = None
    history: dict[str, list] = field(default_factory=dict)
    error: str | None = None


def _health_section(plt, health: ModelHealth | None, out_dir: Path) -> list[str]:
    if health is None:
        return []
    if health.tables is None:
        return [f"<h2>Model health</h2><p>not available: {html.escape(health.error or 'no champion')}</p>"]
    t, parts = health.tables, ["<h2>Model health</h2>"]
    drift = pd.DataFrame(
        [
            {
                "model": m,
                "measure": d.metric.upper(),
                "input": d.name,
                "score": d.score,
                "rows": d.rows,
                "verdict": d.verdict,
            }
            for m, rows in t.drift.items()
            for d in rows
        ]
    )
    if not drift.empty:
        scored = drift.dropna(subset=["score"])
        if not scored.empty:
            fig, ax = plt.subplots(figsize=(8, 0.35 * len(scored) + 1.2))
            labels = [f"{m}: {n}" for m, n in zip(scored["model"], scored["input"])]
            ax.barh(labels, scored["score"], color=["#c33" if v == "drifted" else "#48a" for v in scored["verdict"]])
            ax.axvline(0.2, color="#c33", linestyle="--", linewidth=1)
            ax.set_xlabel("PSI (inputs) / Jensen-Shannon distance (predictions); dashed: PSI alert 0.2")
            parts.append(f"<img src='{_save(fig, out_dir / 'health_drift.png')}' alt='drift'>")
        parts.append("<h3>Drift against each champion's training set</h3>" + drift.to_html(classes="t", index=False))
    if t.freshness:
        fresh = pd.DataFrame(
            [
                {
                    "view": f.view,
                    "newest event": f.newest,
                    "age (days)": None if f.age_s is None else f.age_s / 86400,
                    "TTL (days)": None if f.ttl_s is None else f.ttl_s / 86400,
                    "served past TTL": f.stale_share,
                    "answers": f.answers,
                }
                for f in t.freshness
            ]
        )
        parts.append("<h3>Feature freshness</h3>" + fresh.to_html(classes="t", index=False, float_format="%.3g"))
    quality = pd.DataFrame(
        [
            {
                "model": q.model,
                "version": q.version,
                "alias": q.alias,
                "metric": q.online.metric,
                "online": q.online.value,
                "low": q.online.low,
                "high": q.online.high,
                "labels": q.online.n,
                "offline test": q.offline,
            }
            for q in t.quality
        ]
    )
    if quality.empty:
        parts.append("<h3>Online quality</h3><p>no late labels yet</p>")
    else:
        graded = quality.dropna(subset=["online"])
        if not graded.empty:
            fig, ax = plt.subplots(figsize=(8, 0.4 * len(graded) + 1.2))
            names = [
                f"{m} v{v} {a} {k}"
                for m, v, a, k in zip(graded["model"], graded["version"], graded["alias"], graded["metric"])
            ]
            err = [graded["online"] - graded["low"], graded["high"] - graded["online"]]
            ax.errorbar(graded["online"], names, xerr=err, fmt="o", label="online (95% interval)")
            ax.scatter(graded["offline test"], names, marker="x", color="#c33", label="offline test")
            ax.legend(loc="best", fontsize=8)
            parts.append(f"<img src='{_save(fig, out_dir / 'health_quality.png')}' alt='online quality'>")
        parts.append("<h3>Online quality from late labels</h3>" + quality.to_html(classes="t", index=False))
    for model, by_alias in t.shadow.items():
        if "challenger" in by_alias:
            rows = pd.DataFrame(
                [
                    {"alias": a, "answers": s.answers, "p95 ms": s.p95_latency_ms, "errors": s.error_rate}
                    for a, s in by_alias.items()
                ]
            )
            agreement = ", ".join(f"{k} {v:.3f}" for k, v in t.agreement.get(model, {}).items() if v is not None)
            parts.append(
                f"<h3>{html.escape(model)}: shadow challenger</h3>{rows.to_html(classes='t', index=False)}"
                f"<p>agreement: {html.escape(agreement)}</p>"
            )
    for model, rows in health.history.items():
        if rows:
            frame = pd.DataFrame(
                [
                    {
                        "when": r.changed_at,
                        "action": r.action,
                        "from": r.from_version,
                        "to": r.to_version,
                        "who": r.actor,
                        "decision": r.decision,
                    }
                    for r in rows
                ]
            )
            parts.append(f"<h3>{html.escape(model)}: promotion history</h3>{frame.to_html(classes='t', index=False)}")
    return ["".join(parts)]


def _render(plt, reviews: pd.DataFrame, users: pd.DataFrame, out_dir: Path, health: ModelHealth | None = None) -> Path:
    end = period_end(reviews["event_timestamp"])
    stragglers = int((reviews["event_timestamp"] > end).sum())
    reviews = reviews[reviews["event_timestamp"] <= end]
    sections = [
        *_segments_section(plt, users, out_dir),
        *_tags_section(plt, users, out_dir),
        *_trends_section(plt, reviews, out_dir),
        *_movers_section(plt, reviews, out_dir),
        *_cohorts_section(plt, reviews, out_dir),
        *_health_section(plt, health, out_dir),
    ]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    reasons = reviews["placeholder"].value_counts() if "placeholder" in reviews else pd.Series(dtype=int)
    placeholders = (
        f" {int(reasons.sum()):,} of them are placeholder texts the shoppers did not write "
        f"({html.escape(', '.join(f'{reason} {n:,}' for reason, n in reasons.items()))}): their stars count, "
        "their texts are left out of sentiment, embeddings, profiles and tags."
        if reasons.sum()
        else ""
    )
    late = (
        f" ({stragglers:,} later reviews, isolated after a long gap, are left out of the windows)" if stragglers else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Portrait operations report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}} img{{max-width:100%;display:block;margin:1em 0}}
.warn{{color:#a00;font-weight:bold}} table.t{{border-collapse:collapse;font-size:12px}} table.t td,table.t th{{border:1px solid #ccc;padding:3px 6px}}</style>
<script>
// lets a headless browser (and the tests) see that every chart loaded
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  document.body.dataset.charts = imgs.length;
  document.body.dataset.chartsLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</head><body><h1>Portrait operations report</h1>
<p>{len(reviews):,} reviews of {reviews["item_id"].nunique():,} items by {reviews["user_id"].nunique():,} users,
{reviews["event_timestamp"].min():%Y-%m-%d} to {end:%Y-%m-%d}{late}.<span id="placeholders">{placeholders}</span>
Generated {html.escape(stamp)}.</p>
{"".join(sections)}</body></html>"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path
