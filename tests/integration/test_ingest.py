"""Ingestion against real PostgreSQL, in both profiles, with the real data files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.helpers.data import AMAZON, CDNOW, TEST_KEY, real_lines
from tests.helpers.ingest import ingest_path, scalar

pytestmark = pytest.mark.integration


def test_the_real_amazon_file_loads_whole_and_reruns_load_nothing(db):
    settings, engine = db
    run_id, counts = ingest_path(db, "amazon-reviews", AMAZON, batch_size=5000)
    assert (counts.read, counts.loaded, counts.rejected, counts.duplicates) == (10_261, 10_261, 0, 0)
    assert scalar(engine, "SELECT count(*) FROM reviews") == 10_261
    assert scalar(engine, "SELECT count(DISTINCT user_id) FROM reviews") == 1_429
    assert scalar(engine, "SELECT count(*) FROM users") == 1_429
    assert scalar(engine, "SELECT count(*) FROM items") == 900
    assert scalar(engine, "SELECT count(*) FROM reviews WHERE text = ''") == 7
    assert scalar(engine, "SELECT count(*) FROM events WHERE event_type = 'review'") == 10_261
    run = dict(_scalar_row(engine, f"SELECT * FROM ingest_runs WHERE run_id = {run_id}"))
    assert (run["status"], run["rows_read"], run["rows_loaded"]) == ("done", 10_261, 10_261)

    _, again = ingest_path(db, "amazon-reviews", AMAZON, batch_size=5000)
    assert (again.read, again.loaded, again.duplicates) == (10_261, 0, 10_261)
    assert scalar(engine, "SELECT count(*) FROM reviews") == 10_261
    assert scalar(engine, "SELECT count(*) FROM events") == 10_261


def _scalar_row(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).mappings().one()


def test_no_raw_reviewer_id_or_name_anywhere_in_the_database(db):
    settings, engine = db
    lines = real_lines(300)
    raw_ids = {json.loads(line)["reviewerID"] for line in lines}
    records = [json.loads(line) for line in lines]
    texts = " ".join(r["reviewText"] + " " + r["summary"] for r in records)
    # names the reviewers did not also write into their own review text (some sign it)
    names = {r.get("reviewerName") for r in records} - {None}
    names = {n for n in names if n not in texts}
    # a reject carries the raw line too: make some
    bad = [line.replace(b'"overall": 5.0', b'"overall": 7.0') for line in lines[:20]]
    path = db[0].state_dir / "private.json"
    path.write_bytes(b"".join(lines[20:] + bad))
    ingest_path(db, "amazon-reviews", path)
    assert scalar(engine, "SELECT count(*) FROM ingest_rejects") > 0
    with engine.connect() as conn:
        tables = (
            conn.execute(sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
            .scalars()
            .all()
        )
        dump = "\n".join(str(row) for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"')))
    leaked = [i for i in raw_ids if i in dump] + [n for n in names if len(n) > 6 and n in dump]
    assert leaked == []


def test_corrupted_copy_of_real_lines_reconciles_exactly(db, tmp_path):
    settings, engine = db
    good = real_lines(1000)
    injected = [
        b'{"reviewerID": "AX", "asin": \n',  # bad JSON
        json.dumps({"asin": "B1", "overall": 5, "unixReviewTime": 1393545600}).encode() + b"\n",  # missing field
        good[0].replace(b'"overall": 5.0', b'"overall": 9.0'),  # rating outside 1-5
        good[1].replace(b'"unixReviewTime": ', b'"unixReviewTime": "x'),  # unparseable time (bad JSON too)
        json.dumps({**json.loads(good[2]), "unixReviewTime": "tomorrow"}).encode() + b"\n",
        b'{"reviewerID": "AY", "asin": "B2", "reviewText": "caf\xe9"}\n',  # invalid UTF-8
        json.dumps({**json.loads(good[3]), "reviewText": "x" * 60_000}).encode() + b"\n",  # oversize text
        b"\n",  # empty line
    ]
    # a duplicate: a real line repeated later in the file
    lines = good[:500] + injected[:4] + good[500:] + injected[4:] + [good[10]]
    path = tmp_path / "corrupted.json.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))

    run_id, counts = ingest_path(db, "amazon-reviews", path, batch_size=128)
    assert counts.reconciles
    assert counts.read == len(lines)
    assert counts.rejected == len(injected)
    assert counts.duplicates == 1
    assert counts.loaded == 1000
    assert scalar(engine, "SELECT count(*) FROM reviews") == 1000
    with engine.connect() as conn:
        rejects = conn.execute(
            sa.text("SELECT line_number, reason FROM ingest_rejects WHERE run_id = :r ORDER BY line_number"),
            {"r": run_id},
        ).all()
    reasons = [r.reason for r in rejects]
    assert len(rejects) == len(injected)
    for expected in [
        "bad JSON",
        "missing field reviewerID",
        "outside 1-5",
        "unparseable time in unixReviewTime",
        "invalid UTF-8",
        "over the 50,000 limit",
        "empty line",
    ]:
        assert any(expected in r for r in reasons), (expected, reasons)
    assert [r.line_number for r in rejects][:4] == [501, 502, 503, 504]
    # the recorded run adds up too
    row = _scalar_row(engine, f"SELECT * FROM ingest_runs WHERE run_id = {run_id}")
    assert row["rows_read"] == row["rows_loaded"] + row["rows_rejected"] + row["rows_duplicate"] + row["rows_forgotten"]


def test_cdnow_purchases_all_land_as_purchase_events_and_rerun_is_idempotent(db):
    settings, engine = db
    _, counts = ingest_path(db, "purchases", CDNOW, batch_size=10_000)
    assert (counts.read, counts.loaded, counts.rejected, counts.duplicates) == (69_659, 69_659, 0, 0)
    assert scalar(engine, "SELECT count(DISTINCT user_id) FROM events WHERE event_type = 'purchase'") == 23_570
    assert scalar(engine, "SELECT round(sum(amount)) FROM events") == _cdnow_total()
    _, again = ingest_path(db, "purchases", CDNOW, batch_size=10_000)
    assert (again.loaded, again.duplicates) == (0, 69_659)


def _cdnow_total() -> int:
    lines = CDNOW.read_text().splitlines()[1:]
    from decimal import Decimal

    return round(sum(Decimal(line.split()[3]) for line in lines))


def test_generic_events_csv(db, tmp_path):
    settings, engine = db
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,event_type,event_timestamp,quantity,amount\n"
        "shopper1,B01,view,2014-03-01T10:00:00Z,,\n"
        "shopper1,B01,cart,2014-03-01T10:05:00Z,1,\n"
        "shopper1,B01,purchase,2014-03-01T10:09:00Z,1,19.90\n"
        "shopper1,B01,like,2014-03-01T10:09:00Z,1,\n"
    )
    _, counts = ingest_path(db, "events", path)
    assert (counts.read, counts.loaded, counts.rejected) == (4, 3, 1)
    assert scalar(engine, "SELECT count(*) FROM items WHERE item_id = 'B01'") == 1


def test_a_run_killed_mid_batch_leaves_no_half_batch_and_the_rerun_completes(db, tmp_path):
    settings, engine = db
    lines = real_lines(1000)
    path = tmp_path / "part.json"
    path.write_bytes(b"".join(lines))
    env = {**os.environ, "PORTRAIT_ID_KEY": TEST_KEY.decode(), "PORTRAIT_STATE_DIR": str(settings.state_dir)}
    env.pop("PORTRAIT_DATABASE_URL", None)
    if settings.database_url:
        env["PORTRAIT_DATABASE_URL"] = settings.database_url
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.kill_mid_batch", str(path), "4", "100"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    # three batches committed, the fourth was mid-transaction: nothing of it is visible
    assert scalar(engine, "SELECT count(*) FROM reviews") == 300
    assert scalar(engine, "SELECT rows_loaded FROM ingest_runs") == 300
    _, counts = ingest_path(db, "amazon-reviews", path, batch_size=100)
    assert (counts.read, counts.loaded, counts.duplicates, counts.rejected) == (1000, 700, 300, 0)
    # the killed run's owner is gone: the rerun marked it interrupted, not left running
    assert scalar(engine, "SELECT status FROM ingest_runs WHERE run_id = 1") == "interrupted"
    assert scalar(engine, "SELECT finished_at IS NOT NULL FROM ingest_runs WHERE run_id = 1") is True
    assert scalar(engine, "SELECT count(*) FROM reviews") == 1000


def test_runs_are_interrupted_only_when_their_owner_is_gone(db):
    """A live process's run (here: this one's) stays running; a dead pid's, a reused
    pid's (another start time) and a silent other host's are interrupted."""
    import sqlalchemy as sa

    from portrait.ingest.loader import list_runs, open_api_run, reconcile_runs

    _, engine = db
    live = open_api_run(engine)
    with engine.begin() as conn:

        def run(host: str, pid: int, started: str, beat: str) -> int:
            return conn.execute(
                sa.text(
                    "INSERT INTO ingest_runs (source, path, status, owner_host, owner_pid, owner_started_at, "
                    "heartbeat_at) VALUES ('api', 'x', 'running', :h, :p, now() - CAST(:s AS interval), "
                    "now() - CAST(:b AS interval)) RETURNING run_id"
                ),
                {"h": host, "p": pid, "s": started, "b": beat},
            ).scalar_one()

        import socket

        here = socket.gethostname()
        dead_pid = run(here, 2**22 + 7, "1 hour", "1 minute")  # above pid_max: no such process
        reused = run(here, os.getpid(), "400 days", "1 minute")  # this pid, but not this process
        other_live = run("another-host", 1, "1 hour", "10 seconds")
        other_silent = run("another-host", 1, "1 hour", "1 hour")
    assert sorted(reconcile_runs(engine)) == sorted([dead_pid, reused, other_silent])
    status = {r["run_id"]: r["status"] for r in list_runs(engine)}
    assert status[live] == "running" and status[other_live] == "running"
    assert status[dead_pid] == status[reused] == status[other_silent] == "interrupted"
