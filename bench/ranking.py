"""Portrait's blend beside popularity and the classic recommenders, under the three
protocols `portrait train rating` measures (training.rating.protocols): rolling
next-item (the headline), leave-one-out with full ranking (the field's), and the
frozen next-period snapshot. NDCG@10 as a ratio to popularity on test with a 95%
paired-bootstrap interval over users; every setting chosen on validation.

Beside the blend (transitions + EASE + text + popularity, as /recommend serves it)
and its parts, two classic recommenders the blend does not use: item-kNN (cosine
on the user-item matrix) and RP3beta (Paudel et al. 2017), each plus popularity,
both dense item x item (this bench only: fine at thousands of items). Reads the
reviews, events and review embeddings (run `portrait features build` first); a
minute or two.

    .venv/bin/python bench/ranking.py [--train-before 2014-01-01 --test-from 2014-01-01]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

import common  # bench/common.py (bench/ is on sys.path when a script runs)
import numpy as np
import scipy.sparse as sp

from portrait.settings import get_settings
from registry.recommender import ItemGraph, user_item_matrix
from training.common import TimeSplit
from training.rating import RatingConfig
from training.rating.protocols import (
    POPULARITY,
    EvalSet,
    Shop,
    choose_weights,
    evaluate,
    paired_ratio,
    prepare,
    sample_units,
)
from training.rating.ranking import protocol_sets, run_protocol

RP3_BETA = (0.3, 0.5, 0.7)


def add_classic_parts(shop: Shop, es: EvalSet, event_weights: dict[str, float]) -> None:
    """item-kNN and RP3beta scores (units x items) fit on the set's fit data, each row
    divided by its maximum, as the blend's parts are."""
    x = user_item_matrix(shop.inter.subset(es.fit), event_weights, users=len(shop.users)).astype(np.float64)
    n = x.shape[1]
    count = np.asarray((x > 0).sum(axis=0)).ravel().astype(float)
    co = (x.T @ x).toarray()
    np.fill_diagonal(co, 0.0)
    knn = co / np.sqrt(np.outer(count, count) + 1e-9)
    rows, cols, vals = [], [], []
    for r, h in enumerate(es.histories):
        items = shop.inter.item[h]
        rows += [r] * len(items)
        cols += items.tolist()
        vals += [1.0] * len(items)
    hist = sp.csr_matrix((vals, (rows, cols)), shape=(len(es), n))
    hist.data[:] = 1.0
    p_ui = sp.diags(1.0 / np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1e-12)) @ x
    p_iu = sp.diags(1.0 / np.maximum(count, 1.0)) @ x.T
    walk = (p_iu @ p_ui).toarray()
    np.fill_diagonal(walk, 0.0)

    def unit(m: np.ndarray) -> np.ndarray:
        top = m.max(axis=1, keepdims=True)
        return np.where(top > 0, m / np.where(top > 0, top, 1.0), 0.0)

    es.parts["item_knn"] = unit(np.asarray(hist @ knn))
    for beta in RP3_BETA:
        es.parts[f"rp3beta_{beta}"] = unit(np.asarray(hist @ (walk / np.maximum(count, 1.0)[None, :] ** beta)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-before", help="YYYY-MM-DD (default: the quantile split, as training)")
    parser.add_argument("--test-from", help="YYYY-MM-DD")
    args = parser.parse_args()
    day = lambda s: datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=timezone.utc) if s else None
    split = TimeSplit(day(args.train_before), day(args.test_from))
    cfg = RatingConfig()
    engine = common.engine(get_settings())
    shop = Shop.load(engine)
    print(f"{len(shop.inter):,} interactions, {len(shop.users):,} users, {len(shop.inter.items):,} items")
    for name, (make_val, make_test) in protocol_sets(shop, split).items():
        result, test = run_protocol(shop, name, make_val, make_test, cfg)
        val_set = sample_units(make_val(), cfg.ranking_units, cfg.seed)
        val = prepare(shop, val_set, ItemGraph.fit(shop.inter.subset(val_set.fit), result.params))
        weights = result.params["event_weights"]
        add_classic_parts(shop, val, weights)
        add_classic_parts(shop, test, weights)
        pop = evaluate(test, POPULARITY, cfg.k)
        rows = {"popularity": (1.0, 1.0, 1.0)}
        rows["item-kNN + popularity"] = paired_ratio(
            evaluate(test, choose_weights(val, cfg.k, ("item_knn", "popularity"))[0], cfg.k).ndcg,
            pop.ndcg,
            test.unit_user,
        )
        best_rp3 = max(
            (choose_weights(val, cfg.k, (f"rp3beta_{b}", "popularity")) for b in RP3_BETA), key=lambda wv: wv[1]
        )[0]
        rows["RP3beta + popularity"] = paired_ratio(evaluate(test, best_rp3, cfg.k).ndcg, pop.ndcg, test.unit_user)
        rows.update({k.replace("+", " + ").replace("item_item", "EASE"): v for k, v in result.classic.items()})
        rows["Portrait blend (/recommend)"] = result.ratio["ndcg"]
        rows.update({f"  blend {k.replace('item_item', 'EASE')}": v for k, v in result.ablation.items()})
        print(f"\n{name}: {result.units:,} test cases, {result.users:,} users (NDCG@10 vs popularity, test)")
        print(f"  popularity NDCG@10 {result.popularity['ndcg']:.4f}; blend {result.blend['ndcg']:.4f}")
        for label, (ratio, low, high) in rows.items():
            print(f"  {label:<34}{ratio:>7.2f}x  [{low:.2f}, {high:.2f}]")


if __name__ == "__main__":
    with common.recorded("ranking"):
        main()
