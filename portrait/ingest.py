"""Ingestion: stream a raw file, validate each line, bulk-load the good rows
with COPY (one transaction per batch) and set every malformed line aside in
ingest_rejects with its reason. read = loaded + rejected + duplicates, exactly."""

from __future__ import annotations

import contextlib
import gzip
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import sqlalchemy as sa

from portrait import parsing
from portrait.parsing import EventKeys, EventRow, ReviewRow, RowError

SOURCES = ("amazon-reviews", "purchases", "events")


@dataclass
class IngestCounts:
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0

    def add(self, other: IngestCounts) -> None:
        self.read += other.read
        self.loaded += other.loaded
        self.rejected += other.rejected
        self.duplicates += other.duplicates

    @property
    def reconciles(self) -> bool:
        return self.read == self.loaded + self.rejected + self.duplicates

    def summary(self) -> str:
        mark = "ok" if self.reconciles else "MISMATCH"
        return (
            f"read {self.read:,} = loaded {self.loaded:,} + rejected {self.rejected:,} "
            f"+ duplicates {self.duplicates:,} ({mark})"
        )


@dataclass(frozen=True)
class Reject:
    line_number: int
    raw: str
    reason: str


@dataclass
class Batch:
    rows: list[tuple[int, ReviewRow | EventRow]]
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejects)


def open_source(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(raw file, decompressed stream): gzip by magic number, not by name."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, which closes it
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw)
    return raw, stream


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, oversize) in constant memory: a line longer than
    MAX_LINE_BYTES is cut there and its rest skipped."""
    number = 0
    while True:
        line = stream.readline(parsing.MAX_LINE_BYTES)
        if not line:
            return
        number += 1
        oversize = len(line) >= parsing.MAX_LINE_BYTES and not line.endswith(b"\n")
        if oversize:
            while (rest := stream.readline(parsing.MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield number, line, oversize


Parser = Callable[[str, bytes], ReviewRow | EventRow]
PARSERS: dict[str, Parser] = {
    "amazon-reviews": parsing.parse_amazon_review,
    "purchases": parsing.parse_cdnow_purchase,
    "events": parsing.parse_event_csv,
}
HEADERS: dict[str, Callable[[str], bool]] = {
    "purchases": parsing.is_cdnow_header,
    "events": parsing.is_events_header,
}


def parse_batches(
    source: str, lines: Iterator[tuple[int, bytes, bool]], key: bytes, batch_size: int
) -> Iterator[Batch]:
    """Validate lines into batches of rows and rejects (pure: no database)."""
    parse, is_header = PARSERS[source], HEADERS.get(source)
    batch = Batch([], [])
    for number, raw, oversize in lines:
        try:
            if oversize:
                raise RowError(f"line is over {parsing.MAX_LINE_BYTES:,} bytes")
            line = parsing.decode_line(raw)
            if number == 1 and is_header is not None and is_header(line):
                continue  # the header is not a row
            batch.rows.append((number, parse(line, key)))
        except RowError as err:
            text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n").replace("\x00", "\\x00")
            batch.rejects.append(Reject(number, parsing.redact_raw(source, text, key), str(err)))
        if len(batch) >= batch_size:
            yield batch
            batch = Batch([], [])
    if len(batch):
        yield batch


def prefetch(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Parse the next batches in a thread while the current one loads: parsing is
    Python work, loading mostly waits on the server, so the two overlap."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        box.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread, which raises it
            box.put(err)

    worker = threading.Thread(target=produce, name="ingest-parse", daemon=True)
    worker.start()
    try:
        while (item := box.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


# Staging tables live per connection and empty themselves at commit.
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage_reviews (
    line_number bigint, user_id text, item_id text, rating smallint, summary text, text text,
    helpful_votes int, total_votes int, event_timestamp timestamptz) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_events (
    line_number bigint, event_key text, user_id text, item_id text, event_type text,
    quantity int, amount numeric(12, 2), event_timestamp timestamptz) ON COMMIT DELETE ROWS;
"""

# Users and items first (keeping the earliest first-seen time), then the rows;
# ON CONFLICT skips what an earlier run loaded, DISTINCT ON what repeats in the batch.
LOAD_REVIEWS = """
INSERT INTO users (user_id, first_seen_at)
    SELECT user_id, min(event_timestamp) FROM stage_reviews GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE SET first_seen_at = EXCLUDED.first_seen_at
    WHERE EXCLUDED.first_seen_at < users.first_seen_at;
INSERT INTO items (item_id, first_seen_at)
    SELECT item_id, min(event_timestamp) FROM stage_reviews GROUP BY item_id
    ON CONFLICT (item_id) DO UPDATE SET first_seen_at = EXCLUDED.first_seen_at
    WHERE EXCLUDED.first_seen_at < items.first_seen_at;
"""
LOAD_REVIEWS_ROWS = """
WITH new AS (
    INSERT INTO reviews (user_id, item_id, rating, summary, text, helpful_votes, total_votes, event_timestamp, run_id)
    SELECT DISTINCT ON (user_id, item_id) user_id, item_id, rating, summary, text, helpful_votes,
           total_votes, event_timestamp, %(run_id)s
    FROM stage_reviews ORDER BY user_id, item_id, line_number
    ON CONFLICT (user_id, item_id) DO NOTHING
    RETURNING review_id, user_id, item_id, event_timestamp
), review_events AS (
    INSERT INTO events (event_key, user_id, item_id, event_type, event_timestamp, run_id)
    SELECT 'review:' || user_id || ':' || item_id, user_id, item_id, 'review', event_timestamp, %(run_id)s FROM new
    ON CONFLICT (event_key) DO NOTHING
)
SELECT count(*), max(review_id) FROM new
"""
LOAD_EVENTS = """
INSERT INTO users (user_id, first_seen_at)
    SELECT user_id, min(event_timestamp) FROM stage_events GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE SET first_seen_at = EXCLUDED.first_seen_at
    WHERE EXCLUDED.first_seen_at < users.first_seen_at;
INSERT INTO items (item_id, first_seen_at)
    SELECT item_id, min(event_timestamp) FROM stage_events WHERE item_id IS NOT NULL GROUP BY item_id
    ON CONFLICT (item_id) DO UPDATE SET first_seen_at = EXCLUDED.first_seen_at
    WHERE EXCLUDED.first_seen_at < items.first_seen_at;
"""
LOAD_EVENTS_ROWS = """
WITH new AS (
    INSERT INTO events (event_key, user_id, item_id, event_type, quantity, amount, event_timestamp, run_id)
    SELECT DISTINCT ON (event_key) event_key, user_id, item_id, event_type, quantity, amount,
           event_timestamp, %(run_id)s
    FROM stage_events ORDER BY event_key, line_number
    ON CONFLICT (event_key) DO NOTHING
    RETURNING 1
)
SELECT count(*), NULL FROM new
"""


class Loader:
    """Loads batches over one psycopg connection: one transaction per batch, so a
    killed run leaves no half batch visible."""

    def __init__(self, conn, source: str, path: str, run_id: int) -> None:
        self.conn, self.source, self.path, self.run_id = conn, source, path, run_id
        self.event_keys = EventKeys()
        self.last_review_id: int | None = None  # of the last batch's new reviews
        with conn.cursor() as cur:
            cur.execute(STAGING_DDL)
        conn.commit()

    def load(self, batch: Batch) -> IngestCounts:
        counts = IngestCounts(read=len(batch), rejected=len(batch.rejects))
        with self.conn.transaction(), self.conn.cursor() as cur:
            if batch.rows:
                counts.loaded = self._copy_rows(cur, batch.rows)
            counts.duplicates = len(batch.rows) - counts.loaded
            if batch.rejects:
                with cur.copy(
                    "COPY ingest_rejects (run_id, source, path, line_number, raw, reason) FROM STDIN"
                ) as copy:
                    for r in batch.rejects:
                        copy.write_row((self.run_id, self.source, self.path, r.line_number, r.raw, r.reason))
            cur.execute(
                "UPDATE ingest_runs SET rows_read = rows_read + %s, rows_loaded = rows_loaded + %s, "
                "rows_rejected = rows_rejected + %s, rows_duplicate = rows_duplicate + %s WHERE run_id = %s",
                (counts.read, counts.loaded, counts.rejected, counts.duplicates, self.run_id),
            )
        return counts

    def _copy_rows(self, cur, rows: list[tuple[int, ReviewRow | EventRow]]) -> int:
        if isinstance(rows[0][1], ReviewRow):
            with cur.copy("COPY stage_reviews FROM STDIN") as copy:
                for n, r in rows:
                    assert isinstance(r, ReviewRow)  # one batch holds one kind of row
                    copy.write_row(
                        (
                            n,
                            r.user_id,
                            r.item_id,
                            r.rating,
                            r.summary,
                            r.text,
                            r.helpful_votes,
                            r.total_votes,
                            r.event_timestamp,
                        )
                    )
            cur.execute(LOAD_REVIEWS)
            cur.execute(LOAD_REVIEWS_ROWS, {"run_id": self.run_id})
        else:
            with cur.copy("COPY stage_events FROM STDIN") as copy:
                for n, r in rows:
                    assert isinstance(r, EventRow)  # one batch holds one kind of row
                    copy.write_row(
                        (
                            n,
                            self.event_keys.key(r),
                            r.user_id,
                            r.item_id,
                            r.event_type,
                            r.quantity,
                            r.amount,
                            r.event_timestamp,
                        )
                    )
            cur.execute(LOAD_EVENTS)
            cur.execute(LOAD_EVENTS_ROWS, {"run_id": self.run_id})
        loaded, self.last_review_id = cur.fetchone()
        return loaded


def start_run(conn, source: str, path: str) -> int:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ingest_runs (source, path, status) VALUES (%s, %s, 'running') RETURNING run_id", (source, path)
        )
        return cur.fetchone()[0]


def finish_run(conn, run_id: int, status: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("UPDATE ingest_runs SET status = %s, finished_at = now() WHERE run_id = %s", (status, run_id))


API_SOURCE, API_PATH = "api", "POST /reviews"


def items_seen(engine: sa.Engine, user_id: str) -> set[str]:
    """Items the user (pseudonym) has reviewed or acted on."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "SELECT item_id FROM reviews WHERE user_id = :u UNION "
                    "SELECT item_id FROM events WHERE user_id = :u AND item_id IS NOT NULL"
                ),
                {"u": user_id},
            ).scalars()
        )


def add_review(engine: sa.Engine, row: ReviewRow, run_id: int | None) -> tuple[int, int | None]:
    """One review from the HTTP API, through the same load path (and SQL) as a
    file's rows, counted in the API's own ingest run (started when run_id is None).
    Returns (run id, the new review_id or None when the user already reviewed the item)."""
    raw_conn = engine.raw_connection()
    conn: Any = raw_conn.driver_connection  # a psycopg connection (SQLAlchemy types it loosely)
    try:
        conn.autocommit = True  # transactions are explicit, as in ingest_file
        if run_id is None:
            run_id = start_run(conn, API_SOURCE, API_PATH)
        loader = Loader(conn, API_SOURCE, API_PATH, run_id)
        counts = loader.load(Batch(rows=[(1, row)], rejects=[]))
        return run_id, loader.last_review_id if counts.loaded else None
    finally:
        if not conn.closed:
            conn.autocommit = False
        raw_conn.close()


def ingest_file(
    engine: sa.Engine,
    source: str,
    path: Path,
    key: bytes,
    *,
    batch_size: int = 2000,
    progress: bool = True,
    loader_factory: type[Loader] = Loader,
) -> tuple[int, IngestCounts]:
    """Ingest one file; returns (run id, counts). The run row in ingest_runs is
    updated with every committed batch."""
    from tqdm import tqdm

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    stored_path = str(path.resolve())
    counts = IngestCounts()
    raw_conn = engine.raw_connection()
    conn: Any = raw_conn.driver_connection  # a psycopg connection (SQLAlchemy types it loosely)
    raw, stream = open_source(path)
    try:
        conn.autocommit = True  # transactions are explicit, one per batch
        run_id = start_run(conn, source, stored_path)
        loader = loader_factory(conn, source, stored_path, run_id)
        with tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"ingest {source}",
            disable=not progress,
            leave=False,
        ) as bar:
            try:
                for batch in prefetch(parse_batches(source, read_lines(stream), key, batch_size)):
                    counts.add(loader.load(batch))
                    bar.update(raw.tell() - bar.n)
                    bar.set_postfix(loaded=counts.loaded, rejected=counts.rejected, refresh=False)
            except BaseException:
                with contextlib.suppress(Exception):  # the connection itself may be what failed
                    finish_run(conn, run_id, "failed")
                raise
        finish_run(conn, run_id, "done")
        return run_id, counts
    finally:
        stream.close()
        raw.close()
        if not conn.closed:
            conn.autocommit = False  # the connection goes back to SQLAlchemy's pool as it came
        raw_conn.close()
