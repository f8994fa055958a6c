"""Hostile input cannot abort a run: every bad line of a 20+ kind corpus, per
format, is set aside with its reason while every good line around it loads, the
counts reconcile exactly, and no raw id of the corpus reaches any table."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from tests.helpers.data import CDNOW, TEST_KEY, real_lines
from tests.helpers.hostile import amazon_bad_lines, cdnow_bad_lines, events_bad_lines, events_good_lines, hostile_ids
from tests.helpers.ingest import ingest_path, scalar

pytestmark = pytest.mark.integration


def _mixed(good: list[bytes], bad: dict[str, bytes], seed: int) -> list[bytes]:
    lines = list(good)
    rng = random.Random(seed)
    for line in bad.values():
        lines.insert(rng.randrange(1, len(lines)), line)  # never first: a header may be expected there
    return lines


def dump_of(engine) -> str:
    """Every row of every table of the database, as text."""
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        ).scalars()
        return "\n".join(str(row) for t in list(tables) for row in conn.execute(sa.text(f'SELECT * FROM "{t}"')))


@pytest.mark.parametrize(
    ("source", "table", "good", "bad"),
    [
        ("amazon-reviews", "reviews", lambda: real_lines(300), amazon_bad_lines),
        ("purchases", "events", lambda: CDNOW.read_bytes().splitlines(keepends=True)[1:301], cdnow_bad_lines),
        ("events", "events", lambda: events_good_lines(300), events_bad_lines),
    ],
)
def test_every_bad_line_is_set_aside_and_every_good_line_lands(db, tmp_path, source, table, good, bad):
    settings, engine = db
    good_lines, bad_lines = good(), bad()
    assert len(bad_lines) >= 20
    path = tmp_path / f"{source}.txt"
    path.write_bytes(b"".join(_mixed(good_lines, bad_lines, seed=len(bad_lines))))
    run_id, counts = ingest_path(db, source, path, batch_size=64)
    assert counts.reconciles
    assert counts.rejected == len(bad_lines), counts.summary()
    assert counts.loaded + counts.duplicates == len(good_lines)
    assert scalar(engine, f"SELECT count(*) FROM {table}") == counts.loaded
    assert scalar(engine, "SELECT status FROM ingest_runs WHERE run_id = :r", r=run_id) == "done"
    with engine.connect() as conn:
        reasons = conn.execute(sa.text("SELECT reason FROM ingest_rejects WHERE run_id = :r"), {"r": run_id}).scalars()
        assert all(r and "Error" not in r for r in reasons)  # a reason names the problem, not an exception
    leaked = [i for i in hostile_ids() if i in dump_of(engine)]
    assert leaked == []
    # the rerun finds the same rejects and loads nothing twice
    _, again = ingest_path(db, source, path, batch_size=64)
    assert (again.loaded, again.rejected) == (0, len(bad_lines))


def test_sealed_rejects_are_readable_with_the_key_only(db, tmp_path):
    from portrait.privacy.pseudonyms import unseal

    settings, engine = db
    bad = amazon_bad_lines()
    path = tmp_path / "bad.json"
    path.write_bytes(bad["python-literal"] + bad["numeric-id"])
    run_id, counts = ingest_path(db, "amazon-reviews", path)
    assert counts.rejected == 2
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, raw_sealed FROM ingest_rejects ORDER BY line_number")).all()
    assert unseal(rows[0].raw_sealed, TEST_KEY) == bad["python-literal"].decode().rstrip("\n")
    from portrait.privacy.pseudonyms import pseudonymize

    assert rows[1].user_id == pseudonymize("987654321987", TEST_KEY)  # located: forget finds it by pseudonym
    with pytest.raises(ValueError, match="another id key"):
        unseal(rows[0].raw_sealed, b"x" * 32)


def test_a_row_the_database_refuses_is_set_aside_not_the_run(db, tmp_path):
    """A constraint the parser does not know (added by an operator) still rejects one row, not the run."""
    settings, engine = db
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE reviews ADD CONSTRAINT ck_test_no_xx CHECK (item_id <> 'B00XX')"))
    try:
        lines = real_lines(200)
        lines[77] = lines[77].replace(b'"asin": "', b'"asin": "B00XX", "_": "')
        path = tmp_path / "refused.json"
        path.write_bytes(b"".join(lines))
        run_id, counts = ingest_path(db, "amazon-reviews", path, batch_size=50)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE reviews DROP CONSTRAINT ck_test_no_xx"))
    assert (counts.loaded, counts.rejected) == (199, 1)
    reason = scalar(engine, "SELECT reason FROM ingest_rejects WHERE run_id = :r", r=run_id)
    assert "database refused the row" in reason and "ck_test_no_xx" in reason
