"""The distributed path (PORTRAIT_ENGINE=ray: the feature build's per-entity compute
as Ray tasks, materialization through Feast's ray.engine) stores exactly what the
single-process path stores: the same feature rows and the same online values."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from tests.helpers.featurestore import VIEWS, drop_database, feast_database, online_rows

pytestmark = pytest.mark.integration
FEATURE_TABLES = ("user_behavior", "item_stats", "user_text_profile", "item_text_profile")


def _feature_rows(engine) -> dict[str, list]:
    """Every feature table's rows but created_timestamp (when the row was written)."""
    out = {}
    with engine.connect() as conn:
        for table in FEATURE_TABLES:
            columns = [c["name"] for c in sa.inspect(conn).get_columns(table) if c["name"] != "created_timestamp"]
            out[table] = conn.execute(
                sa.text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns[:2])}")
            ).all()
    return out


def _without_created(rows: dict[str, list]) -> dict[str, list]:
    return {view: [r[:-1] for r in found] for view, found in rows.items()}  # created_ts is the last column


def test_ray_build_and_materialization_equal_local(built, tiny_bert, caplog):
    from portrait.features.build import build_features
    from portrait.features.executor import Compute
    from portrait.featurestore import repo as featurestore

    settings, engine, _ = built
    ray_settings = settings.model_copy(update={"engine": "ray", "ray_cpus": 2})
    assert type(featurestore.repo_config(ray_settings).batch_engine).__name__ == "RayComputeEngineConfig"
    local, local_db = feast_database(settings)
    on_ray, ray_db = feast_database(settings)
    try:
        want_rows = _feature_rows(engine)
        featurestore.apply(settings, local)
        featurestore.materialize(settings, full=True, overrides=local)

        # the same build again from scratch, its compute in 8 Ray tasks per function
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE feature_builds, {', '.join(FEATURE_TABLES)}"))
        compute = Compute.of(ray_settings)
        compute = Compute(compute.engine, compute.ray_address, compute.ray_cpus, rows_per_partition=50)
        with caplog.at_level(logging.INFO, logger="portrait.features.executor"):
            result = build_features(engine, encoder_path=str(tiny_bert), progress=False, compute=compute)
        for fn in ("compute_user_behavior", "compute_user_text_profile", "compute_item_text_profile"):
            assert any(m.startswith(fn) and m.endswith("in 8 Ray tasks") for m in caplog.messages), fn
        assert result.users_rebuilt > 100 and result.reviews_embedded == 0
        got_rows = _feature_rows(engine)
        for table in FEATURE_TABLES:
            assert len(want_rows[table]) > 50 and got_rows[table] == want_rows[table], table

        featurestore.apply(ray_settings, on_ray)
        featurestore.materialize(ray_settings, full=True, overrides=on_ray)
        got, want = online_rows(settings, ray_db), online_rows(settings, local_db)
        for view in VIEWS:
            assert len(want[view]) > 50, view
            assert _without_created({view: got[view]}) == _without_created({view: want[view]}), view
    finally:
        drop_database(settings, local_db)
        drop_database(settings, ray_db)
