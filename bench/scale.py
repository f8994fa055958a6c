"""Scale: the whole pipeline on synthetic shops of growing size, stage by stage.

For each size (reviews; as many events; users and items at the real data's ratios,
7.2 reviews per user and 11.4 per item), on a scratch database of the profile's server:

- synth: `portrait synth` writes the shop (not a pipeline stage; shown for scale)
- ingest: reviews + events rows/s
- build: `portrait features build`, full; its embedding step reuses the embedding of
  every text already embedded (content hash): the resampled texts come from 10,261 real
  reviews, so the build embeds at most that many texts at any size
- embed: the encoder's reviews/s on 512 of the shop's texts, and the projected time to
  embed every review of the size if each text were unique (the real cost of a real shop)
- delta build / delta materialize: 1% more reviews and events from the last days, then an
  incremental build and `materialize-incremental`, against the full runs
- materialize: full, into PostgreSQL and into Redis, rows/s: Portrait's settings (the
  latest row per entity pulled in the offline store; COPY into PostgreSQL) beside stock
  Feast's on the same rows
- join: Feast's point-in-time join of rating_v1 for up to 10^5 label rows
- materialize_pg_ray (--ray): the same full materialization into PostgreSQL through
  Feast's ray.engine on a local Ray (PORTRAIT_ENGINE=ray; its start-up included)
- online read: 1 user + 100 items through Portrait's reader, p99
- item snapshot: the serving process's start-up load of every item and its candidate
  index (seconds, MB); /recommend against catalog size is bench/recommend.py

Prints a table, the growth exponent of each stage between the two largest sizes
(cost ~ N^e), and writes a log-log PNG of cost against size.

    .venv/bin/python bench/scale.py [--sizes 10000,100000] [--redis-url redis://127.0.0.1:6379/14] [--ray] [--no-stock]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # bench/common.py (bench/ is on sys.path when a script runs)
from common import online_rows, scratch_database, scratch_feast

from portrait.featurestore import repo as featurestore

T = TypeVar("T")
REVIEWS_PER_USER, REVIEWS_PER_ITEM = 7.18, 11.4  # the real Amazon data's ratios
STAGES = [
    "ingest",
    "build",
    "embed_projected",
    "delta_build",
    "materialize_pg",
    "delta_materialize_pg",
    "materialize_redis",
    "materialize_pg_stock",
    "materialize_redis_stock",
    "materialize_pg_ray",
    "join",
    "online_read_p99",
    "item_snapshot",
]


def timed(fn: Callable[..., T], *args, **kw) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def run_size(
    n: int, real, work: Path, redis_url: str, seed: int, ray: bool = False, stock: bool = True
) -> dict[str, float]:
    from portrait.features.build import build_features
    from portrait.ingest.loader import ingest_file
    from portrait.ops import synth
    from portrait.text.encoder import Encoder, review_text
    from serving.online import OnlineReader
    from training.rating import FEATURE_SERVICE, label_rows

    users, items = max(1, round(n / REVIEWS_PER_USER)), max(1, round(n / REVIEWS_PER_ITEM))
    out: dict[str, float] = {"reviews": n, "users": users, "items": items}
    t, shop = timed(synth.generate, real, work / f"n{n}", users=users, items=items, reviews=n, events=n, seed=seed)
    out["synth_s"] = t
    key = b"bench-pseudonymization-key-32-bytes-long"
    with scratch_database() as settings:
        engine = common.engine(settings)
        try:
            t1, _ = timed(ingest_file, engine, "amazon-reviews", shop.reviews_path, key, progress=False)
            t2, _ = timed(ingest_file, engine, "events", shop.events_path, key, progress=False)
            out["ingest"] = t1 + t2
            out["ingest_rows_per_s"] = (shop.reviews + shop.events) / (t1 + t2)
            t, result = timed(build_features, engine, progress=False)
            out["build"] = t
            with engine.connect() as conn:
                out["texts_embedded"] = float(
                    conn.execute(sa.text("SELECT count(DISTINCT text_hash) FROM review_embeddings")).scalar() or 0
                )
                sample = conn.execute(sa.text("SELECT summary, text FROM reviews ORDER BY random() LIMIT 512")).all()
            encoder = Encoder.load()
            texts = [review_text(s, t) for s, t in sample]
            encoder.embed(texts[:64])  # warm-up
            t, _ = timed(encoder.embed, texts)
            out["embed_reviews_per_s"] = len(texts) / t
            out["embed_projected"] = n / out["embed_reviews_per_s"]  # every review a unique text

            rows = online_rows(engine)
            out["online_rows"] = rows
            # stock Feast beside it, on the same rows (a registry and online store of its own)
            if stock:
                with scratch_feast(settings) as stock_overrides:
                    featurestore.apply(settings, stock_overrides)
                    t, _ = timed(featurestore.materialize, settings, full=True, overrides=stock_overrides, stock=True)
                    out["materialize_pg_stock"], out["materialize_pg_stock_rows_per_s"] = t, rows / t
            if ray:  # Feast's ray.engine on a local Ray (PORTRAIT_RAY_CPUS), the same rows; Ray's start-up included
                ray_settings = settings.model_copy(update={"engine": "ray"})
                try:
                    with scratch_feast(settings) as ray_overrides:
                        featurestore.apply(ray_settings, ray_overrides)
                        t, _ = timed(featurestore.materialize, ray_settings, full=True, overrides=ray_overrides)
                        out["materialize_pg_ray"], out["materialize_pg_ray_rows_per_s"] = t, rows / t
                except Exception as err:  # noqa: BLE001 - the other stages still count; the failure is printed
                    print(f"materialize_pg_ray failed: {type(err).__name__}: {err}", flush=True)
            with scratch_feast(settings) as overrides:
                featurestore.apply(settings, overrides)
                t, _ = timed(featurestore.materialize, settings, full=True, overrides=overrides)
                out["materialize_pg"], out["materialize_pg_rows_per_s"] = t, rows / t

                store = featurestore.feature_store(settings, overrides)
                labels = label_rows(engine)
                labels = labels.sample(min(len(labels), 100_000), random_state=0)
                entity_df = labels[["user_id", "item_id", "event_timestamp", "request_unix"]]
                t, _ = timed(
                    featurestore.historical_features, store, entity_df, store.get_feature_service(FEATURE_SERVICE)
                )
                out["join"], out["join_rows"] = t, len(entity_df)

                reader = OnlineReader(store)
                t, snapshot = timed(reader.refresh_items)  # what serving does at start-up
                out["item_snapshot"] = t
                out["item_snapshot_mb"] = snapshot.nbytes / 2**20
                out["item_snapshot_items_per_s"] = len(snapshot.item_ids) / t
                with engine.connect() as conn:
                    user_ids = (
                        conn.execute(sa.text("SELECT DISTINCT user_id FROM user_text_profile LIMIT 200"))
                        .scalars()
                        .all()
                    )
                rng = np.random.default_rng(0)
                samples = []
                for r in range(300):
                    cands = list(rng.choice(snapshot.item_ids, size=min(100, len(snapshot.item_ids)), replace=False))
                    start = time.perf_counter()
                    reader.affinity(reader.user(user_ids[r % len(user_ids)]), cands)
                    samples.append(time.perf_counter() - start)
                out["online_read_p99"] = float(np.percentile(samples, 99))

                # 1% new activity, then the incremental build and materialization
                delta = synth.generate(
                    real,
                    work / f"n{n}-delta",
                    users=users,
                    items=items,
                    reviews=max(1, n // 100),
                    events=max(1, n // 100),
                    seed=seed + 1,
                    recent_days=3,
                    progress=False,
                )
                ingest_file(engine, "amazon-reviews", delta.reviews_path, key, progress=False)
                ingest_file(engine, "events", delta.events_path, key, progress=False)
                t, delta_result = timed(build_features, engine, progress=False)
                out["delta_build"] = t
                out["delta_users_rebuilt"] = delta_result.users_rebuilt
                out["full_users_rebuilt"] = result.users_rebuilt
                t, _ = timed(featurestore.materialize, settings, overrides=overrides)
                out["delta_materialize_pg"] = t

            import redis

            redis_settings = settings.model_copy(update={"redis_url": redis_url})
            for label, is_stock in (("materialize_redis_stock", True), ("materialize_redis", False)):
                if is_stock and not stock:
                    continue
                redis.Redis.from_url(redis_url).flushdb()
                try:
                    with scratch_feast(settings) as overrides:
                        featurestore.apply(redis_settings, overrides)
                        t, _ = timed(
                            featurestore.materialize, redis_settings, full=True, overrides=overrides, stock=is_stock
                        )
                        out[label], out[f"{label}_rows_per_s"] = t, rows / t
                finally:
                    redis.Redis.from_url(redis_url).flushdb()
        finally:
            engine.dispose()
    return out


def exponent(a: float, b: float, na: float, nb: float) -> float:
    return math.log(b / a) / math.log(nb / na) if a > 0 and b > 0 else float("nan")


def report(results: list[dict[str, float]], png: Path) -> None:
    sizes = [r["reviews"] for r in results]
    print("\nstage                     " + "".join(f"{int(n):>14,}" for n in sizes) + "   exponent (two largest)")
    for stage in STAGES:
        values = [r.get(stage, float("nan")) for r in results]
        exp = exponent(values[-2], values[-1], sizes[-2], sizes[-1]) if len(values) > 1 else float("nan")
        unit = "ms" if stage == "online_read_p99" else "s"
        shown = [v * 1000 if unit == "ms" else v for v in values]
        print(f"{stage + ' (' + unit + ')':<26}" + "".join(f"{v:>14,.2f}" for v in shown) + f"   {exp:>6.2f}")
    print("\nrates and context")
    for name in (
        "users",
        "items",
        "ingest_rows_per_s",
        "texts_embedded",
        "embed_reviews_per_s",
        "online_rows",
        "materialize_pg_rows_per_s",
        "materialize_pg_stock_rows_per_s",
        "materialize_pg_ray_rows_per_s",
        "materialize_redis_rows_per_s",
        "materialize_redis_stock_rows_per_s",
        "join_rows",
        "full_users_rebuilt",
        "delta_users_rebuilt",
        "item_snapshot_mb",
        "item_snapshot_items_per_s",
        "synth_s",
    ):
        print(f"{name:<30}" + "".join(f"{r.get(name, float('nan')):>14,.1f}" for r in results))
    print("\nmaterialization, Portrait's settings against stock Feast (same rows, same run)")
    for store in ("pg", "redis"):
        speedups = [r.get(f"materialize_{store}_stock", np.nan) / r[f"materialize_{store}"] for r in results]
        print(f"{store + ' speed-up':<30}" + "".join(f"{v:>13.2f}x" for v in speedups))
    if any("materialize_pg_ray" in r for r in results):
        ratios = [r["materialize_pg"] / r.get("materialize_pg_ray", np.nan) for r in results]
        print(f"{'pg ray.engine / local':<30}" + "".join(f"{v:>13.2f}x" for v in ratios))
    print("\ndelta (1% new rows) against the full run")
    for stage, full in (("delta_build", "build"), ("delta_materialize_pg", "materialize_pg")):
        print(f"{stage:<30}" + "".join(f"{r[stage] / r[full]:>14.1%}" for r in results))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, stage in enumerate(STAGES):
        if all(stage not in r for r in results):
            continue  # a stage this run did not measure (materialize_pg_ray without --ray)
        ax.plot(
            sizes, [r.get(stage, np.nan) for r in results], marker="os^D"[i % 4], color=plt.cm.tab20(i), label=stage
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("reviews (and as many events)")
    ax.set_ylabel("seconds")
    ax.set_title("Portrait stage cost against shop size (this machine)")
    ax.legend(fontsize=7)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    print(f"\nlog-log plot: {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="reviews per size, comma-separated")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed before and after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray", action="store_true", help="also materialize through Feast's ray.engine")
    parser.add_argument(
        "--no-stock",
        action="store_true",
        help="skip stock Feast's materialization (it pulls every snapshot row: 22 GB and killed at 10^6 reviews here)",
    )
    parser.add_argument("--png", type=Path, default=Path("docs/scale.png"))
    args = parser.parse_args()
    from portrait.ops import synth
    from portrait.settings import get_settings

    real = synth.load_real(get_settings().resolved_data_dir())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"size {n:,} reviews ...", flush=True)
            results.append(run_size(n, real, Path(tmp), args.redis_url, args.seed, args.ray, not args.no_stock))
            print({k: round(v, 3) for k, v in results[-1].items()}, flush=True)
    report(results, args.png)


if __name__ == "__main__":
    with common.recorded("scale"):
        main()
