"""The request log: what each answer served (route, pseudonymous user, items, model
name / version / alias, prediction, latency, the numeric inputs the model used),
written to PostgreSQL's request_log off the request path.

A request only puts its entry on a bounded queue (never blocks: when the queue is
full the entry is dropped and counted in `portrait_request_log_dropped_total`); one
writer thread inserts the queue in batches and deletes rows older than the
retention. Entries carry pseudonyms only, never the shop's user ids."""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa

log = logging.getLogger("portrait.serving")
BATCH = 500  # entries per INSERT
PRUNE_EVERY_S = 600.0  # how often the writer deletes rows past the retention
MAX_LOGGED_ROWS = 20  # feature rows kept per answer: a summary, not the whole candidate set

INSERT = sa.text(
    "INSERT INTO request_log (logged_at, route, user_id, items, model, version, alias, prediction, latency_ms,"
    " features, error) VALUES (:logged_at, :route, :user_id, :items, :model, :version, :alias,"
    " CAST(:prediction AS jsonb), :latency_ms, CAST(:features AS jsonb), :error)"
)


@dataclass
class Entry:
    route: str
    model: str
    version: str | None
    prediction: dict[str, Any]
    latency_ms: float
    user_id: str | None = None
    items: list[str] | None = None
    alias: str = "champion"
    features: dict[str, list[float | None]] | None = None
    error: str | None = None
    logged_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self) -> dict[str, Any]:
        return {
            "logged_at": self.logged_at,
            "route": self.route,
            "user_id": self.user_id,
            "items": self.items,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "prediction": json.dumps(self.prediction, default=_plain),
            "latency_ms": self.latency_ms,
            "features": json.dumps(self.features, default=_plain) if self.features is not None else None,
            "error": self.error,
        }


def feature_summary(frame, limit: int = MAX_LOGGED_ROWS) -> dict[str, list[float | None]]:
    """The numeric columns of a model's input frame, first `limit` rows, as plain lists
    (what drift compares with the training set's bins)."""
    out: dict[str, list[float | None]] = {}
    head = frame.head(limit)
    for name in head.columns:
        try:
            values = head[name].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            continue  # not numeric (a text, a vector): drift is over numbers
        out[name] = [None if not np.isfinite(v) else round(float(v), 6) for v in values]
    return out


class RequestLog:
    """The bounded queue and its writer thread (started on the first entry)."""

    def __init__(self, engine: sa.Engine | None, capacity: int, retention_days: int) -> None:
        self.engine = engine
        self.retention = timedelta(days=retention_days)
        self._queue: queue.Queue[Entry] = queue.Queue(maxsize=capacity)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0
        self.dropped = 0  # this process's drops (also a Prometheus counter)
        self.written = 0
        self._idle = threading.Condition()

    def put(self, entry: Entry) -> bool:
        """Queue the entry; False (and counted) when the queue is full. Never blocks."""
        if self.engine is None:
            return False
        self._ensure_writer()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            _dropped_counter().inc()
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                self._idle.wait(0.05)
        return not self._queue.unfinished_tasks

    def _ensure_writer(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_forever, name="request-log-writer", daemon=True)
                self._thread.start()

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception as err:  # noqa: BLE001 - a dead database loses this batch (counted), never the service
                self.dropped += len(batch)
                _dropped_counter().inc(len(batch))
                log.warning("request log: %d entries not written: %s", len(batch), str(err)[:200])
            finally:
                for _ in batch:
                    self._queue.task_done()
                with self._idle:
                    self._idle.notify_all()

    def _write(self, batch: list[Entry]) -> None:
        assert self.engine is not None
        with self.engine.begin() as conn:
            conn.execute(INSERT, [e.row() for e in batch])
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                prune(conn, datetime.now(timezone.utc) - self.retention)
                self._pruned_at = time.monotonic()
        self.written += len(batch)


def prune(conn, before: datetime) -> int:
    """Delete the log's rows older than `before` (the retention)."""
    return conn.execute(sa.text("DELETE FROM request_log WHERE logged_at < :before"), {"before": before}).rowcount


@functools.cache
def _dropped_counter():
    from prometheus_client import Counter

    return Counter("portrait_request_log_dropped", "Request log entries dropped (queue full or database down)")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
