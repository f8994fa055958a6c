"""Feature store benchmarks, each measured side by side with its baseline:

1. Embedding job: reviews/s of the encoder on real reviews with batches sorted
   by length and padded per batch (in float32, and in the job's precision: bf16
   where the CPU has it), against the same encoder in float32 padding every batch
   to 128 tokens. Also on short texts (review summaries).
2. Materialization: rows/s into each online store (PostgreSQL, Redis).
3. Online read of recommend_v1 for 1 user + 100 items (384-d embeddings),
   in-process, p50 / p99 on each online store: Portrait's reader (user from
   Feast, items from the in-process snapshot) against stock Feast
   (get_online_features on the feature service) and the naive path (one
   get_online_features call per feature view and entity).

Needs the features built on the profile's database (portrait features build).
Feast's registry and online store go to a scratch database (dropped after);
Redis uses --redis-url (default db 14, which is flushed).

    .venv/bin/python bench/features.py [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # bench/common.py (bench/ is on sys.path when a script runs)
from common import online_rows, scratch_feast

from portrait.featurestore import repo as featurestore
from portrait.settings import get_settings


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)) * 1000, float(np.percentile(samples, 99)) * 1000


def bench_embedding(engine, sample: int) -> None:
    """The embedding job's way (batches sorted by length, padded per batch; bf16
    where the hardware has it) against the same encoder in float32 padding every
    batch to 128 tokens; each on the same texts, interleaved."""
    import torch

    from portrait.text.encoder import Encoder, resolve_precision, review_text

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT summary, text FROM reviews ORDER BY review_id")).all()
    if not rows:
        sys.exit("no reviews: run portrait ingest first")
    step = max(1, len(rows) // sample)
    reviews = [review_text(s, t) for s, t in rows[::step][:sample]]
    summaries = [s for s, _ in rows[::step][:sample]]
    encoder = Encoder.load(precision="float32")
    job_precision = resolve_precision("auto")
    encoder.embed(reviews[:32])  # warm-up
    print(
        f"embedding: {encoder.name}, {len(reviews)} real reviews sampled evenly, CPU threads "
        f"{torch.get_num_threads()}; the job's precision here: {job_precision}"
    )
    job = f"sorted, {'bf16' if job_precision == 'bfloat16' else 'f32'} (job)"
    ways: dict[str, tuple[str, dict[str, Any]]] = {
        "sorted, f32": ("float32", {}),
        job: (job_precision, {}),
        "pad 128, f32": ("float32", {"pad_to": 128}),
    }
    print(f"  {'texts':<26}" + "".join(f"{w:>20}" for w in ways) + f"{'ratio f32':>11}{'ratio job':>11}")
    full_length = encoder.max_length
    for label, texts, max_length in (
        ("reviews, ours up to 256", reviews, full_length),
        ("reviews, both cut at 128", reviews, 128),
        ("summaries (short)", summaries, full_length),
    ):
        rates = {}
        for way, (precision, kw) in ways.items():
            encoder.precision = precision
            encoder.max_length = full_length if "pad_to" in kw else max_length
            start = time.perf_counter()
            encoder.embed(texts, **kw)
            rates[way] = len(texts) / (time.perf_counter() - start)
        encoder.max_length, encoder.precision = full_length, "float32"
        base = rates["pad 128, f32"]
        print(
            f"  {label:<26}"
            + "".join(f"{r:>14,.0f} rev/s" for r in rates.values())
            + f"{rates['sorted, f32'] / base:>10.1f}x{rates[job] / base:>10.1f}x"
        )
    if job_precision != "float32":
        encoder.precision = job_precision
        low = encoder.embed(reviews)
        encoder.precision = "float32"
        cosine = (low * encoder.embed(reviews)).sum(axis=1)
        print(f"  {job_precision} against float32 embeddings: cosine min {cosine.min():.5f}, mean {cosine.mean():.5f}")


def bench_online(settings, engine, online: str, redis_url: str, requests: int, n_items: int) -> dict:
    from serving.online import OnlineReader

    if online == "redis":
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        settings = settings.model_copy(update={"redis_url": redis_url})
    with scratch_feast(settings) as overrides:
        featurestore.apply(settings, overrides)
        rows = online_rows(engine)
        start = time.perf_counter()
        featurestore.materialize(settings, full=True, overrides=overrides)
        mat_rate = rows / (time.perf_counter() - start)
        store = featurestore.feature_store(settings, overrides)
        with engine.connect() as conn:
            users = (
                conn.execute(
                    sa.text("SELECT user_id FROM user_text_profile GROUP BY user_id ORDER BY count(*) DESC LIMIT 50")
                )
                .scalars()
                .all()
            )
            items = conn.execute(sa.text("SELECT DISTINCT item_id FROM item_text_profile")).scalars().all()
        rng = np.random.default_rng(0)
        now = int(datetime.now(timezone.utc).timestamp())
        service = store.get_feature_service("recommend_v1")
        reader = OnlineReader(store)
        reader.items()  # the snapshot loads once, at start-up

        def ours(user, cands):
            u = reader.user(user)
            return reader.affinity(u, cands)

        def stock(user, cands):
            return store.get_online_features(
                features=service, entity_rows=[{"user_id": user, "item_id": i, "request_unix": now} for i in cands]
            ).to_dict()

        def naive(user, cands):
            u = store.get_online_features(
                features=["user_text_profile:user_embedding"], entity_rows=[{"user_id": user}]
            ).to_dict()
            for i in cands:
                store.get_online_features(
                    features=["item_text_profile:item_embedding"], entity_rows=[{"item_id": i}]
                ).to_dict()
                store.get_online_features(
                    features=[f"item_stats:{s}" for s in ("item_review_count", "item_rating_mean")],
                    entity_rows=[{"item_id": i}],
                ).to_dict()
            return u

        samples: dict[str, list[float]] = {"ours": [], "stock": [], "naive": []}
        for r in range(requests):
            user = users[r % len(users)]
            cands = list(rng.choice(items, size=n_items, replace=False))
            # interleaved, so machine noise hits every path alike; naive is slow: every 10th request
            for label, fn in (("ours", ours), ("stock", stock), ("naive", naive)):
                if label == "naive" and r % 10:
                    continue
                start = time.perf_counter()
                fn(user, cands)
                samples[label].append(time.perf_counter() - start)
        return {
            "materialize_rows_per_s": mat_rate,
            "rows": rows,
            **{k: percentiles(v) for k, v in samples.items()},
            "n": {k: len(v) for k, v in samples.items()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--sample", type=int, default=512, help="reviews for the embedding benchmark")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--skip-embedding", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    engine = common.engine(settings)
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT count(*) FROM item_text_profile")).scalar():
            sys.exit("no features: run portrait features build first")
    if not args.skip_embedding:
        bench_embedding(engine, args.sample)
    results = {
        online: bench_online(settings, engine, online, args.redis_url, args.requests, args.items)
        for online in ("postgres", "redis")
    }
    print(f"materialization (full, {results['postgres']['rows']:,} entity rows):")
    for online, r in results.items():
        print(f"  {online:<9}{r['materialize_rows_per_s']:>10,.0f} rows/s")
    print(f"online read, recommend_v1 inputs for 1 user + {args.items} items, in-process, ms:")
    print(f"  {'store':<9}{'path':<44}{'p50':>8}{'p99':>8}{'p99 vs ours':>13}")
    for online, r in results.items():
        for label, name in (
            ("ours", "portrait reader (user + item snapshot)"),
            ("stock", "stock Feast get_online_features(recommend_v1)"),
            ("naive", f"naive: one call per view and entity ({1 + 2 * args.items})"),
        ):
            p50, p99 = r[label]
            print(f"  {online:<9}{name:<44}{p50:>8.1f}{p99:>8.1f}{p99 / r['ours'][1]:>12.1f}x")


if __name__ == "__main__":
    with common.recorded("features"):
        main()
