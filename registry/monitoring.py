"""The health tables of the served models, computed from the request log (and the
newest reviews): drift of each champion against its training set, online quality
per version and alias from late labels, and the shadow challenger's agreement,
latency and errors. The service publishes them as Prometheus gauges,
`portrait monitor` prints them and logs them to MLflow, the report draws them.

A late label: a review of (user, item) that arrives after the service answered
for that user (a /rating of that item, a /recommend) within `label_window_hours`;
the newest earlier answer of each version and alias is the one it grades."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa

from registry import health
from registry.health import Drift, Estimate, ShadowSummary
from registry.models import RATING, SENTIMENT, champion, version_info

ROUTES = {RATING: ("/rating", "/recommend"), SENTIMENT: ("/reviews", "/sentiment")}
# Drift compares inputs with the training pairs: /recommend's rows are the items the
# ranking chose (popular ones), a selection that would always look drifted
DRIFT_ROUTES = {RATING: ("/rating",), SENTIMENT: ("/reviews", "/sentiment")}


@dataclass(frozen=True)
class Quality:
    model: str
    version: str
    alias: str
    online: Estimate
    offline: float | None  # the version's offline test metric, where the same metric exists


@dataclass(frozen=True)
class Freshness:
    view: str
    newest: datetime | None  # the newest event time in the view's offline table
    age_s: float | None
    ttl_s: float | None
    stale_share: float | None  # of the logged answers that read the view, those served past its TTL
    answers: int


@dataclass
class HealthTables:
    drift: dict[str, list[Drift]] = field(default_factory=dict)
    quality: list[Quality] = field(default_factory=list)
    agreement: dict[str, dict[str, float | None]] = field(default_factory=dict)
    shadow: dict[str, dict[str, ShadowSummary]] = field(default_factory=dict)
    difference: dict[str, Estimate] = field(default_factory=dict)  # challenger - champion, paired on labels
    champions: dict[str, str] = field(default_factory=dict)
    freshness: list[Freshness] = field(default_factory=list)


def tables(engine: sa.Engine, settings, models=(RATING, SENTIMENT), store=None) -> HealthTables:
    """Every table; freshness only with a Feast store (its views and their TTLs)."""
    out = HealthTables()
    if store is not None:
        out.freshness = freshness(engine, store, settings.drift_window)
    for name in models:
        current = champion(name)
        if current is None:
            continue
        out.champions[name] = str(current.version)
        out.drift[name] = drift(engine, name, current.run_id, settings)
        out.shadow[name] = latency_and_errors(engine, name, settings.drift_window)
        out.agreement[name] = agreement(engine, name, settings.drift_window)
    out.quality, out.difference = quality(engine, settings)
    return out


def freshness(engine: sa.Engine, store, n: int) -> list[Freshness]:
    """Per feature view: now minus its newest event time (offline table), its TTL, and the
    share of the newest n logged answers that were served a value past the TTL."""
    with engine.connect() as conn:
        logged = (
            conn.execute(
                sa.text(
                    "SELECT prediction -> 'stale_features' FROM request_log WHERE prediction ? 'stale_features'"
                    " ORDER BY request_id DESC LIMIT :n"
                ),
                {"n": n},
            )
            .scalars()
            .all()
        )
        out = []
        now = datetime.now(timezone.utc)
        for view in sorted(store.list_feature_views(), key=lambda v: v.name):
            table = view.batch_source.get_table_query_string()
            newest = conn.execute(sa.text(f"SELECT max(event_timestamp) FROM {table}")).scalar()
            stale = sum(view.name in (s or []) for s in logged)
            out.append(
                Freshness(
                    view.name,
                    newest,
                    (now - newest).total_seconds() if newest else None,
                    view.ttl.total_seconds() if view.ttl else None,
                    stale / len(logged) if logged else None,
                    len(logged),
                )
            )
    return out


@functools.lru_cache(maxsize=32)
def _reference(run_id: str) -> dict | None:
    return health.load_reference(run_id)


def drift(engine: sa.Engine, name: str, run_id: str, settings) -> list[Drift]:
    """PSI of each input and JS of the predictions over the newest `drift_window` answers
    of the champion (any version) against the champion's training-set reference; for the
    sentiment model also the newest ingested reviews' lengths."""
    ref = _reference(run_id)
    if ref is None:
        return [Drift("reference", None, 0, "psi")]  # a run from before references were saved
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT features, prediction FROM request_log WHERE model = :m AND alias = 'champion'"
                " AND route = ANY(:routes) AND error IS NULL ORDER BY request_id DESC LIMIT :n"
            ),
            {"m": name, "routes": list(DRIFT_ROUTES[name]), "n": settings.drift_window},
        ).all()
    columns = health.columns_of(r[0] for r in rows)
    key = "labels" if ref["prediction"]["kind"] == "label" else "ratings"
    predictions = [p for r in rows for p in (r[1] or {}).get(key, [])]
    out = [*health.feature_drift(ref, columns, settings.drift_min_rows)]
    out.append(health.prediction_drift(ref, predictions, settings.drift_min_rows))
    if name == SENTIMENT and "text_chars" in ref["features"]:
        lengths = newest_review_lengths(engine, settings.drift_window)
        spec = ref["features"]["text_chars"]
        score = (
            health.psi(spec["shares"], health.shares(lengths, spec["edges"]))
            if len(lengths) >= settings.drift_min_rows
            else None
        )
        out.append(Drift("text_chars (newest ingested reviews)", score, len(lengths), "psi"))
    return out


def newest_review_lengths(engine: sa.Engine, n: int) -> np.ndarray:
    from portrait.text.encoder import review_text

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT summary, text FROM reviews WHERE placeholder IS NULL ORDER BY review_id DESC LIMIT :n"),
            {"n": n},
        ).all()
    return np.array([len(review_text(s or "", t or "")) for s, t in rows], dtype=float)


RATING_LABELS = sa.text(
    "SELECT r.review_id, r.rating, l.alias, l.version, l.request_id,"
    " (l.prediction -> 'ratings' ->> (array_position(l.items, r.item_id) - 1))::float AS predicted"
    " FROM request_log l JOIN reviews r ON r.user_id = l.user_id AND r.item_id = ANY(l.items)"
    " AND r.event_timestamp > l.logged_at AND r.event_timestamp <= l.logged_at + make_interval(secs => :window)"
    " WHERE l.model = :m AND l.route = '/rating' AND l.error IS NULL AND l.logged_at >= now() - make_interval(days => :days)"
)
RECOMMEND_LABELS = sa.text(
    "SELECT r.review_id, (r.item_id = ANY(l.items))::int AS hit, l.alias, l.version, l.request_id"
    " FROM request_log l JOIN reviews r ON r.user_id = l.user_id"
    " AND r.event_timestamp > l.logged_at AND r.event_timestamp <= l.logged_at + make_interval(secs => :window)"
    " WHERE l.model = :m AND l.route = '/recommend' AND l.error IS NULL AND l.logged_at >= now() - make_interval(days => :days)"
)
SENTIMENT_LABELS = sa.text(
    "SELECT request_id, prediction ->> 'label', prediction ->> 'stars_label', alias, version FROM request_log"
    " WHERE model = :m AND route = '/reviews' AND error IS NULL AND prediction ? 'stars_label'"
    " ORDER BY request_id DESC LIMIT :n"
)


def latest_per_label(rows) -> dict[tuple[str, str], dict[int, tuple]]:
    """(alias, version) -> review id -> (label, prediction) from the newest answer before the review.
    rows: (review_id, label, alias, version, request_id, prediction)."""
    best: dict[tuple[str, str], dict[int, tuple]] = defaultdict(dict)
    for review_id, label, alias, version, request_id, predicted in rows:
        if predicted is None:
            continue
        kept = best[(alias, version)].get(review_id)
        if kept is None or request_id > kept[2]:
            best[(alias, version)][review_id] = (label, predicted, request_id)
    return best


def quality(engine: sa.Engine, settings) -> tuple[list[Quality], dict[str, Estimate]]:
    params = {"m": RATING, "window": settings.label_window_hours * 3600, "days": settings.request_log_retention_days}
    with engine.connect() as conn:
        rated = conn.execute(RATING_LABELS, params).all()
        recommended = conn.execute(RECOMMEND_LABELS, params).all()
        labelled = conn.execute(SENTIMENT_LABELS, {"m": SENTIMENT, "n": settings.drift_window}).all()
    minimum = settings.online_min_labels
    out: list[Quality] = []
    difference: dict[str, Estimate] = {}
    ratings = latest_per_label((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rated)
    for (alias, version), by_review in sorted(ratings.items()):
        y = np.array([v[0] for v in by_review.values()], float)
        p = np.array([v[1] for v in by_review.values()], float)
        out.append(
            Quality(
                RATING,
                version,
                alias,
                health.bootstrap(health.rmse, [p, y], "rmse", minimum),
                _offline(RATING, version),
            )
        )
    hits = latest_per_label((r[0], None, r[2], r[3], r[4], r[1]) for r in recommended)
    for (alias, version), by_review in sorted(hits.items()):
        h = np.array([v[1] for v in by_review.values()], float)
        # offline: the rolling protocol's recall@10, the share of next items in the top 10
        estimate = health.bootstrap(health.hit_rate, [h], "hit_rate", minimum)
        out.append(Quality(RATING, version, alias, estimate, _offline(RATING, version, OFFLINE_HIT_RATE)))
    by_version: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for _, predicted, actual, alias, version in labelled:
        by_version[(alias, version)].append((predicted, actual))
    for (alias, version), pairs in sorted(by_version.items()):
        p, y = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
        out.append(
            Quality(
                SENTIMENT,
                version,
                alias,
                health.bootstrap(health.macro_f1, [p, y], "macro_f1", minimum),
                _offline(SENTIMENT, version),
            )
        )
    paired = _paired_rmse(ratings, minimum)
    if paired is not None:
        difference[RATING] = paired
    return out, difference


def _paired_rmse(ratings: dict[tuple[str, str], dict[int, tuple]], minimum: int) -> Estimate | None:
    """Challenger RMSE minus champion RMSE on the reviews both scored (the newest versions of each)."""
    champions = [k for k in ratings if k[0] == "champion"]
    challengers = [k for k in ratings if k[0] == "challenger"]
    if not champions or not challengers:
        return None
    a, b = (
        ratings[max(champions, key=lambda k: int(k[1] or 0))],
        ratings[max(challengers, key=lambda k: int(k[1] or 0))],
    )
    common = sorted(set(a) & set(b))
    y = np.array([a[r][0] for r in common], float)
    pa, pb = np.array([a[r][1] for r in common], float), np.array([b[r][1] for r in common], float)
    return health.bootstrap(lambda y, pa, pb: health.rmse(pb, y) - health.rmse(pa, y), [y, pa, pb], "rmse", minimum)


OFFLINE_HIT_RATE = "rolling_test_recall_at_10"


_OFFLINE: dict[tuple, float | None] = {}  # a version's logged metrics never change


def _offline(name: str, version: str | None, metric: str | None = None) -> float | None:
    """The version's offline test figure: its headline metric, or `metric` of its run."""
    if not version:
        return None
    key = (name, version, metric)
    if key not in _OFFLINE:
        try:
            info = version_info(name, version)
            if metric is None:
                value = info.value
            else:
                from mlflow import MlflowClient

                value = MlflowClient().get_run(info.run_id).data.metrics.get(metric)
        except Exception:  # noqa: BLE001 - a deleted version, or MLflow down: no figure this time
            return None
        _OFFLINE[key] = value
    return _OFFLINE[key]


def latency_and_errors(engine: sa.Engine, name: str, n: int) -> dict[str, ShadowSummary]:
    """p95 latency and error share per alias over the newest n answers of each, on the
    routes the challenger is shadowed on."""
    out = {}
    with engine.connect() as conn:
        for alias in ("champion", "challenger"):
            rows = conn.execute(
                sa.text(
                    # the model's own time where logged (the champion's answer also reads the stores)
                    "SELECT coalesce((prediction ->> 'model_ms')::float, latency_ms), error IS NOT NULL"
                    " FROM request_log WHERE model = :m AND alias = :a"
                    " AND route = ANY(:routes) ORDER BY request_id DESC LIMIT :n"
                ),
                {"m": name, "a": alias, "routes": [*ROUTES[name], "shadow"], "n": n},
            ).all()
            if rows:
                latency = np.array([r[0] for r in rows if r[0] is not None], float)
                out[alias] = ShadowSummary(
                    float(np.percentile(latency, 95)) if len(latency) else None,
                    float(np.mean([r[1] for r in rows])),
                    len(rows),
                )
    return out


def agreement(engine: sa.Engine, name: str, n: int) -> dict[str, float | None]:
    """The challenger's agreement with the champion on the requests it shadowed:
    mean |rating difference| (/rating), top-k overlap (/recommend), label agreement."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT route, prediction FROM request_log WHERE model = :m AND alias = 'challenger'"
                " AND error IS NULL ORDER BY request_id DESC LIMIT :n"
            ),
            {"m": name, "n": n},
        ).all()
    diffs: list[float] = []
    overlaps: list[float] = []
    agree: list[bool] = []
    for route, p in rows:
        p = p or {}
        if route == "/rating" and "champion" in p:
            diffs.extend(abs(a - b) for a, b in zip(p["ratings"], p["champion"]))
        elif route == "/recommend" and "overlap" in p:
            overlaps.append(p["overlap"])
        elif "champion" in p and "labels" in p:
            agree.extend(a == b for a, b in zip(p["labels"], p["champion"]))
    return {
        "rating_difference": float(np.mean(diffs)) if diffs else None,
        "topk_overlap": float(np.mean(overlaps)) if overlaps else None,
        "label_agreement": float(np.mean(agree)) if agree else None,
        "shadowed": float(len(rows)),
    }


def higher_is_better(metric: str) -> bool:
    return metric != "rmse"
