"""/recommend against catalog size: 10^3, 10^5 and 10^6 items, side by side.

Catalogs are SYNTHETIC but made of real text embeddings: the 10,261 real Amazon
reviews are embedded once with the shop's encoder (cached under the state
directory), and each synthetic item is the mean of a real item's count of reviews,
drawn mostly from one real product (portrait.ops.synth.catalog_embeddings); uniform
random vectors would make recall meaningless. Queries are the 1,429 real users'
mean review embeddings.

Each size runs in its own process (its memory is its own) and reports:
- start-up: the item snapshot and its candidate index built from the loaded arrays
  (the online store read before it is bench/scale.py's item_snapshot stage);
- memory: the process's resident set after start-up and the requests, with the
  serving imports (torch, pandas, MLflow, Feast, BentoML) loaded;
- the behaviour graph (registry.recommender: transitions and EASE, sparse top-k) fit
  on SYNTHETIC sessions of 3 interactions per item (items drawn by their review
  counts, each session's next item near the last one's row: co-interest), its fit
  time and memory;
- p50/p99 of /recommend's handler for one user with a 7-item history: the blend
  over the graph and the candidate index (serving.ranking.rank), the rating inputs
  and the rating model for the top 10 (a rating-predictor logged and loaded through
  MLflow pyfunc with serving's code, untrained weights and the fitted graph: the
  same work as a trained one); HTTP, the key gate, the user's Feast read and the
  history query are the same at every size and left out, so the ratio printed is
  an upper bound of the endpoint's;
- recall@100 of the candidate index against an exact pass over every item, text
  alone and with a popularity weight, and recall@10 of the served top 10 against
  the blend's exact pass (serving.ranking.exact).

    .venv/bin/python bench/recommend.py [--sizes 1000,100000,1000000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import common  # bench/common.py (bench/ is on sys.path when a script runs)
import numpy as np

if TYPE_CHECKING:
    from registry.rating_model import RankingWeights
    from registry.recommender import ItemGraph


# this script's folder comes first on sys.path, and bench/serving.py would shadow the serving package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

REQUESTS, USERS_FOR_RECALL, SEEN, CANDIDATES, K = 400, 200, 7, 100, 10
WEIGHTS: dict[str, RankingWeights] = {
    "default": {"affinity": 1.0, "popularity": 0.0},
    "popularity": {"affinity": 1.0, "popularity": 0.25},
}
# the blend the English demo's validation chose (long histories)
BLEND = {"transitions": 2.0, "item_item": 4.0, "text": 8.0, "popularity": 1.0}
SESSION = 6  # interactions per synthetic shopper
EXACT_SAMPLES = 20  # requests checked against the exact pass (a scan of every item's vector each)


def real_review_embeddings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, item, user) of every real review; embedded once per encoder."""
    from portrait.ops.synth import AMAZON
    from portrait.settings import get_settings
    from portrait.text.encoder import Encoder, default_model_path, encoder_name, review_text

    settings = get_settings()
    model = settings.encoder or str(default_model_path())
    cache = settings.state_dir / "bench" / f"real_reviews_{encoder_name(model).replace('/', '_')}.npz"
    if not cache.exists():
        with gzip.open(settings.resolved_data_dir() / AMAZON, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        print(f"embedding {len(records):,} real reviews once (cached in {cache}) ...", flush=True)
        texts = [review_text(r.get("summary") or "", r.get("reviewText") or "") for r in records]
        vectors = Encoder.load(model).embed(texts, progress=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            embedding=vectors,
            item=np.array([r["asin"] for r in records]),
            user=np.array([r["reviewerID"] for r in records]),
        )
    found = np.load(cache)
    return found["embedding"], found["item"], found["user"]


def serving_contract():
    """What serving reads, from the feature repo's own service definitions."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "feature_repo"))
    import portrait_features as repo

    from serving.online import ServingContract

    def refs(service, views) -> list[str]:
        return [f"{p.name}:{f.name}" for p in service.feature_view_projections if p.name in views for f in p.features]

    return ServingContract(
        user_refs=refs(repo.profile_v1, {"user_behavior", "user_text_profile"}),
        item_refs=refs(repo.recommend_v1, {"item_stats", "item_text_profile"}),
        rating_features=[f.name for p in repo.rating_v1.feature_view_projections for f in p.features],
    )


def synthetic_graph(counts: np.ndarray, seed: int) -> ItemGraph:
    """The behaviour graph fit on SYNTHETIC sessions: n/2 shoppers of SESSION
    interactions, the first item drawn by review count, each next one near the last
    (within 50 rows, the synthetic catalog's neighbourhoods) half of the time."""
    from registry.recommender import DEFAULT_PARAMS, Interactions, ItemGraph

    rng = np.random.default_rng(seed)
    n = len(counts)
    shoppers = max(1, n // 2)
    p = counts / counts.sum()
    first = rng.choice(n, size=shoppers, p=p)
    steps = np.where(rng.random((shoppers, SESSION - 1)) < 0.5, rng.integers(-50, 51, (shoppers, SESSION - 1)), 0)
    jumps = rng.choice(n, size=(shoppers, SESSION - 1), p=p)
    items = np.empty((shoppers, SESSION), dtype=np.int64)
    items[:, 0] = first
    for j in range(1, SESSION):
        near = np.clip(items[:, j - 1] + steps[:, j - 1], 0, n - 1)
        items[:, j] = np.where(steps[:, j - 1] != 0, near, jumps[:, j - 1])
    kinds = rng.choice(4, size=items.shape, p=[0.4, 0.2, 0.1, 0.3])
    inter = Interactions(
        np.repeat(np.arange(shoppers), SESSION),
        items.ravel(),
        np.tile(np.arange(SESSION, dtype=float), shoppers),
        kinds.ravel(),
        [f"synthetic-item-{i:07d}" for i in range(n)],
    )
    return ItemGraph.fit(inter, DEFAULT_PARAMS)


def rating_model(features: list[str], graph: ItemGraph, tmp: Path):
    """rating-predictor's MLflow pyfunc (registry/rating_model.py), untrained weights, the graph."""
    import mlflow
    import pandas as pd
    import torch

    from registry.rating_model import DERIVED, build_net
    from registry.recommender import DEFAULT_PARAMS

    names = [*features, *DERIVED]
    spec: dict[str, Any] = {
        "features": names,
        "mean": dict.fromkeys(names, 0.0),
        "std": dict.fromkeys(names, 1.0),
        "indicators": list(names),
        "hidden": [32, 16],
        "target_mean": 4.2,
        "target_std": 1.0,
        "n_inputs": 2 * len(names),
        "recommend": {"weights": {"short": BLEND, "long": BLEND}, "params": DEFAULT_PARAMS, "short_history": 2},
    }
    torch.manual_seed(0)
    torch.save(build_net(spec["n_inputs"], spec["hidden"]).state_dict(), tmp / "weights.pt")
    (tmp / "spec.json").write_text(json.dumps(spec))
    graph.save(str(tmp / "neighbours.npz"))
    code = Path(__file__).resolve().parents[1] / "registry" / "rating_model.py"
    mlflow.pyfunc.save_model(
        tmp / "model",
        python_model=str(code),
        artifacts={
            "weights": str(tmp / "weights.pt"),
            "spec": str(tmp / "spec.json"),
            "neighbours": str(tmp / "neighbours.npz"),
        },
        input_example=pd.DataFrame({name: [1.0, 2.0] for name in features}),
    )
    return mlflow.pyfunc.load_model(str(tmp / "model"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(n: int, seed: int) -> dict[str, float]:
    """One catalog size, in this process."""
    import feast  # noqa: F401 - serving's imports, for a serving-like resident set

    from portrait.features.rating_inputs import affinity, normalize
    from portrait.ops.synth import catalog_embeddings
    from registry.rating_model import ranking_prior, top_candidates
    from registry.recommender import EVENT_TYPES
    from serving.online import ItemSnapshot, OnlineReader
    from serving.ranking import GraphRows, exact, rank

    vectors, review_items, review_users = real_review_embeddings()
    users, owner = np.unique(review_users, return_inverse=True)
    queries = normalize(np.stack([vectors[owner == u].mean(0) for u in range(len(users))]))
    emb, counts = catalog_embeddings(vectors, review_items, n, seed=seed)

    # the exact candidates first, from the float32 catalog (then freed: serving never holds it)
    truth: dict[str, list[np.ndarray]] = {}
    allowed = np.ones(n, dtype=bool)
    for name, weights in WEIGHTS.items():
        truth[name] = []
        for q in queries[:USERS_FOR_RECALL]:
            prior = ranking_prior(affinity(q[None, :], emb)[0], counts, weights)
            truth[name].append(top_candidates(prior, allowed, CANDIDATES))
    staged = emb.astype(np.float16) if n >= 20_000 else emb  # as the snapshot load stages them
    del emb
    rng = np.random.default_rng(seed)
    stats = {
        "item_review_count": counts,
        "item_rating_mean": np.clip(rng.normal(4.2, 0.6, n), 1, 5),
        "item_rating_trend": np.where(rng.random(n) < 0.3, rng.normal(0, 0.3, n), np.nan),
        "item_popularity_rank": (np.argsort(np.argsort(-counts, kind="stable")) + 1).astype(float),
    }
    item_ids = [f"synthetic-item-{i:07d}" for i in range(n)]
    start = time.perf_counter()
    snapshot = ItemSnapshot(item_ids, staged, stats)
    startup = time.perf_counter() - start
    del staged

    out: dict[str, float] = {"items": n, "startup_s": startup, "index_mb": snapshot.nbytes / 2**20}
    for name, weights in WEIGHTS.items():
        found = [
            snapshot.candidates.top(q, weights, np.array([], dtype=np.int64), CANDIDATES)
            for q in queries[:USERS_FOR_RECALL]
        ]
        out[f"recall_{name}"] = float(np.mean([len(set(f) & set(t)) / CANDIDATES for f, t in zip(found, truth[name])]))

    start = time.perf_counter()
    graph = synthetic_graph(counts, seed)
    out["graph_fit_s"] = time.perf_counter() - start
    out["graph_mb"] = graph.nbytes / 2**20
    contract = serving_contract()
    reader = OnlineReader(store=None, contract=contract, items=snapshot)
    graph_rows = GraphRows()
    with tempfile.TemporaryDirectory() as tmp:
        model = rating_model(contract.rating_features, graph, Path(tmp))
        blend_model = model.unwrap_python_model()
        schema = model.metadata.get_input_schema().input_names()
        now = time.time()
        samples, hits, checked = [], [], []
        for r in range(REQUESTS + 20):
            q = normalize(np.asarray(queries[r % len(queries)])[None, :])[0]
            user = {
                "user_embedding": q.tolist(),
                "rating_mean": 4.0,
                "review_count_total": 7,
                "last_activity_unix": now - 86400 * 30,
                "share_positive": 0.8,
            }
            seen = rng.choice(n, min(SEEN, n), replace=False)
            history = [(item_ids[j], EVENT_TYPES[int(rng.integers(0, 4))]) for j in seen]

            t0 = time.perf_counter()
            excluded = snapshot.rows([i for i, _ in history])
            ranked = rank(snapshot, blend_model, graph_rows, history, q, excluded, K)
            frame = reader.rating_inputs(user, [item_ids[j] for j in ranked.rows], now)
            model.predict(frame[schema])
            if r >= 20:  # after a warm-up
                samples.append(time.perf_counter() - t0)
            if r < EXACT_SAMPLES:
                checked.append((history, q, excluded, ranked.rows))
        out["rss_mb"] = rss_mb()  # before the exact pass, whose scan of every vector is the bench's, not serving's
        # after the timings: the exact pass reads every item's vector back from the index
        for history, q, excluded, served in checked:
            want = exact(snapshot, blend_model, graph_rows, history, q, excluded, K)
            hits.append(len(set(want.tolist()) & set(served.tolist())) / K)
    out["recall_served"] = float(np.mean(hits))
    out["p50_ms"] = float(np.percentile(samples, 50) * 1000)
    out["p99_ms"] = float(np.percentile(samples, 99) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="catalog sizes (items), comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.seed)), flush=True)
        return
    real_review_embeddings()  # embed once, before the sizes
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"catalog of {n:,} items ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)],
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"size {n} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(line[7:]))
        print(results[-1], flush=True)
    first = results[0]
    print(f"\n{'items':<28}" + "".join(f"{int(r['items']):>14,}" for r in results))
    for key, label in (
        ("startup_s", "start-up: snapshot + index (s)"),
        ("index_mb", "index + item arrays (MB)"),
        ("rss_mb", "process resident set (MB)"),
        ("p50_ms", "handler p50 (ms)"),
        ("p99_ms", "handler p99 (ms)"),
        ("recall_default", "recall@100, default weights"),
        ("recall_popularity", "recall@100, popularity 0.25"),
        ("graph_fit_s", "graph fit (s)"),
        ("graph_mb", "graph (MB)"),
        ("recall_served", "served top 10 vs exact pass"),
    ):
        print(f"{label:<28}" + "".join(f"{r[key]:>14,.3f}" for r in results))
    for q in ("p50", "p99"):
        ratios = "".join(f"{r[f'{q}_ms'] / first[f'{q}_ms']:>13.2f}x" for r in results)
        print(f"{q + ' / ' + q + ' at smallest':<28}" + ratios)


if __name__ == "__main__":
    with common.recorded("recommend"):
        main()
