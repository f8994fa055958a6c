"""Ingestion: stream a raw file, validate each line, bulk-load the good rows
with COPY (one transaction per batch) and set every malformed line aside in
ingest_rejects with its reason. read = loaded + rejected + duplicates, exactly."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from portrait.ingest import imports, parsing
from portrait.ingest.flags import flag_templates, placeholder_counts
from portrait.ingest.lines import open_source, read_lines
from portrait.ingest.parsing import EventKeys, EventRow, ReviewRow, RowError
from portrait.privacy.idkey import check_key
from portrait.privacy.pseudonyms import seal
from portrait.settings import get_settings

SOURCES = ("amazon-reviews", "purchases", "events", "reviews")  # reviews: a shop's own export (portrait.ingest.imports)


@dataclass
class IngestCounts:
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    forgotten: int = 0  # rows of users erased by `portrait forget` (tombstoned), skipped
    placeholders: int = 0  # of the loaded reviews, those whose text the shopper did not write (kept, flagged)

    def add(self, other: IngestCounts) -> None:
        self.read += other.read
        self.loaded += other.loaded
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.forgotten += other.forgotten
        self.placeholders += other.placeholders

    @property
    def reconciles(self) -> bool:
        return self.read == self.loaded + self.rejected + self.duplicates + self.forgotten

    def summary(self) -> str:
        mark = "ok" if self.reconciles else "MISMATCH"
        return (
            f"read {self.read:,} = loaded {self.loaded:,} + rejected {self.rejected:,} "
            f"+ duplicates {self.duplicates:,} + forgotten {self.forgotten:,} ({mark})"
            + (f"; {self.placeholders:,} of the loaded are placeholder texts (flagged)" if self.placeholders else "")
        )


@dataclass(frozen=True)
class Reject:
    line_number: int
    raw: str  # in memory only: stored sealed (portrait.privacy.pseudonyms.seal)
    reason: str
    user_id: str | None = None  # the pseudonym, where the line's user could be located


Row = tuple[int, ReviewRow | EventRow, str]  # (line number, row, the line as read)


@dataclass
class Batch:
    rows: list[Row]
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejects)


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
        text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        if number == 1 and is_header is not None and not oversize:
            try:
                if is_header(parsing.decode_line(raw)):
                    continue  # the header is not a row
            except RowError:
                pass  # not a header: parsed (and rejected) below

        def row(raw: bytes = raw, oversize: bool = oversize) -> ReviewRow | EventRow:
            if oversize:
                raise RowError(f"line is over {parsing.MAX_LINE_BYTES:,} bytes")
            return parse(parsing.decode_line(raw), key)

        add_unit(batch, number, text, row)
        if len(batch) >= batch_size:
            yield batch
            batch = Batch([], [])
    if len(batch):
        yield batch


def add_unit(batch: Batch, number: int, raw: str, row: Callable[[], ReviewRow | EventRow]) -> None:
    """One line or record into the batch: its row, or, whatever went wrong with it,
    its reject with the reason. No single input can end a run."""
    try:
        batch.rows.append((number, row(), raw))
    except RowError as err:
        batch.rejects.append(Reject(number, raw, str(err), err.user_id))
    except RecursionError:
        batch.rejects.append(Reject(number, raw, "nested too deep to parse"))
    except Exception as err:  # noqa: BLE001 - whatever one line does, it is that line's reject, not the run's end
        batch.rejects.append(Reject(number, raw, f"cannot parse the line ({type(err).__name__})"))


def record_batches(records: Iterator, parse: Callable, spec, key: bytes, batch_size: int) -> Iterator[Batch]:
    """Batches from a generic import's records (portrait.ingest.imports)."""
    batch = Batch([], [])
    for number, record, raw in records:

        def row(record=record) -> ReviewRow | EventRow:
            if isinstance(record, RowError):
                raise record
            return parse(record, spec, key)

        add_unit(batch, number, raw, row)
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
    helpful_votes int, total_votes int, event_timestamp timestamptz, language text, placeholder text,
    text_fingerprint bytea) ON COMMIT DELETE ROWS;
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
    INSERT INTO reviews (user_id, item_id, rating, summary, text, helpful_votes, total_votes, event_timestamp, run_id,
                         language, placeholder, placeholder_at, text_fingerprint)
    SELECT DISTINCT ON (user_id, item_id) user_id, item_id, rating, summary, text, helpful_votes,
           total_votes, event_timestamp, %(run_id)s, language, placeholder,
           CASE WHEN placeholder IS NOT NULL THEN now() END, text_fingerprint
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
# Rows of users erased by `portrait forget` never come back (their tombstones).
SKIP_FORGOTTEN = "DELETE FROM {stage} s USING forgotten_users f WHERE s.user_id = f.user_id"
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


# Bounds of the integer and numeric column types (PostgreSQL's own ranges).
_INTEGER_BOUNDS = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}


def column_bounds(conn, table: str) -> dict[str, tuple[Decimal, str]]:
    """{column: (largest magnitude allowed, type name)} for the table's integer and
    numeric columns, read from the live schema: the one definition of what fits."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        bounds: dict[str, tuple[Decimal, str]] = {}
        for column, data_type, precision, scale in cur.fetchall():
            if data_type in _INTEGER_BOUNDS:
                bounds[column] = (Decimal(_INTEGER_BOUNDS[data_type]), data_type)
            elif data_type == "numeric" and precision is not None:
                largest = Decimal(10) ** (precision - (scale or 0)) - Decimal(10) ** -(scale or 0)
                bounds[column] = (largest, f"numeric({precision},{scale or 0})")
        return bounds


def out_of_range(row: ReviewRow | EventRow, bounds: dict[str, tuple[Decimal, str]], table: str) -> str | None:
    """The reason a row's value does not fit its column, or None."""
    for field in row.__slots__:
        value = getattr(row, field)
        if field in bounds and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            largest, type_name = bounds[field]
            if Decimal(value).copy_abs() > largest:
                return f"{field} {parsing.shown(value)} is out of range for {table}.{field} ({type_name})"
    return None


class Loader:
    """Loads batches over one psycopg connection: one transaction per batch, so a
    killed run leaves no half batch visible. A row the database refuses (a range
    or constraint error) is found by splitting the batch and set aside with the
    database's reason; only failures of the run itself (connection, disk) raise."""

    def __init__(self, conn, source: str, path: str, run_id: int, key: bytes) -> None:

        self.conn, self.source, self.path, self.run_id, self.key = conn, source, path, run_id, key
        check_key(conn, key)
        self.event_keys = EventKeys()
        self.batch_event_keys: dict[int, str] = {}
        self.last_review_id: int | None = None  # of the last batch's new reviews
        with conn.cursor() as cur:
            cur.execute(STAGING_DDL)
        self.bounds = {table: column_bounds(conn, table) for table in ("reviews", "events")}
        conn.commit()

    def load(self, batch: Batch) -> IngestCounts:
        rows, rejects = [], list(batch.rejects)
        for n, row, raw in batch.rows:
            table = "reviews" if isinstance(row, ReviewRow) else "events"
            reason = out_of_range(row, self.bounds[table], table)
            if reason:
                rejects.append(Reject(n, raw, reason, row.user_id))
            else:
                rows.append((n, row, raw))
        # keys now, in line order: a batch split after a database error must not renumber them
        self.batch_event_keys = {n: self.event_keys.key(row) for n, row, _ in rows if isinstance(row, EventRow)}
        return self._load(rows, rejects)

    def _load(self, rows: list[Row], rejects: list[Reject]) -> IngestCounts:
        import psycopg

        try:
            return self._commit(rows, rejects)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as err:
            if len(rows) <= 1:  # the row the database refuses: set aside with its reason
                reason = f"database refused the row: {err.diag.message_primary or type(err).__name__}"
                rejects += [Reject(n, raw, reason, row.user_id) for n, row, raw in rows]
                return self._commit([], rejects)
            half = len(rows) // 2
            counts = self._load(rows[:half], rejects)
            counts.add(self._load(rows[half:], []))
            return counts

    def _commit(self, rows: list[Row], rejects: list[Reject]) -> IngestCounts:

        counts = IngestCounts(read=len(rows) + len(rejects), rejected=len(rejects))
        with self.conn.transaction(), self.conn.cursor() as cur:
            if rows:
                counts.loaded, counts.forgotten = self._copy_rows(cur, rows)
            counts.duplicates = len(rows) - counts.loaded - counts.forgotten
            if rejects:
                with cur.copy(
                    "COPY ingest_rejects (run_id, source, path, line_number, user_id, raw_sealed, reason) FROM STDIN"
                ) as copy:
                    for r in rejects:
                        sealed = seal(r.raw, self.key)
                        copy.write_row(
                            (self.run_id, self.source, self.path, r.line_number, r.user_id, sealed, r.reason)
                        )
            cur.execute(
                "UPDATE ingest_runs SET rows_read = rows_read + %s, rows_loaded = rows_loaded + %s, "
                "rows_rejected = rows_rejected + %s, rows_duplicate = rows_duplicate + %s, "
                "rows_forgotten = rows_forgotten + %s, heartbeat_at = now() WHERE run_id = %s",
                (counts.read, counts.loaded, counts.rejected, counts.duplicates, counts.forgotten, self.run_id),
            )
        return counts

    def _copy_rows(self, cur, rows: list[Row]) -> tuple[int, int]:
        """(rows loaded, rows skipped because their user was forgotten)."""
        if isinstance(rows[0][1], ReviewRow):
            with cur.copy("COPY stage_reviews FROM STDIN") as copy:
                for n, r, _ in rows:
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
                            r.language,
                            r.placeholder,
                            r.text_fingerprint,
                        )
                    )
            forgotten = cur.execute(SKIP_FORGOTTEN.format(stage="stage_reviews")).rowcount
            cur.execute(LOAD_REVIEWS)
            cur.execute(LOAD_REVIEWS_ROWS, {"run_id": self.run_id})
        else:
            with cur.copy("COPY stage_events FROM STDIN") as copy:
                for n, r, _ in rows:
                    assert isinstance(r, EventRow)  # one batch holds one kind of row
                    copy.write_row(
                        (
                            n,
                            self.batch_event_keys[n],
                            r.user_id,
                            r.item_id,
                            r.event_type,
                            r.quantity,
                            r.amount,
                            r.event_timestamp,
                        )
                    )
            forgotten = cur.execute(SKIP_FORGOTTEN.format(stage="stage_events")).rowcount
            cur.execute(LOAD_EVENTS)
            cur.execute(LOAD_EVENTS_ROWS, {"run_id": self.run_id})
        loaded, self.last_review_id = cur.fetchone()
        return loaded, forgotten


def run_owner() -> tuple[str, int, datetime]:
    """This process as an ingest run's owner: (host, pid, process start time). The
    start time tells a reused pid from the process that opened the run."""
    import psutil

    return socket.gethostname(), os.getpid(), datetime.fromtimestamp(psutil.Process().create_time(), timezone.utc)


def start_run(conn, source: str, path: str) -> int:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ingest_runs (source, path, status, owner_host, owner_pid, owner_started_at, heartbeat_at) "
            "VALUES (%s, %s, 'running', %s, %s, %s, now()) RETURNING run_id",
            (source, path, *run_owner()),
        )
        return cur.fetchone()[0]


def finish_run(conn, run_id: int, status: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE ingest_runs SET status = %s, finished_at = now(), heartbeat_at = now() WHERE run_id = %s",
            (status, run_id),
        )


# A run on another host is presumed dead when it has not beaten for this long (the
# API beats with its champion poll, every 30 s; a file ingest with every batch).
STALE_HEARTBEAT = timedelta(minutes=10)


def owner_alive(host: str | None, pid: int | None, started: datetime | None, heartbeat: datetime | None) -> bool:
    """Whether a run's owner still runs: on this host, by its pid and start time; on
    another, by a heartbeat younger than STALE_HEARTBEAT."""
    import psutil

    if host == socket.gethostname() and pid is not None:
        try:
            created = datetime.fromtimestamp(psutil.Process(pid).create_time(), timezone.utc)
        except psutil.NoSuchProcess:
            return False
        return started is None or abs((created - started).total_seconds()) < 1
    return heartbeat is not None and datetime.now(timezone.utc) - heartbeat < STALE_HEARTBEAT


def reconcile_runs(engine: sa.Engine) -> list[int]:
    """Mark `interrupted` every running run whose owner is gone; returns their ids."""
    with engine.begin() as conn:
        running = conn.execute(
            sa.text(
                "SELECT run_id, owner_host, owner_pid, owner_started_at, heartbeat_at FROM ingest_runs "
                "WHERE status = 'running' FOR UPDATE SKIP LOCKED"
            )
        ).all()
        dead = [r.run_id for r in running if not owner_alive(*r[1:])]
        if dead:
            conn.execute(
                sa.text("UPDATE ingest_runs SET status = 'interrupted', finished_at = now() WHERE run_id = ANY(:ids)"),
                {"ids": dead},
            )
    return dead


def heartbeat(engine: sa.Engine, run_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ingest_runs SET heartbeat_at = now() WHERE run_id = :r"), {"r": run_id})


def list_runs(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first (after reconciling the ones whose owner is gone)."""
    reconcile_runs(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT run_id, source, status, started_at, finished_at, heartbeat_at, owner_host, owner_pid, "
                "rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_runs "
                "ORDER BY run_id DESC LIMIT :n"
            ),
            {"n": limit},
        ).mappings()
        return [dict(r) for r in rows]


API_SOURCE, API_PATH = "api", "POST /reviews"


# One order for a user's history, in training (training.rating.protocols) and serving:
# by time; at one time reviews before item events, each in the order they were stored.
HISTORY_SQL = """
    SELECT item_id, event_type FROM (
        SELECT item_id, 'review' AS event_type, event_timestamp, 0 AS source, review_id AS id
        FROM reviews WHERE user_id = :u
        UNION ALL
        SELECT item_id, event_type, event_timestamp, 1, event_id FROM events
        WHERE user_id = :u AND item_id IS NOT NULL AND event_type <> 'review'
    ) h ORDER BY event_timestamp, source, id"""


def user_history(engine: sa.Engine, user_id: str) -> list[tuple[str, str]]:
    """The user's (pseudonym's) reviews and item events, oldest first: (item_id, event_type)."""
    with engine.connect() as conn:
        return [(str(i), str(t)) for i, t in conn.execute(sa.text(HISTORY_SQL), {"u": user_id})]


def items_seen(engine: sa.Engine, user_id: str) -> set[str]:
    """Items the user (pseudonym) has reviewed or acted on."""
    return {item for item, _ in user_history(engine, user_id)}


def item_known(engine: sa.Engine, item_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM items WHERE item_id = :i"), {"i": item_id}).first() is not None


def close_api_run(engine: sa.Engine, run_id: int) -> None:
    """End this process's API ingest run (at shutdown)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE ingest_runs SET status = 'done', finished_at = now(), heartbeat_at = now() WHERE run_id = :r"
            ),
            {"r": run_id},
        )


@contextlib.contextmanager
def _autocommit(engine: sa.Engine) -> Iterator[Any]:
    """A psycopg connection from the engine's pool with explicit transactions (as the
    loader wants), handed back to the pool as it came."""
    raw_conn = engine.raw_connection()
    conn: Any = raw_conn.driver_connection  # a psycopg connection (SQLAlchemy types it loosely)
    try:
        conn.autocommit = True
        yield conn
    finally:
        if not conn.closed:
            conn.autocommit = False
        raw_conn.close()


def open_api_run(engine: sa.Engine) -> int:
    """The ingest run that counts this API process's reviews."""
    with _autocommit(engine) as conn:
        return start_run(conn, API_SOURCE, API_PATH)


def add_review(engine: sa.Engine, row: ReviewRow, run_id: int, key: bytes) -> tuple[IngestCounts, int | None]:
    """One review from the HTTP API, through the same load path (and SQL) as a
    file's rows, counted in the API's own ingest run. Returns (the counts, the new
    review_id or None when nothing was loaded: the user already reviewed the item,
    or was forgotten)."""
    with _autocommit(engine) as conn:
        loader = Loader(conn, API_SOURCE, API_PATH, run_id, key)
        counts = loader.load(Batch(rows=[(1, row, "")], rejects=[]))
    if not counts.loaded:
        return counts, None
    settings = get_settings()
    with engine.begin() as conn:
        flag_templates(conn, settings.template_min_users, settings.template_min_share, [row.text_fingerprint or b""])
        flagged = conn.execute(
            sa.text("SELECT placeholder IS NOT NULL FROM reviews WHERE review_id = :r"), {"r": loader.last_review_id}
        ).scalar()
        counts.placeholders = int(bool(flagged))
    return counts, loader.last_review_id


def _batches(source: str, path: Path, stream: BinaryIO, key: bytes, batch_size: int, spec) -> Iterator[Batch]:
    if spec is None:
        return parse_batches(source, read_lines(stream), key, batch_size)
    parse = imports.parse_review_record if source == "reviews" else imports.parse_event_record
    return record_batches(imports.records(path, stream, spec), parse, spec, key, batch_size)


def ingest_file(
    engine: sa.Engine,
    source: str,
    path: Path,
    key: bytes,
    *,
    batch_size: int = 2000,
    progress: bool = True,
    loader_factory: type[Loader] = Loader,
    spec=None,
) -> tuple[int, IngestCounts]:
    """Ingest one file; returns (run id, counts). The run row in ingest_runs is
    updated with every committed batch. `spec` (a portrait.ingest.imports.ImportSpec) reads
    a shop's own export: required for `reviews`, optional for `events`."""
    from tqdm import tqdm

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if source == "reviews" and spec is None:
        raise ValueError("a review export needs a column mapping (portrait.ingest.imports.ImportSpec)")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    stored_path = str(path.resolve())
    reconcile_runs(engine)  # an earlier run killed mid-file is shown as interrupted, not running
    counts = IngestCounts()
    raw_conn = engine.raw_connection()
    conn: Any = raw_conn.driver_connection  # a psycopg connection (SQLAlchemy types it loosely)
    raw, stream = open_source(path)
    try:
        conn.autocommit = True  # transactions are explicit, one per batch
        run_id = start_run(conn, source, stored_path)
        loader = loader_factory(conn, source, stored_path, run_id, key)
        with tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"ingest {source}",
            disable=not progress,
            leave=False,
        ) as bar:
            try:
                for batch in prefetch(_batches(source, path, stream, key, batch_size, spec)):
                    counts.add(loader.load(batch))
                    bar.update(raw.tell() - bar.n)
                    bar.set_postfix(loaded=counts.loaded, rejected=counts.rejected, refresh=False)
            except BaseException:
                with contextlib.suppress(Exception):  # the connection itself may be what failed
                    finish_run(conn, run_id, "failed")
                raise
        settings = get_settings()
        with engine.begin() as flags:  # the template rule needs the whole shop: once per file
            flag_templates(flags, settings.template_min_users, settings.template_min_share)
            counts.placeholders = sum(placeholder_counts(flags, run_id).values())
        finish_run(conn, run_id, "done")
        return run_id, counts
    finally:
        stream.close()
        raw.close()
        if not conn.closed:
            conn.autocommit = False  # the connection goes back to SQLAlchemy's pool as it came
        raw_conn.close()
