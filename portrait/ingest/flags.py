"""Placeholder flags on stored reviews (the rule: portrait.text.placeholders).

Rules 1-2 (empty, platform default) are decided per row at parse time; the
template rule counts a normalised text's distinct users over the whole shop, so
it runs after each load (`flag_templates`). `reflag_all` re-applies every rule to
every review (the migration's backfill, `portrait ingest flag` after the rule or
its thresholds change). A flag that changes sets `placeholder_at`, so the next
feature build rebuilds those users' and items' text features."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from portrait.text.placeholders import REASONS, TEMPLATE, fingerprint, placeholder_reason, template_threshold

REFLAG_BATCH = 20_000

_TEMPLATES = """
    SELECT text_fingerprint FROM {table} WHERE text_fingerprint IS NOT NULL {only}
    GROUP BY text_fingerprint HAVING count(DISTINCT user_id) >= :threshold"""


def _threshold(conn, min_users: int, min_share: float) -> int:
    reviewers = conn.execute(sa.text("SELECT count(DISTINCT user_id) FROM reviews")).scalar() or 0
    return template_threshold(reviewers, min_users, min_share)


def flag_templates(conn, min_users: int, min_share: float, fingerprints: Sequence[bytes] | None = None) -> int:
    """Flag as `template` the genuine-looking reviews whose normalised text enough
    distinct users wrote (only these fingerprints when given: one API review).
    Returns the reviews newly flagged. A flag is never lifted here: `reflag_all` does."""
    if fingerprints is not None:
        fingerprints = [f for f in fingerprints if f]
        if not fingerprints:
            return 0
        users = conn.execute(
            sa.text("SELECT count(DISTINCT user_id) FROM reviews WHERE text_fingerprint = ANY(:f)"),
            {"f": fingerprints},
        ).scalar()
        if users < min_users:  # the common case: no count over the shop needed
            return 0
    only = "AND text_fingerprint = ANY(:f)" if fingerprints is not None else ""
    return conn.execute(
        sa.text(f"""
        UPDATE reviews r SET placeholder = '{TEMPLATE}', placeholder_at = now()
        FROM ({_TEMPLATES.format(table="reviews", only=only)}) t
        WHERE r.text_fingerprint = t.text_fingerprint AND r.placeholder IS NULL"""),
        {"threshold": _threshold(conn, min_users, min_share), "f": fingerprints},
    ).rowcount


def reflag_all(conn, settings) -> dict[str, int]:
    """Every review's flag and fingerprint recomputed with the current rule and the
    settings' thresholds; returns the reviews per reason afterwards."""
    conn.execute(
        sa.text("CREATE TEMP TABLE reflag (review_id bigint PRIMARY KEY, reason text, fp bytea) ON COMMIT DROP")
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.text("SELECT review_id, summary, text FROM reviews WHERE review_id > :last ORDER BY review_id LIMIT :n"),
            {"last": last, "n": REFLAG_BATCH},
        ).all()
        if not rows:
            break
        last = rows[-1].review_id
        conn.execute(
            sa.text(
                "INSERT INTO reflag SELECT * FROM unnest(CAST(:i AS bigint[]), CAST(:r AS text[]), CAST(:f AS bytea[]))"
            ),
            {
                "i": [r.review_id for r in rows],
                "r": [placeholder_reason(r.summary, r.text) for r in rows],
                "f": [fingerprint(r.text) for r in rows],
            },
        )
    # templates among the texts no per-row rule caught
    threshold = _threshold(conn, settings.template_min_users, settings.template_min_share)
    conn.execute(
        sa.text(f"""
        UPDATE reflag f SET reason = '{TEMPLATE}' FROM (
            SELECT g.fp FROM reflag g JOIN reviews r USING (review_id) WHERE g.fp IS NOT NULL
            GROUP BY g.fp HAVING count(DISTINCT r.user_id) >= :threshold) t
        WHERE f.fp = t.fp AND f.reason IS NULL"""),
        {"threshold": threshold},
    )
    conn.execute(
        sa.text("""
        UPDATE reviews r SET placeholder = f.reason, text_fingerprint = f.fp,
            placeholder_at = CASE WHEN r.placeholder IS DISTINCT FROM f.reason THEN now() ELSE r.placeholder_at END
        FROM reflag f
        WHERE r.review_id = f.review_id
          AND (r.placeholder IS DISTINCT FROM f.reason OR r.text_fingerprint IS DISTINCT FROM f.fp)""")
    )
    conn.execute(sa.text("DROP TABLE reflag"))
    return placeholder_counts(conn)


def placeholder_counts(conn, run_id: int | None = None) -> dict[str, int]:
    """Reviews per placeholder reason (all, or one ingest run's), every reason present."""
    where = "WHERE placeholder IS NOT NULL" + (" AND run_id = :run" if run_id is not None else "")
    rows = conn.execute(
        sa.text(f"SELECT placeholder, count(*) FROM reviews {where} GROUP BY placeholder"), {"run": run_id}
    ).all()
    counts = Counter({reason: 0 for reason in REASONS})
    counts.update(dict(rows))
    return dict(counts)
