"""Ingest throughput: the project's path (COPY into staging, set-based INSERT
... ON CONFLICT, one transaction per batch) against a naive baseline (the same
parsing and validation, one INSERT per row), on the real Amazon file, side by side.

    .venv/bin/python bench/ingest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # bench/common.py (bench/ is on sys.path when a script runs)
from common import scratch_database

from portrait.ingest.loader import Batch, Loader, ingest_file
from portrait.ingest.parsing import ReviewRow
from portrait.settings import get_settings

AMAZON = "amazon_musical_instruments_5core/reviews_Musical_Instruments_5.json.gz"


class NaiveLoader(Loader):
    """The baseline: every row is its own INSERT statements (user, item, review,
    review event), rejects one INSERT each; still one commit per batch."""

    def load(self, batch: Batch):
        from portrait.ingest.loader import IngestCounts
        from portrait.privacy.pseudonyms import seal

        counts = IngestCounts(read=len(batch), rejected=len(batch.rejects))
        with self.conn.transaction(), self.conn.cursor() as cur:
            for _, r, _ in batch.rows:
                assert isinstance(r, ReviewRow)  # the baseline loads reviews only
                cur.execute("INSERT INTO users VALUES (%s, %s) ON CONFLICT DO NOTHING", (r.user_id, r.event_timestamp))
                cur.execute("INSERT INTO items VALUES (%s, %s) ON CONFLICT DO NOTHING", (r.item_id, r.event_timestamp))
                cur.execute(
                    "INSERT INTO reviews (user_id, item_id, rating, summary, text, helpful_votes, total_votes, "
                    "event_timestamp, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (user_id, item_id) DO NOTHING RETURNING 1",
                    (
                        r.user_id,
                        r.item_id,
                        r.rating,
                        r.summary,
                        r.text,
                        r.helpful_votes,
                        r.total_votes,
                        r.event_timestamp,
                        self.run_id,
                    ),
                )
                if cur.fetchone():
                    counts.loaded += 1
                    cur.execute(
                        "INSERT INTO events (event_key, user_id, item_id, event_type, event_timestamp, run_id) "
                        "VALUES (%s, %s, %s, 'review', %s, %s) ON CONFLICT DO NOTHING",
                        (f"review:{r.user_id}:{r.item_id}", r.user_id, r.item_id, r.event_timestamp, self.run_id),
                    )
            for rej in batch.rejects:
                cur.execute(
                    "INSERT INTO ingest_rejects (run_id, source, path, line_number, user_id, raw_sealed, reason) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.run_id,
                        self.source,
                        self.path,
                        rej.line_number,
                        rej.user_id,
                        seal(rej.raw, self.key),
                        rej.reason,
                    ),
                )
            counts.duplicates = len(batch.rows) - counts.loaded
        return counts


def timed_run(settings, path: Path, loader) -> tuple[float, int]:
    engine = common.engine(settings)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE ingest_rejects, events, reviews, items, users, ingest_runs RESTART IDENTITY CASCADE"
        )
    start = time.perf_counter()
    _, counts = ingest_file(
        engine,
        "amazon-reviews",
        path,
        b"bench-key",
        batch_size=get_settings().ingest_batch_size,
        progress=False,
        loader_factory=loader,
    )
    elapsed = time.perf_counter() - start
    engine.dispose()
    assert counts.reconciles and counts.loaded == counts.read, counts.summary()
    return elapsed, counts.loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    path = (args.data_dir or get_settings().resolved_data_dir()) / AMAZON
    if not path.exists():
        sys.exit(f"no data at {path}: set PORTRAIT_DATA_DIR")
    with scratch_database() as settings:
        # interleaved so that drift on a busy machine hits both sides alike
        results: dict[str, list[float]] = {"copy": [], "naive": []}
        rows = 0
        for _ in range(args.repeat):
            for name, loader in (("copy", Loader), ("naive", NaiveLoader)):
                elapsed, rows = timed_run(settings, path, loader)
                results[name].append(rows / elapsed)
    copy, naive = statistics.median(results["copy"]), statistics.median(results["naive"])
    print(
        f"ingest bench: {rows:,} real Amazon reviews, median of {args.repeat} interleaved runs, "
        f"profile {get_settings().profile}"
    )
    print(f"  {'path':<36}{'rows/s':>10}")
    print(f"  {'portrait (COPY + set-based insert)':<36}{copy:>10,.0f}")
    print(f"  {'naive (one INSERT per row)':<36}{naive:>10,.0f}")
    print(f"  ratio portrait / naive: {copy / naive:.1f}x (target >= 10x)")


if __name__ == "__main__":
    with common.recorded("ingest"):
        main()
