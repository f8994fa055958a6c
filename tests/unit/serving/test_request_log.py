"""The request log's queue: bounded, dropping (and counting) instead of blocking."""

import threading
import time

from serving.request_log import Entry, RequestLog, feature_summary


class SlowEngine:
    """An engine whose inserts wait until released: the queue fills behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows: list[dict] = []

    def begin(self):
        engine = self

        class Tx:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, statement, rows=None):
                engine.release.wait(5)
                if isinstance(rows, list):
                    engine.rows.extend(rows)

                class R:
                    rowcount = 0

                return R()

        return Tx()


def entry(i: int) -> Entry:
    return Entry("/rating", "rating-predictor", "1", {"ratings": [float(i)]}, 1.0, user_id="u", items=["i"])


def test_a_full_queue_drops_and_counts_without_blocking():
    engine = SlowEngine()
    log = RequestLog(engine, capacity=5, retention_days=30)  # type: ignore[arg-type]
    started = time.perf_counter()
    accepted = [log.put(entry(i)) for i in range(50)]
    assert time.perf_counter() - started < 0.5  # 50 puts against a stuck database: never waited
    # the queue holds 5, and the writer holds at most one batch (what it took off the queue) in flight
    assert sum(accepted) <= 10 and log.dropped == 50 - sum(accepted) >= 40
    engine.release.set()
    assert log.flush(5)
    assert len(engine.rows) == sum(accepted)


def test_feature_summary_keeps_numbers_only_and_bounds_the_rows():
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": np.arange(50.0), "b": [None] * 50, "text": ["x"] * 50})
    frame.loc[3, "a"] = np.nan
    got = feature_summary(frame, limit=20)
    assert set(got) == {"a", "b"} and len(got["a"]) == 20
    assert got["a"][3] is None and got["b"][0] is None
