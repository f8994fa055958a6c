"""Feature jobs and Feast against real PostgreSQL (offline store, registry,
online store) and real Redis (online store), in both profiles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers.data import TEST_KEY, real_lines
from tests.helpers.featurestore import feature_store, ingest_events, ingest_lines

pytestmark = pytest.mark.integration


def _count(engine, sql, **p):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), p).scalar()


def test_build_fills_every_feature_table(built):
    settings, engine, result = built
    assert result.reviews_embedded == 400
    for table in ("user_behavior", "item_stats", "review_embeddings", "user_text_profile", "item_text_profile"):
        assert _count(engine, f"SELECT count(*) FROM {table}") > 0, table
    # embeddings are L2-normalized, tagged with their encoder
    norm = _count(
        engine, "SELECT max(abs(1 - sqrt((SELECT sum(x * x) FROM unnest(embedding) x)))) FROM review_embeddings"
    )
    assert norm < 1e-4
    assert _count(engine, "SELECT count(DISTINCT encoder_revision) FROM review_embeddings") == 1
    # the view and cart events reached the behaviour features
    assert _count(engine, "SELECT max(view_count) FROM user_behavior") == 1
    assert _count(engine, "SELECT max(cart_count) FROM user_behavior") == 1


def test_rebuild_processes_only_what_is_new(built, tiny_bert):
    from portrait.features.build import build_features

    settings, engine, first = built
    again = build_features(engine, encoder_path=str(tiny_bert), progress=False)
    assert (again.reviews_embedded, again.users_rebuilt, again.items_rebuilt) == (0, 0, 0)
    before = _count(engine, "SELECT max(created_timestamp) FROM user_behavior")

    new_lines = real_lines(450)[400:]
    ingest_lines(settings, engine, new_lines, "second.json")
    third = build_features(engine, encoder_path=str(tiny_bert), progress=False)
    assert third.reviews_embedded == 50
    with engine.connect() as conn:
        new_users = set(conn.execute(sa.text("SELECT user_id FROM reviews ORDER BY review_id DESC LIMIT 50")).scalars())
        rebuilt = set(
            conn.execute(
                sa.text("SELECT DISTINCT user_id FROM user_behavior WHERE created_timestamp > :t"), {"t": before}
            ).scalars()
        )
    assert third.users_rebuilt == len(new_users) and rebuilt == new_users


def test_as_of_leaves_later_rows_for_the_next_build(db, tiny_bert):
    from portrait.features.build import build_features

    settings, engine = db
    ingest_lines(settings, engine, real_lines(200), "part.json")
    cut = datetime(2012, 1, 1, tzinfo=timezone.utc)
    early = build_features(engine, as_of=cut, encoder_path=str(tiny_bert), progress=False)
    assert _count(engine, "SELECT max(event_timestamp) FROM user_behavior") <= cut
    assert early.reviews_embedded == _count(engine, "SELECT count(*) FROM reviews WHERE event_timestamp <= :c", c=cut)
    late = build_features(engine, encoder_path=str(tiny_bert), progress=False)
    assert early.reviews_embedded + late.reviews_embedded == 200
    assert _count(engine, "SELECT count(*) FROM review_embeddings") == 200


# --- Feast ----------------------------------------------------------------------


def _two_snapshot_user(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("""
            SELECT user_id, array_agg(event_timestamp ORDER BY event_timestamp) AS times,
                   array_agg(review_count_total ORDER BY event_timestamp) AS counts
            FROM user_behavior GROUP BY user_id HAVING count(*) >= 2 LIMIT 1""")
        ).one()


def test_point_in_time_join_never_sees_a_later_value(built):
    settings, engine, _ = built
    _, store = feature_store(settings, "postgres")
    user, times, counts = _two_snapshot_user(engine)
    # a label between the first and second snapshot, and one exactly at the second
    between = times[0] + (times[1] - times[0]) / 2
    entity_df = pd.DataFrame(
        {"user_id": [user, user, user], "event_timestamp": [between, times[1], times[1] - timedelta(seconds=1)]}
    )
    df = store.get_historical_features(entity_df=entity_df, features=["user_behavior:review_count_total"]).to_df()
    got = dict(zip(pd.to_datetime(df["event_timestamp"], utc=True), df["review_count_total"]))
    assert got[pd.Timestamp(between)] == counts[0]  # never the later value
    assert got[pd.Timestamp(times[1]) - timedelta(seconds=1)] == counts[0]
    assert got[pd.Timestamp(times[1])] == counts[1]  # a snapshot counts from its own time on


def test_chunked_hash_join_returns_feasts_frame_and_reaches_the_connection(built):
    """portrait's historical_features (Feast's join, nested loops off, in chunks)
    gives the frame stock Feast gives; the planner setting reaches Feast's
    connections inside the helper only."""
    from feast.infra.utils.postgres.connection_utils import _get_conn

    from portrait.featurestore import repo as featurestore
    from training.rating import FEATURE_SERVICE, label_rows

    settings, engine, _ = built
    _, store = feature_store(settings, "postgres")
    labels = label_rows(engine)
    entity_df = labels[["user_id", "item_id", "event_timestamp", "request_unix", "review_id", "rating"]]
    service = store.get_feature_service(FEATURE_SERVICE)
    ours = featurestore.historical_features(store, entity_df, service, chunk=max(1, len(entity_df) // 3))
    stock = store.get_historical_features(entity_df=entity_df, features=service).to_df()

    def tidy(df):
        return df.sort_values("review_id").reset_index(drop=True)[sorted(df.columns)]

    assert len(ours) == len(entity_df) > 10
    pd.testing.assert_frame_equal(tidy(ours), tidy(stock))

    def nestloop() -> str:
        with _get_conn(store.config.offline_store) as conn:
            return conn.execute("SHOW enable_nestloop").fetchone()[0]

    with featurestore._hash_joins():
        assert nestloop() == "off"
    assert nestloop() == "on"


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_online_values_equal_the_latest_offline_values(built, online):
    from portrait.featurestore import repo as featurestore
    from portrait.privacy.pseudonyms import pseudonymize

    settings, engine, _ = built
    settings, store = feature_store(settings, online)
    featurestore.materialize(settings, full=True)  # tests switch online stores on one registry
    with engine.connect() as conn:
        latest = pd.DataFrame(
            conn.execute(
                sa.text("""
            SELECT DISTINCT ON (user_id) user_id, review_count_total, rating_mean, view_count
            FROM user_behavior ORDER BY user_id, event_timestamp DESC LIMIT 25""")
            )
            .mappings()
            .all()
        )
        user_text = conn.execute(
            sa.text("""
            SELECT DISTINCT ON (user_id) user_id, user_embedding, interest_tags FROM user_text_profile
            ORDER BY user_id, event_timestamp DESC LIMIT 1""")
        ).one()
    online_df = store.get_online_features(
        features=["user_behavior:review_count_total", "user_behavior:rating_mean", "user_behavior:view_count"],
        entity_rows=[{"user_id": u} for u in latest["user_id"]],
    ).to_df()
    merged = latest.merge(online_df, on="user_id", suffixes=("_off", "_on"))
    assert len(merged) == len(latest)
    assert (merged["review_count_total_off"] == merged["review_count_total_on"]).all()
    np.testing.assert_allclose(merged["rating_mean_off"], merged["rating_mean_on"], rtol=1e-6)
    portrait = featurestore.online_portrait(store, user_text.user_id)
    np.testing.assert_allclose(portrait["user_embedding"], user_text.user_embedding, rtol=1e-6)
    assert portrait["interest_tags"] == user_text.interest_tags
    # the reviewer of the example, by raw id
    assert featurestore.online_portrait(store, pseudonymize("A2IBPI20UZIR0U", TEST_KEY))["view_count"] == 1
    assert featurestore.online_portrait(store, "u_unknown") == {}

    # recommend_v1 with the on-demand affinity for 1 user + items
    with engine.connect() as conn:
        items = conn.execute(sa.text("SELECT DISTINCT item_id FROM item_text_profile LIMIT 5")).scalars().all()
    now = int(datetime.now(timezone.utc).timestamp())
    rec = store.get_online_features(
        features=store.get_feature_service("recommend_v1"),
        entity_rows=[{"user_id": user_text.user_id, "item_id": i, "request_unix": now} for i in items],
    ).to_dict()
    u = np.asarray(user_text.user_embedding)
    for _item, item_vec, affinity in zip(rec["item_id"], rec["item_embedding"], rec["affinity"]):
        v = np.asarray(item_vec)
        assert affinity == pytest.approx(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)), rel=1e-5)


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_push_source_changes_the_next_online_read(built, online):
    from portrait.featurestore import repo as featurestore

    settings, engine, _ = built
    settings, store = feature_store(settings, online)
    featurestore.materialize(settings, full=True)  # tests switch online stores on one registry
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.text("""SELECT DISTINCT ON (user_id) * FROM user_text_profile
                                      ORDER BY user_id, event_timestamp DESC LIMIT 1""")
            )
            .mappings()
            .one()
        )
    before = featurestore.online_portrait(store, row["user_id"])
    assert before["embedded_review_count"] == row["embedded_review_count"]
    pushed = {
        k: [row[k]]
        for k in (
            "user_id",
            "user_embedding",
            "share_positive",
            "share_neutral",
            "share_negative",
            "sentiment_source",
            "interest_tags",
        )
    }
    pushed.update(
        embedded_review_count=[row["embedded_review_count"] + 1],
        event_timestamp=[datetime.now(timezone.utc)],
        created_timestamp=[datetime.now(timezone.utc)],
    )
    store.push("user_text_push", pd.DataFrame(pushed))
    after = featurestore.online_portrait(store, row["user_id"])
    assert after["embedded_review_count"] == row["embedded_review_count"] + 1


def test_reader_matches_feasts_affinity_and_follows_materialization(built, tiny_bert):
    from portrait.features.build import build_features
    from portrait.featurestore import repo as featurestore
    from serving.online import OnlineReader

    settings, engine, _ = built
    settings, store = feature_store(settings, "postgres")
    featurestore.materialize(settings, full=True)
    reader = OnlineReader(store)
    with engine.connect() as conn:
        user = conn.execute(sa.text("SELECT user_id FROM user_text_profile LIMIT 1")).scalar()
        items = conn.execute(sa.text("SELECT DISTINCT item_id FROM item_text_profile LIMIT 20")).scalars().all()
    now = int(datetime.now(timezone.utc).timestamp())
    feast_affinity = store.get_online_features(
        features=["user_item_affinity:affinity"],
        entity_rows=[{"user_id": user, "item_id": i, "request_unix": now} for i in items],
    ).to_dict()["affinity"]
    ours = reader.affinity(reader.user(user), items + ["no-such-item"])
    np.testing.assert_allclose(ours[:-1], feast_affinity, rtol=1e-5)
    assert np.isnan(ours[-1])
    assert reader.user("u_nobody") == {}

    # new reviews for new items: after materialization the snapshot has them
    before = reader.items()
    ingest_lines(settings, engine, real_lines(460)[400:], "more.json")
    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    assert reader.refresh_items() is before  # nothing materialized yet: the same snapshot
    featurestore.materialize(settings)
    assert reader.items() is before  # requests never check (serving's poller calls refresh_items)
    after = reader.refresh_items()
    assert after is not before and len(after.item_ids) > len(before.item_ids) and reader.items() is after


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_forget_is_complete_and_durable(built, online, tiny_bert):
    """Erased everywhere (rows, rejected lines in any shape, online rows), the user's
    items recomputed without them (offline and online), and a re-ingest of the same
    files, a rebuild and a materialize bring nothing of them back."""
    import json

    from portrait.features.build import build_features
    from portrait.featurestore import repo as featurestore
    from portrait.ops.forget import forget
    from portrait.privacy.pseudonyms import pseudonymize

    settings, engine, _ = built
    settings, store = feature_store(settings, online)
    raw_id = "A2IBPI20UZIR0U"
    user = pseudonymize(raw_id, TEST_KEY)
    lines = real_lines(400)
    theirs = [json.loads(line) for line in lines if json.loads(line)["reviewerID"] == raw_id]
    item = theirs[0]["asin"]
    # rejected lines of the user: one where the id is located, one where it cannot be
    bad = [
        json.dumps({**theirs[0], "overall": 9}).encode() + b"\n",
        repr({**theirs[0], "asin": "B-PY"}).encode() + b"\n",
    ]
    ingest_lines(settings, engine, bad, "bad.json")
    featurestore.materialize(settings, full=True)
    count_sql = "SELECT item_review_count FROM item_stats WHERE item_id = :i ORDER BY event_timestamp DESC LIMIT 1"
    before = _count(engine, count_sql, i=item)
    online_before = store.get_online_features(
        features=["item_stats:item_review_count"], entity_rows=[{"item_id": item}]
    )
    assert online_before.to_dict()["item_review_count"] == [before]
    assert featurestore.online_portrait(store, user)

    report = forget(engine, store, raw_id, TEST_KEY)
    assert report.rows_deleted["reviews"] == len(theirs) and report.rows_deleted["ingest_rejects"] == 2
    assert report.rows_deleted["aspect_groups"] > 0  # the groups hold words of reviews; the next build regroups
    assert _count(engine, count_sql, i=item) == before - 1  # the item without the user's review
    embedded = "SELECT item_embedded_review_count FROM item_text_profile WHERE item_id = :i ORDER BY event_timestamp DESC LIMIT 1"
    assert _count(engine, embedded, i=item) == before - 1
    online_after = store.get_online_features(features=["item_stats:item_review_count"], entity_rows=[{"item_id": item}])
    assert online_after.to_dict()["item_review_count"] == [before - 1]

    # the shop's next export still holds the user: nothing comes back
    counts = ingest_lines(settings, engine, lines, "first.json")
    assert counts.forgotten == len(theirs) and counts.reconciles and counts.loaded == 0
    events = ingest_events(
        settings,
        engine,
        f"user_id,item_id,event_type,event_timestamp,quantity,amount\n{raw_id},{item},view,2014-03-02T10:00:00Z,,\n",
    )
    assert (events.forgotten, events.loaded) == (1, 0)
    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    featurestore.materialize(settings)
    assert featurestore.online_portrait(store, user) == {}
    with engine.connect() as conn:
        tables = (
            conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            )
            .scalars()
            .all()
        )
        leftovers = {
            t: conn.execute(
                sa.text(
                    f'SELECT count(*) FROM "{t}" WHERE CAST("{t}".* AS text) LIKE :p OR CAST("{t}".* AS text) LIKE :r'
                ),
                {"p": f"%{user}%", "r": f"%{raw_id}%"},
            ).scalar()
            for t in tables
        }
    assert {t: n for t, n in leftovers.items() if n} == {"forgotten_users": 1}  # the tombstone only
    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT CAST(rows_deleted AS text) || online_store FROM forget_audit")).scalar()
    assert user not in audit and raw_id not in audit
    assert _count(engine, "SELECT rows_forgotten FROM ingest_runs ORDER BY run_id DESC LIMIT 1") == 1


def test_a_different_key_or_a_lost_key_file_is_refused(db, tmp_path):
    from portrait.ingest.loader import ingest_file
    from portrait.privacy.idkey import KeyMismatch, verified_id_key
    from portrait.settings import Settings

    settings, engine = db
    ingest_lines(settings, engine, real_lines(5), "five.json")  # the fingerprint of TEST_KEY is stored
    path = tmp_path / "again.json"
    path.write_bytes(b"".join(real_lines(5)))
    with pytest.raises(KeyMismatch, match="not the one this database was built with"):
        ingest_file(engine, "amazon-reviews", path, b"another-key-of-at-least-32-bytes!", progress=False)
    other = Settings(state_dir=settings.state_dir, database_url=settings.database_url, id_key="z" * 32)
    with pytest.raises(KeyMismatch):
        verified_id_key(other, engine)
    if settings.profile == "local":  # a key file deleted while pseudonyms exist: an error, not a new key
        lost = Settings(state_dir=tmp_path / "fresh-state", database_url=None, id_key=None)
        with pytest.raises(KeyMismatch, match="is missing"):
            verified_id_key(lost, engine)
        assert not (tmp_path / "fresh-state" / "id_key").exists()


def test_relabelled_old_snapshots_reach_the_online_store_incrementally(built, tiny_bert):
    """A new sentiment source rewrites every text profile at its review's time (years
    ago); `materialize` (incremental) still brings them online, not only rows newer
    than the last materialization."""
    from portrait.features.build import build_features
    from portrait.featurestore import repo as featurestore

    class EveryoneNegative:
        source = "model:test-labeler/1"

        def __call__(self, reviews):
            return pd.Series(["negative"] * len(reviews), index=reviews.index)

    settings, engine, _ = built
    settings, store = feature_store(settings, "postgres")
    featurestore.materialize(settings, full=True)
    with engine.connect() as conn:
        user = conn.execute(sa.text("SELECT user_id FROM user_text_profile LIMIT 1")).scalar()
    assert featurestore.online_portrait(store, user)["sentiment_source"] == "ratings"
    assert featurestore.late_snapshots(settings, store) == {}  # nothing written since
    build_features(engine, encoder_path=str(tiny_bert), sentiment=EveryoneNegative(), progress=False)
    late = featurestore.late_snapshots(settings, store)
    # the users' snapshots were rewritten (text profiles and behaviour), the items' were not
    assert set(late) == {"user_text_profile", "user_behavior"} and late["user_text_profile"].year < 2015
    featurestore.materialize(settings)
    online = featurestore.online_portrait(store, user)
    assert online["sentiment_source"] == "model:test-labeler/1" and online["share_negative"] == 1.0
    assert featurestore.late_snapshots(settings, store) == {}
