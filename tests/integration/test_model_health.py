"""The request log and the promotion audit trail on a real PostgreSQL (both profiles):
written off the request path, still there for a new process, pruned by retention;
late labels joined only to earlier answers within the window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from registry import audit
from registry.monitoring import quality
from serving.request_log import Entry, RequestLog, prune

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc)


def answer(user: str, item: str, rating: float, at: datetime, alias: str = "champion", version: str = "1") -> Entry:
    return Entry(
        "/rating",
        "rating-predictor",
        version,
        {"ratings": [rating]},
        3.0,
        user_id=user,
        items=[item],
        alias=alias,
        logged_at=at,
    )


def review(conn, user: str, item: str, rating: int, at: datetime) -> None:
    conn.execute(
        sa.text("INSERT INTO users (user_id, first_seen_at) VALUES (:u, :t) ON CONFLICT DO NOTHING"),
        {"u": user, "t": at},
    )
    conn.execute(
        sa.text("INSERT INTO items (item_id, first_seen_at) VALUES (:i, :t) ON CONFLICT DO NOTHING"),
        {"i": item, "t": at},
    )
    conn.execute(
        sa.text(
            "INSERT INTO reviews (user_id, item_id, rating, summary, text, helpful_votes, total_votes,"
            " event_timestamp, run_id) VALUES (:u, :i, :r, '', 'fine', 0, 0, :t, 0)"
        ),
        {"u": user, "i": item, "r": rating, "t": at},
    )


def test_the_log_survives_a_new_process_and_is_pruned_by_retention(db):
    settings, engine = db
    log = RequestLog(engine, capacity=100, retention_days=30)
    for i in range(20):
        assert log.put(answer(f"u{i}", "i1", 4.0, NOW))
    assert log.put(answer("old", "i1", 4.0, NOW - timedelta(days=40)))
    assert log.flush(10) and log.dropped == 0
    # a restart: another engine (another process's pool) reads what the first wrote,
    # less the row past the retention, which the writer pruned
    other = sa.create_engine(engine.url)
    with other.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM request_log")).scalar() == 20
        assert conn.execute(sa.text("SELECT count(*) FROM request_log WHERE user_id = 'old'")).scalar() == 0
        assert prune(conn, NOW + timedelta(seconds=1)) == 20
    other.dispose()


def test_late_labels_grade_only_earlier_answers_within_the_window(db):
    settings, engine = db
    settings = settings.model_copy(update={"online_min_labels": 2, "label_window_hours": 24})
    log = RequestLog(engine, capacity=100, retention_days=30)
    t0 = NOW - timedelta(hours=10)
    log.put(answer("u1", "i1", 4.0, t0))  # graded by u1's review 1 h later: error 1
    log.put(answer("u2", "i2", 2.0, t0))  # graded: error 1
    log.put(answer("u3", "i3", 1.0, t0 + timedelta(hours=2)))  # after u3's review: not its label
    log.put(answer("u4", "i4", 1.0, t0 - timedelta(hours=48)))  # outside the window
    log.put(answer("u1", "i1", 2.0, t0, alias="challenger", version="2"))  # the shadow's own grade: error 3
    log.put(answer("u2", "i2", 2.0, t0, alias="challenger", version="2"))
    assert log.flush(10)
    with engine.begin() as conn:
        review(conn, "u1", "i1", 5, t0 + timedelta(hours=1))
        review(conn, "u2", "i2", 3, t0 + timedelta(hours=1))
        review(conn, "u3", "i3", 5, t0 + timedelta(hours=1))
        review(conn, "u4", "i4", 5, t0 - timedelta(hours=20))  # 28 h after its answer
    rows, difference = quality(engine, settings)
    by = {(q.alias, q.version, q.online.metric): q.online for q in rows}
    champion = by[("champion", "1", "rmse")]
    assert champion.n == 2 and champion.value == pytest.approx(1.0)
    challenger = by[("challenger", "2", "rmse")]
    assert challenger.n == 2 and challenger.value == pytest.approx(((9 + 1) / 2) ** 0.5)
    assert difference["rating-predictor"].value == pytest.approx(challenger.value - champion.value)


def test_the_audit_trail_records_each_change_once_newest_first(db):
    _, engine = db
    audit.record(engine, "rating-predictor", "first", None, 1, decision="passed the gate")
    audit.record(engine, "rating-predictor", "promote", 1, 2, metrics={"test_rmse": 0.9})
    assert audit.record_observed(engine, "rating-predictor", 2, "svc") is False  # already recorded
    assert audit.record_observed(engine, "rating-predictor", 3, "svc") is True  # a change made in the UI
    assert audit.record_observed(engine, "rating-predictor", 3, "svc") is False  # noticed by a second service
    audit.record(engine, "rating-predictor", "rollback", 3, 2)
    rows = audit.history(sa.create_engine(engine.url), "rating-predictor")  # as a new process reads it
    assert [(r.action, r.from_version, r.to_version) for r in rows] == [
        ("rollback", 3, 2),
        ("observed", 2, 3),
        ("promote", 1, 2),
        ("first", None, 1),
    ]
    assert rows[2].metrics == {"test_rmse": 0.9} and rows[0].actor
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(engine, "rating-predictor", "sneaky", 1, 2)


def test_forgetting_a_user_deletes_their_logged_answers(db):
    from portrait.ops.forget import erase_offline
    from tests.helpers.data import TEST_KEY

    _, engine = db
    log = RequestLog(engine, capacity=100, retention_days=30)
    for _ in range(3):
        log.put(answer("p-forget-me", "i1", 4.0, NOW))
    log.put(answer("p-someone-else", "i1", 4.0, NOW))
    assert log.flush(10)
    with engine.begin() as conn:
        deleted, _ = erase_offline(conn, "p-forget-me", "forget-me", TEST_KEY)
        left = conn.execute(sa.text("SELECT user_id FROM request_log")).scalars().all()
    assert deleted["request_log"] == 3 and left == ["p-someone-else"]
