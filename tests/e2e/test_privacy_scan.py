"""Runs last in the session (marker privacy_scan; tests/conftest.py orders it after
every other test): after every other e2e test, the
hostile ingest corpus, probes that put raw ids in paths, bodies and bad JSON, and
a forget followed by the shop's next export, no raw user id (and no pseudonym of
the forgotten user) is found in any table of the three databases, any file under
the state directory, BentoML's home or the service log."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers.data import real_lines
from tests.helpers.deployment import sh
from tests.helpers.hostile import amazon_bad_lines, cdnow_bad_lines, events_bad_lines, hostile_ids

pytestmark = [pytest.mark.e2e, pytest.mark.privacy_scan]
PROBE_IDS = [f"PROBEUSER{i:03d}Z" for i in range(40)]


def _probe_the_api(d) -> None:
    h = d.headers()
    for user in PROBE_IDS[:30]:
        httpx.post(f"{d.url}/profile", json={"user_id": user}, headers=h, timeout=30)
    for user in PROBE_IDS[30:35]:
        httpx.get(f"{d.url}/profile/{user}", headers=h, timeout=30)  # ids in a path: 404, never logged
        httpx.post(f"{d.url}/recommend", json={"user_id": user, "k": 2}, headers=h, timeout=30)
    for user in PROBE_IDS[35:]:
        bad_json = ('{"user_id": "' + user + '", "texts": [').encode()
        r = httpx.post(f"{d.url}/sentiment", content=bad_json, headers={**h, "content-type": "application/json"})
        assert r.status_code == 400 and user not in r.text
        r = httpx.post(
            f"{d.url}/reviews", json={"user_id": user, "item_id": "B\x00X", "rating": 5, "text": "t"}, headers=h
        )
        assert r.status_code == 400 and "item_id" in r.text


def _forget_and_reimport(d, tmp_path) -> tuple[str, str]:
    """Forget a real reviewer, then run the shop's next export (the same file) through
    ingest, build and materialize: the user stays gone."""
    records = [json.loads(line) for line in real_lines(400)]
    raw_id = records[5]["reviewerID"]
    item = records[5]["asin"]
    data = tmp_path / "next-export.json"
    data.write_bytes(b"".join(real_lines(400)))
    assert httpx.post(f"{d.url}/profile", json={"user_id": raw_id}, headers=d.headers()).status_code == 200
    review = {"user_id": PROBE_IDS[0], "item_id": item, "rating": 4, "text": "Fine."}
    assert httpx.post(f"{d.url}/reviews", json=review, headers=d.headers(), timeout=60).status_code == 200
    out = sh(f"portrait forget {raw_id} --yes", d.env)
    assert "forgot user" in out
    out = sh(f"portrait ingest amazon-reviews {data}", d.env)
    assert "forgotten" in out and "forgotten 0" not in out and "loaded 0 " in out
    sh("portrait features build --sentiment-from ratings && portrait features materialize", d.env)
    r = httpx.post(f"{d.url}/profile", json={"user_id": raw_id}, headers=d.headers())
    assert r.status_code == 404, r.text
    r = httpx.post(
        f"{d.url}/reviews", json={"user_id": raw_id, "item_id": item, "rating": 4, "text": "back?"}, headers=d.headers()
    )
    assert r.status_code == 410, r.text
    api_run = _app_rows(d, "SELECT * FROM ingest_runs WHERE source = 'api'")
    assert len(api_run) == 1 and api_run[0]["status"] == "running"  # the serving process's run, open while it serves
    run = api_run[0]
    assert run["rows_forgotten"] == 1 and run["rows_loaded"] >= 1  # the accounting says what the API did
    assert run["rows_read"] == run["rows_loaded"] + run["rows_duplicate"] + run["rows_forgotten"] + run["rows_rejected"]
    from portrait.privacy.pseudonyms import pseudonymize

    key = (Path(d.env["PORTRAIT_STATE_DIR"]) / "id_key").read_text().strip().encode()
    return raw_id, pseudonymize(raw_id, key)


def _app_rows(d, sql: str) -> list[dict]:
    from portrait.settings import Settings
    from portrait.store import database

    settings = Settings(state_dir=Path(d.env["PORTRAIT_STATE_DIR"]), database_url=None)
    engine = sa.create_engine(database.server_url(settings))
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    finally:
        engine.dispose()


def _database_dumps(d):
    from portrait.settings import Settings
    from portrait.store import database

    settings = Settings(state_dir=Path(d.env["PORTRAIT_STATE_DIR"]), database_url=None)
    for role in database.ROLES:
        engine = sa.create_engine(database.server_url(settings, database.database_name(settings, role)))
        try:
            with engine.connect() as conn:
                tables = conn.execute(
                    sa.text(
                        "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
                    )
                ).all()
                for schema, table in tables:
                    rows = conn.execute(sa.text(f'SELECT CAST(t.* AS text) FROM "{schema}"."{table}" t')).scalars()
                    yield f"{role}:{schema}.{table}", "\n".join(rows).encode()
        finally:
            engine.dispose()


def _files(*roots: Path):
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if "pgdata" in path.parts:
                continue  # the server's own files: covered by the table scan (dead rows are vacuumed, not dumped)
            yield str(path), path.read_bytes()


def test_no_raw_id_survives_anywhere(deployment, tmp_path):
    d = deployment
    for source, bad in (
        ("amazon-reviews", amazon_bad_lines()),
        ("purchases", cdnow_bad_lines()),
        ("events", events_bad_lines()),
    ):
        path = tmp_path / f"hostile-{source}.txt"
        path.write_bytes(b"".join(bad.values()))
        assert "rejected" in sh(f"portrait ingest {source} {path}", d.env)
    _probe_the_api(d)
    forgotten_raw, forgotten_pseudonym = _forget_and_reimport(d, tmp_path)

    reviewers = {json.loads(line)["reviewerID"] for line in real_lines(400)}
    raw_ids = sorted(hostile_ids() | set(PROBE_IDS) | reviewers | {forgotten_raw, forgotten_pseudonym})
    pattern = re.compile(b"|".join(re.escape(i.encode()) for i in raw_ids))
    state = Path(d.env["PORTRAIT_STATE_DIR"])
    found: dict[str, set[str]] = {}
    sources = [*_database_dumps(d), *_files(state, Path(d.env["BENTOML_HOME"]), d.log)]
    for where, content in sources:
        hits = {m.group().decode() for m in pattern.finditer(content)}
        if where.endswith("public.forgotten_users"):
            hits.discard(forgotten_pseudonym)  # the tombstone: the one place it must stay
        if hits:
            found[where] = hits
    assert found == {}
    assert len(sources) > 50  # the scan saw the databases and the files


def test_the_access_log_names_routes_and_statuses_only(deployment):
    d = deployment
    httpx.post(f"{d.url}/profile", json={"user_id": "ACCESSLOGPROBE"}, headers=d.headers(), timeout=30)
    time.sleep(1)
    lines = [line for line in d.log.read_text().splitlines() if "portrait.access" in line or " key=" in line]
    assert any("POST /profile 404" in line for line in lines), lines[-5:]
    assert not any("ACCESSLOGPROBE" in line for line in d.log.read_text().splitlines())
