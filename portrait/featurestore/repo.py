"""Feast wiring: the environment feature_store.yaml reads, the FeatureStore
object, apply / materialize, and reading a user's online portrait.

`import feast` takes seconds: it happens only inside the functions that need it."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from portrait.settings import REPO_ROOT, Settings
from portrait.store import database

FEATURE_REPO = REPO_ROOT / "feature_repo"
POSTGRES_YAML = FEATURE_REPO / "feature_store.yaml"
REDIS_YAML = FEATURE_REPO / "feature_store.redis.yaml"


def redis_connection_string(redis_url: str) -> str:
    """redis://[:password@]host:port/db -> Feast's 'host:port,db=N[,password=...]'."""
    u = urlparse(redis_url)
    if u.scheme not in ("redis", "rediss"):
        raise ValueError(f"PORTRAIT_REDIS_URL must start with redis:// or rediss://, got {redis_url!r}")
    parts = [f"{u.hostname or '127.0.0.1'}:{u.port or 6379}"]
    db = (u.path or "/0").lstrip("/") or "0"
    parts.append(f"db={db}")
    if u.password:
        parts.append(f"password={u.password}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def feast_env(settings: Settings) -> dict[str, str]:
    """The variables feature_store.yaml expands, for this profile."""
    app = database.server_url(settings)
    host = app.query.get("host") or app.host or "127.0.0.1"
    registry = database.server_url(settings, database.database_name(settings, "feast"))
    env = {
        "PORTRAIT_PG_HOST": str(host),
        "PORTRAIT_PG_PORT": str(app.port or app.query.get("port") or 5432),
        "PORTRAIT_PG_USER": app.username or "postgres",
        "PORTRAIT_PG_PASSWORD": app.password or "",
        # the embedded server speaks only over its Unix socket: no TLS there
        "PORTRAIT_PG_SSLMODE": str(
            app.query.get("sslmode") or ("disable" if settings.profile == "local" else "prefer")
        ),
        "PORTRAIT_PG_DATABASE": database.database_name(settings, "app"),
        "PORTRAIT_FEAST_DATABASE": database.database_name(settings, "feast"),
        "PORTRAIT_FEAST_REGISTRY_URL": registry.render_as_string(hide_password=False),
    }
    if settings.redis_url:
        env["PORTRAIT_REDIS_CONNECTION"] = redis_connection_string(settings.redis_url)
        env["FEAST_FS_YAML_FILE_PATH"] = str(REDIS_YAML)
    return env


def yaml_path(settings: Settings) -> Path:
    return REDIS_YAML if settings.redis_url else POSTGRES_YAML


def repo_config(settings: Settings, overrides: dict[str, str] | None = None, *, stock: bool = False):
    """Feast's RepoConfig from our yaml with this profile's values (no os.environ
    edits); overrides replace some of them (benchmarks use a scratch registry).
    stock: Feast's defaults where the yaml departs from them (the materialization
    settings and the COPY-writing PostgreSQL store), the baseline they are measured against."""
    import yaml
    from feast.repo_config import RepoConfig

    env = {**feast_env(settings), **(overrides or {})}
    # ${VAR} as Feast's own loader expands it, from this profile's values
    text = re.sub(
        r"\$\{(\w+)\}",
        lambda m: env.get(m.group(1), os.environ.get(m.group(1), m.group(0))),
        yaml_path(settings).read_text(),
    )
    raw = yaml.safe_load(text)
    if stock:
        raw.pop("materialization", None)
        from portrait.featurestore.online_stores import TYPE as COPY_WRITING_STORE

        if raw["online_store"]["type"] == COPY_WRITING_STORE:
            raw["online_store"]["type"] = "postgres"
    if settings.engine == "ray" and not stock:
        raw["batch_engine"] = ray_engine(settings)
    config = RepoConfig(**raw)
    config.repo_path = FEATURE_REPO
    return config


def ray_engine(settings: Settings) -> dict:
    """Feast's ray.engine block (PORTRAIT_ENGINE=ray): materialization's transform and
    online writes run as Ray tasks, on the cluster at PORTRAIT_RAY_ADDRESS or on a
    local Ray of PORTRAIT_RAY_CPUS CPUs. Writes go in parallel: both online stores take
    concurrent upserts."""
    cpus = settings.local_ray_cpus
    block: dict = {"type": "ray.engine", "write_concurrency": cpus if not settings.ray_address else 8}
    if settings.ray_address:
        block["ray_address"] = settings.ray_address
    else:
        # Ray takes every CPU and a third of memory by default; a local cluster gets what it is given
        block["ray_conf"] = {"num_cpus": cpus}
        block["max_workers"] = cpus
    return block


def feature_store(settings: Settings, overrides: dict[str, str] | None = None, *, stock: bool = False):
    from feast import FeatureStore

    return FeatureStore(config=repo_config(settings, overrides, stock=stock), repo_path=str(FEATURE_REPO))


def apply(settings: Settings, overrides: dict[str, str] | None = None) -> None:
    """`feast apply` of feature_repo/ for this profile."""
    import sys

    from feast.repo_operations import apply_total

    # Feast imports the repo's files as top-level modules from the cwd, and chdirs there.
    cwd, path = os.getcwd(), list(sys.path)
    sys.path.insert(0, str(FEATURE_REPO))
    try:
        apply_total(repo_config(settings, overrides), FEATURE_REPO, skip_source_validation=False)
    finally:
        os.chdir(cwd)
        sys.path[:] = path


def materialize(
    settings: Settings,
    end: datetime | None = None,
    *,
    full: bool = False,
    overrides: dict[str, str] | None = None,
    stock: bool = False,
) -> None:
    """`feast materialize-incremental` up to end (default now), with Feast's progress
    bars. full=True reloads everything (after switching online stores, say: Feast
    keeps one materialization history per feature view, not per store)."""
    store = feature_store(settings, overrides, stock=stock)
    end = end or datetime.now(timezone.utc)
    if full:
        store.materialize(start_date=datetime(1970, 1, 1, tzinfo=timezone.utc), end_date=end)
        return
    for view, start in late_snapshots(settings, store).items():
        store.materialize(start_date=start, end_date=end, feature_views=[view])
    store.materialize_incremental(end_date=end)


def late_snapshots(settings: Settings, store) -> dict[str, datetime]:
    """Online views whose offline table got rows after their last materialization with
    event times before it: a rebuild rewrote old snapshots (a new sentiment champion
    relabels every text profile as of each review; a forgotten user's items). Feast's
    incremental window starts at the last end, by event time, so it would skip them;
    the view is materialized from the earliest such event time instead. Returns view ->
    that time."""
    import sqlalchemy as sa

    late: dict[str, datetime] = {}
    engine = database.engine(settings)
    try:
        with engine.connect() as conn:
            for view in store.list_feature_views():
                source, last = view.batch_source, view.most_recent_end_time
                if not view.online or last is None or not source.created_timestamp_column:
                    continue
                last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
                start = conn.execute(
                    sa.text(
                        f"SELECT min({source.timestamp_field}) FROM {source.get_table_query_string()} "
                        f"WHERE {source.created_timestamp_column} > :last"
                    ),
                    {"last": last},
                ).scalar()
                if start is not None and start < last:
                    late[view.name] = start
    finally:
        engine.dispose()
    return late


def feature_statistics(settings: Settings) -> dict:
    """Feast's data-quality statistics of every feature view (its baseline where missing,
    then each window: daily to quarterly, up to the newest event), what the Feast UI's
    Monitoring page shows. Returns Feast's summary (views and features computed)."""
    from feast.monitoring.monitoring_service import MonitoringService
    from feast.types import Array

    class ScalarMonitoring(MonitoringService):
        """Feast 0.67 takes Array(Float32) (the embeddings) for a number, and its PostgreSQL
        statistics then cast real[] to float8 and fail the whole view: arrays are left out."""

        @staticmethod
        def _classify_fields(feature_view, feature_names=None, fields=None):
            fields = feature_view.features if fields is None else fields
            scalars = [f for f in fields if not isinstance(f.dtype, Array)]
            return MonitoringService._classify_fields(feature_view, feature_names, scalars)

    store = feature_store(settings)
    return ScalarMonitoring(store).auto_compute(project=store.project)


# The feature services (feature_repo/portrait_features.py) are the contract: the
# lists of features every consumer reads come from them, never re-typed.
PROFILE_SERVICE = "profile_v1"
RECOMMEND_SERVICE = "recommend_v1"


def pg_connect(cfg):
    """A psycopg connection from a Feast PostgreSQL store config (offline or online)."""
    import psycopg

    return psycopg.connect(
        host=cfg.host,
        port=cfg.port,
        dbname=cfg.database,
        user=cfg.user,
        password=cfg.password or None,
        sslmode=cfg.sslmode or "prefer",
    )


def service_features(store, service: str) -> list[str]:
    """The feature names a feature service declares, in its order (on-demand outputs included)."""
    found = store.get_feature_service(service)
    return [f.name for projection in found.feature_view_projections for f in projection.features]


def service_refs(store, service: str, join_key: str) -> list[str]:
    """'view:feature' references of the service's stored views keyed by join_key
    (user_id, item_id); on-demand views are computed per request and left out."""
    from feast.errors import FeatureViewNotFoundException

    refs = []
    for projection in store.get_feature_service(service).feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:  # an on-demand view
            continue
        if join_key in view.join_keys:
            refs += [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
    return refs


def online_portrait(store, user_id: str) -> dict[str, object]:
    """The user's online features (profile_v1) by pseudonymized id; {} if unknown."""
    response = store.get_online_features(
        features=store.get_feature_service(PROFILE_SERVICE), entity_rows=[{"user_id": user_id}]
    ).to_dict()
    values = {k: v[0] for k, v in response.items() if k != "user_id"}
    return values if any(v is not None for v in values.values()) else {}


def _hash_joins():
    """Feast's PostgreSQL offline store with nested-loop joins turned off for its
    connections. Its point-in-time join reads an entity table it has just created
    and never analyzed, so the planner expects one row from every CTE and picks
    nested loops that compare every pair of rows (docs/benchmarks/ gives the measured
    cost; tests/integration/test_feature_store.py holds the frames equal)."""
    from portrait.featurestore.feast_private import offline_connection_options

    return offline_connection_options("-c enable_nestloop=off")


def historical_features(store, entity_df, features, chunk: int = 5000, progress: bool = False):
    """Feast's point-in-time join (its own query, so point-in-time correctness is
    Feast's), planned with hash joins (see _hash_joins), in chunks of entity rows
    so that memory stays bounded and progress shows."""
    import pandas as pd
    from tqdm import tqdm

    parts = []
    with _hash_joins():
        for start in tqdm(
            range(0, len(entity_df), chunk),
            desc="feast point-in-time join",
            unit="chunk",
            disable=not progress,
            leave=False,
        ):
            part = entity_df.iloc[start : start + chunk]
            parts.append(store.get_historical_features(entity_df=part, features=features).to_df())
    return pd.concat(parts, ignore_index=True) if parts else entity_df.iloc[0:0]
