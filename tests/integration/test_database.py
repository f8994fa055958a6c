"""The embedded server and the Alembic migrations against real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def _portrait(state, *args, env_extra=None):
    import os

    env = {**os.environ, "PORTRAIT_STATE_DIR": str(state), "PORTRAIT_DATABASE_URL": ""}
    env.pop("PORTRAIT_DATABASE_URL")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "portrait.cli.app", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_embedded_up_is_idempotent_and_concurrent_starts_do_not_fail(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "PORTRAIT_DATABASE_URL"}
    env["PORTRAIT_STATE_DIR"] = str(tmp_path)
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "portrait.cli.app", "db", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in starts]
    assert all(code == 0 for code, _ in results), results
    try:
        assert _portrait(tmp_path, "db", "up").returncode == 0
        status = _portrait(tmp_path, "db", "status")
        assert status.returncode == 0 and "running" in status.stdout
        # the URL works from another process
        url = _portrait(tmp_path, "db", "url").stdout.strip()
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sqlalchemy as sa; print(sa.create_engine({url!r}).connect().execute(sa.text('select current_database()')).scalar())",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.stdout.strip() == "portrait", probe.stderr
        assert "/portrait_mlflow?" in _portrait(tmp_path, "db", "url", "--database", "mlflow").stdout
    finally:
        assert _portrait(tmp_path, "db", "down").stdout.strip() == "stopped"
    assert _portrait(tmp_path, "db", "status").returncode == 1
    assert _portrait(tmp_path, "db", "down").stdout.strip() == "not running"
    url = _portrait(tmp_path, "db", "url")
    assert url.returncode != 0 and "portrait db up" in url.stderr


def test_external_profile_never_starts_a_server(tmp_path):
    from tests.helpers.databases import require_external

    url = require_external("PORTRAIT_TEST_DATABASE_URL")
    res = _portrait(tmp_path, "db", "status", env_extra={"PORTRAIT_DATABASE_URL": url})
    assert res.returncode == 0 and res.stdout.startswith("external: running")
    down = _portrait(tmp_path, "db", "down", env_extra={"PORTRAIT_DATABASE_URL": url})
    assert down.returncode != 0 and "never stops" in down.stderr
    assert not (tmp_path / "pgdata").exists()


def test_migrations_downgrade_to_base_and_back(profile_settings):
    from portrait.store import database, migrate

    engine = database.engine(profile_settings)
    try:
        migrate.downgrade(profile_settings, "base")
        assert migrate.current_revision(profile_settings) is None
        assert not set(sa.inspect(engine).get_table_names()) & {"users", "reviews", "events"}
        # a command run before `portrait db migrate` says so in one line, not a traceback
        env = {"PORTRAIT_ID_KEY": profile_settings.id_key}
        if profile_settings.database_url:
            env["PORTRAIT_DATABASE_URL"] = profile_settings.database_url
        out = profile_settings.state_dir / "unmigrated-report"
        unmigrated = _portrait(profile_settings.state_dir, "report", "--out", str(out), env_extra=env)
        assert unmigrated.returncode == 1, unmigrated.stderr
        assert "run `portrait db migrate`" in unmigrated.stderr and "Traceback" not in unmigrated.stderr
        migrate.upgrade(profile_settings)
        assert migrate.current_revision(profile_settings) == migrate.head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert {
            "users",
            "items",
            "reviews",
            "events",
            "ingest_runs",
            "ingest_rejects",
            "user_behavior",
            "item_stats",
            "review_embeddings",
            "user_text_profile",
            "item_text_profile",
            "feature_builds",
            "forgotten_users",
            "id_key_fingerprint",
        } <= tables
    finally:
        engine.dispose()
