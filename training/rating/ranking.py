"""/recommend's ranking, chosen and measured: the blend of transitions, EASE
item-item, the text portrait and popularity (registry.recommender), its weights and
graph parameters chosen on each protocol's validation period, reported on its test
period beside popularity and the classic recommenders it is made of, with the
ablation that shows what each part (the review text above all) adds.

The served blend is the rolling protocol's (it asks what /recommend answers: the
next item from the history up to now), with its own weights for users with a short
history (cold start by portrait, chosen on validation like the rest); its graph is
refit on every interaction for serving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from registry.rating_model import RecommendSpec
from registry.recommender import DEFAULT_PARAMS, PARTS, BlendWeights, GraphParams, ItemGraph
from training.common import TimeSplit
from training.rating.config import RatingConfig
from training.rating.protocols import (
    POPULARITY,
    EvalSet,
    Shop,
    UnitMetrics,
    as_blend,
    blended,
    choose_params,
    choose_weights,
    evaluate,
    frozen,
    leave_one_out,
    paired_ratio,
    prepare,
    rolling,
    sample_units,
    unit_metrics,
    user_rows,
)

PROTOCOLS = {
    "rolling": "rolling next-item: each test review from the history up to it, models fit before the test period",
    "loo": "leave-one-out: each user's last review, full ranking (as RecBole, SASRec, Recformer)",
    "frozen": "frozen snapshot: everything known at the test period's start against each user's new items in it",
}
CLASSIC = {  # the classic recommenders the blend is made of, each with popularity, chosen on validation alike
    "transitions+popularity": ("transitions", "popularity"),
    "item_item+popularity": ("item_item", "popularity"),
    "text+popularity": ("text", "popularity"),
}
METRICS = ("ndcg", "recall", "mrr")
GUARD_LEVEL = 0.8  # the validation interval a blend's gain over popularity must clear


@dataclass(frozen=True)
class ProtocolResult:
    """One protocol's test figures: each metric's ratio to popularity with its 95% interval."""

    name: str
    units: int
    users: int
    blend: dict[str, float]  # metric -> value
    popularity: dict[str, float]
    ratio: dict[str, tuple[float, float, float]]  # metric -> (ratio, low, high)
    classic: dict[str, tuple[float, float, float]]  # recommender -> NDCG ratio with interval
    ablation: dict[str, tuple[float, float, float]]  # "without <part>" -> NDCG ratio with interval
    weights: dict[str, BlendWeights]  # segment -> weights
    params: GraphParams

    @property
    def best_classic(self) -> tuple[str, float]:
        name = max(self.classic, key=lambda n: self.classic[n][0])
        return name, self.classic[name][0]


def short_history(es: EvalSet, cfg: RatingConfig) -> np.ndarray:
    return es.history_length() <= cfg.short_history


def segment_scores(es: EvalSet, weights: dict[str, dict[str, float]], short: np.ndarray) -> np.ndarray:
    """The blend with each unit's segment's weights."""
    return np.where(short[:, None], blended(es, weights["short"]), blended(es, weights["long"]))


def _metrics(es: EvalSet, weights: dict[str, dict[str, float]], cfg: RatingConfig) -> UnitMetrics:
    assert es.allowed is not None
    return unit_metrics(segment_scores(es, weights, short_history(es, cfg)), es.allowed, es.relevant, cfg.k)


def _both(w: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"short": w, "long": w}


def guarded(val: EvalSet, parts: tuple[str, ...], mask: np.ndarray, cfg: RatingConfig) -> dict[str, float]:
    """The weights chosen on the validation units in mask, kept only when validation
    says they help: the 80% paired-bootstrap interval of their NDCG@k against
    popularity's lies above 1 (GUARD_LEVEL: a validation period is short, and a 95%
    interval turned down blends that held on test). Otherwise popularity: a blend
    fit to noise loses to it on the next period (on a shop without sequential
    structure, or on the few cold-start users a validation period has)."""
    if not mask.any():
        return dict(POPULARITY)
    weights, _ = choose_weights(val, cfg.k, parts, mask=mask)
    if "popularity" not in parts:
        return weights  # the ablation without popularity has nothing to fall back to
    chosen = evaluate(val, weights, cfg.k).ndcg[mask]
    base = evaluate(val, POPULARITY, cfg.k).ndcg[mask]
    if not base.sum():  # popularity finds nothing: any hit is a gain
        return weights if chosen.sum() > 0 else dict(POPULARITY)
    _, low, _ = paired_ratio(chosen, base, val.unit_user[mask], seed=cfg.seed, level=GUARD_LEVEL)
    return weights if low > 1.0 else dict(POPULARITY)


def run_protocol(shop: Shop, name: str, make_val, make_test, cfg: RatingConfig) -> tuple[ProtocolResult, EvalSet]:
    """Choose on validation (graph parameters, then the blend per segment, the
    classic recommenders and the ablation each re-chosen the same way), report on test."""
    val_of = lambda: sample_units(make_val(), cfg.ranking_units, cfg.seed)
    test_of = lambda: sample_units(make_test(), cfg.ranking_units, cfg.seed)
    params, _, val = choose_params(shop, val_of, DEFAULT_PARAMS, cfg.k)
    short = short_history(val, cfg)

    def by_segment(parts: tuple[str, ...] = PARTS) -> dict[str, dict[str, float]]:
        """Weights chosen for each history segment on its own validation units
        (popularity for a segment validation has no units of, or no clear gain on)."""
        return {seg: guarded(val, parts, m, cfg) for seg, m in (("long", ~short), ("short", short))}

    weights = by_segment()
    test_set = test_of()
    test = prepare(shop, test_set, ItemGraph.fit(shop.inter.subset(test_set.fit), params))
    pop = _metrics(test, _both(POPULARITY), cfg)
    blend = _metrics(test, weights, cfg)
    users = test.unit_user

    def ratio(m: UnitMetrics, metric: str = "ndcg") -> tuple[float, float, float]:
        return paired_ratio(getattr(m, metric), getattr(pop, metric), users, seed=cfg.seed)

    everyone = np.ones(len(val), dtype=bool)
    classic = {
        label: ratio(_metrics(test, _both(guarded(val, parts, everyone, cfg)), cfg)) for label, parts in CLASSIC.items()
    }
    ablation = {}
    for part in PARTS:
        ablation[f"without {part}"] = ratio(_metrics(test, by_segment(tuple(p for p in PARTS if p != part)), cfg))
    return (
        ProtocolResult(
            name,
            len(test),
            len(np.unique(users)),
            blend.mean(),
            pop.mean(),
            {m: ratio(blend, m) for m in METRICS},
            classic,
            ablation,
            {seg: as_blend(w) for seg, w in weights.items()},
            params,
        ),
        test,
    )


def cold_start(test: EvalSet, result: ProtocolResult, cfg: RatingConfig) -> tuple[float, float, float, int]:
    """The blend against popularity on test users with a short history (<= cfg.short_history
    prior interactions): NDCG ratio, interval, units."""
    short = short_history(test, cfg)
    if not short.any():
        return float("nan"), float("nan"), float("nan"), 0
    sub = EvalSet(
        test.name,
        test.fit,
        test.unit_user[short],
        [h for h, s in zip(test.histories, short) if s],
        [r for r, s in zip(test.relevant, short) if s],
        {k: v[short] for k, v in test.parts.items()},
        test.allowed[short] if test.allowed is not None else None,
    )
    w = {seg: dict(v) for seg, v in result.weights.items()}
    m = _metrics(sub, w, cfg)
    p = _metrics(sub, _both(POPULARITY), cfg)
    return (*paired_ratio(m.ndcg, p.ndcg, sub.unit_user, seed=cfg.seed), int(short.sum()))


def protocol_metrics(result: ProtocolResult, cold: tuple | None = None) -> dict[str, float]:
    """The MLflow metrics of one protocol, prefixed with its name."""
    p, k = result.name, 10
    out: dict[str, float] = {f"{p}_test_units": result.units, f"{p}_test_users": result.users}
    for metric in METRICS:
        ratio, low, high = result.ratio[metric]
        out[f"{p}_test_{metric}_at_{k}"] = result.blend[metric]
        out[f"{p}_test_popularity_{metric}_at_{k}"] = result.popularity[metric]
        out[f"{p}_test_{metric}_at_{k}_vs_popularity"] = ratio
        out[f"{p}_test_{metric}_at_{k}_vs_popularity_low"] = low
        out[f"{p}_test_{metric}_at_{k}_vs_popularity_high"] = high
    for label, (ratio, low, high) in {**result.classic, **result.ablation}.items():
        key = label.replace(" ", "_").replace("+", "_")
        out[f"{p}_test_ndcg_vs_popularity_{key}"] = ratio
        out[f"{p}_test_ndcg_vs_popularity_{key}_low"] = low
        out[f"{p}_test_ndcg_vs_popularity_{key}_high"] = high
    if cold is not None:
        out[f"{p}_test_short_history_ndcg_vs_popularity"] = cold[0]
        out[f"{p}_test_short_history_ndcg_vs_popularity_low"] = cold[1]
        out[f"{p}_test_short_history_ndcg_vs_popularity_high"] = cold[2]
        out[f"{p}_test_short_history_units"] = cold[3]
    for seg, w in result.weights.items():
        for part, value in w.items():
            out[f"{p}_weight_{seg}_{part}"] = float(value)
    out[f"{p}_recency"] = float(result.params["recency"])
    out[f"{p}_ease_lambda"] = float(result.params["ease_lambda"])
    return out


@dataclass
class RankingOutcome:
    results: dict[str, ProtocolResult]
    cold_start: tuple[float, float, float, int]
    metrics: dict[str, float]
    spec: RecommendSpec
    graph: ItemGraph


def protocol_sets(shop: Shop, split: TimeSplit) -> dict[str, tuple[Callable[[], EvalSet], Callable[[], EvalSet]]]:
    """Each protocol's (validation, test) evaluation sets, made on demand; the split's
    dates resolved on the reviews when it has none."""
    times = pd.to_datetime(pd.Series((shop.inter.t[shop.is_review] * 1e9).astype("int64")), utc=True)
    resolved = split.resolved(times)
    tb = pd.Timestamp(resolved.train_before).timestamp()
    tf = pd.Timestamp(resolved.test_from).timestamp()
    return {
        "rolling": (lambda: rolling(shop, tb, tf, "val"), lambda: rolling(shop, tf, None, "test")),
        "loo": (lambda: leave_one_out(shop, 2, "val"), lambda: leave_one_out(shop, 1, "test")),
        "frozen": (lambda: frozen(shop, tb, tf, "val"), lambda: frozen(shop, tf, None, "test")),
    }


def ranking_eval(engine: sa.Engine, split: TimeSplit, cfg: RatingConfig) -> RankingOutcome:
    """The three protocols on the shop's interactions (reviews and item events) and
    the served blend: the rolling protocol's, its graph refit on everything."""
    shop = Shop.load(engine)
    makers = protocol_sets(shop, split)
    results, metrics, cold = {}, {}, (float("nan"), float("nan"), float("nan"), 0)
    for name, (make_val, make_test) in makers.items():
        result, test = run_protocol(shop, name, make_val, make_test, cfg)
        results[name] = result
        if name == "rolling":
            cold = cold_start(test, result, cfg)
        metrics.update(protocol_metrics(result, cold if name == "rolling" else None))
    served = results["rolling"]
    graph = ItemGraph.fit(shop.inter, served.params)
    spec = RecommendSpec(
        weights={seg: dict(w) for seg, w in served.weights.items()},
        params=served.params,
        short_history=cfg.short_history,
        protocol="rolling",
    )
    metrics["graph_items"] = len(graph.items)
    metrics["graph_bytes"] = graph.nbytes
    return RankingOutcome(results, cold, metrics, spec, graph)


def describe(outcome: RankingOutcome) -> list[str]:
    """The lines `portrait train rating` and the demo print: each protocol's NDCG@10,
    Recall@10 and MRR@10 against popularity with intervals, the classic recommenders
    beside it, the ablation and the cold start."""
    lines = []
    for name, r in outcome.results.items():
        ratios = "; ".join(
            f"{m.upper()}@10 {r.ratio[m][0]:.2f}x [{r.ratio[m][1]:.2f}, {r.ratio[m][2]:.2f}]" for m in METRICS
        )
        lines.append(f"  {name} ({r.units} test cases, {r.users} users): blend vs popularity {ratios}")
        classic = ", ".join(f"{n} {v[0]:.2f}x" for n, v in r.classic.items())
        lines.append(f"    classic (NDCG@10 vs popularity): {classic}")
        ablation = ", ".join(f"{n} {v[0]:.2f}x" for n, v in r.ablation.items())
        lines.append(f"    ablation: {ablation}")
    c = outcome.cold_start
    lines.append(
        f"  cold start (rolling, <= 2 prior interactions, {c[3]} cases): {c[0]:.2f}x popularity [{c[1]:.2f}, {c[2]:.2f}]"
    )
    w = outcome.spec["weights"]
    lines.append(
        "  served blend (rolling, chosen on validation): "
        + "; ".join(f"{seg}: " + ", ".join(f"{p} {v:g}" for p, v in ws.items()) for seg, ws in w.items())
    )
    return lines


def ranking_now(shop: Shop, graph: ItemGraph, spec: RecommendSpec, users: list[str], k: int) -> dict[str, list]:
    """Each user's top k as the evaluation ranks with every interaction known now (the
    fit data and the user's whole history): what /recommend serves once the features
    are materialized. graph: the served model's (over the shop's items). Returns
    user -> [(item, score)], best first (scores, to tell a tie from a different order)."""
    if graph.items != shop.inter.items:
        raise ValueError("the graph was fit on another item set than the shop has now")
    wanted = set(users)
    rows = {shop.users[c]: r for c, r in user_rows(shop.inter).items() if shop.users[c] in wanted}
    es = EvalSet(
        "now",
        np.ones(len(shop.inter), dtype=bool),
        np.array([shop.users.index(u) for u in rows]),
        list(rows.values()),
        [np.zeros(0, np.int64)] * len(rows),
    )
    prepare(shop, es, graph)
    short = es.history_length() <= spec["short_history"]
    scores = segment_scores(es, spec["weights"], short)
    assert es.allowed is not None
    out = {}
    for r, user in enumerate(rows):
        allowed = np.flatnonzero(es.allowed[r])
        top = allowed[np.argsort(-scores[r, allowed], kind="stable")[:k]]
        out[user] = [(shop.inter.items[j], float(scores[r, j])) for j in top]
    return out
