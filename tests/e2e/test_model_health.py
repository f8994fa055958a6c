"""Model health over real HTTP: the request log, a challenger in shadow that never
changes an answer, drift from shifted traffic firing a real Prometheus's alert, late
labels graded online, stale features flagged, and the audit trail with a rollback
served without a reload."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.deployment import API_KEY, free_port, sh

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
USER = "A2IBPI20UZIR0U"
ITEM = "1384719342"
SHOPPERS = 30
# another product domain, and far longer than the shop's reviews: what drift must see
SHIFTED = "The espresso machine's boiler pressure gauge, steam wand and grinder burrs all " * 30


def post(d, path, body, admin=False):
    return httpx.post(f"{d.url}{path}", json=body, headers=d.headers(admin), timeout=60)


def sql(d, query: str) -> list[str]:
    out = sh(f'psql "$(portrait db url | sed \'s/+psycopg//\')" -Atc "{query}"', d.env)
    return [line for line in out.splitlines() if line]


def until(check, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


def copy_version(d, name: str) -> str:
    script = (
        "from registry import tracking; from portrait.settings import get_settings; "
        "tracking.configure(get_settings()); from mlflow import MlflowClient; c = MlflowClient(); "
        f"v = c.get_model_version_by_alias('{name}', 'champion'); "
        f"print(c.create_model_version('{name}', v.source, run_id=v.run_id).version)"
    )
    return sh(f'python -c "{script}"', d.env).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def traffic(deployment):
    """A challenger set, then shoppers who are scored and then review the item they
    were scored on, in another domain's words."""
    d = deployment
    before = post(d, "/rating", {"user_id": USER, "item_ids": [ITEM]}).json()
    version = copy_version(d, "rating-predictor")
    sh(f"portrait models challenger rating-predictor {version}", d.env)
    assert post(d, "/admin/reload", {}, admin=True).status_code == 200
    items = sql(d, "SELECT item_id FROM items ORDER BY item_id LIMIT 30")
    for i in range(SHOPPERS):
        shopper, item = f"health-shopper-{i}", items[i % len(items)]
        assert post(d, "/rating", {"user_id": shopper, "item_ids": [item]}).status_code == 200
        assert post(d, "/recommend", {"user_id": USER, "k": 5}).status_code == 200
        r = post(d, "/reviews", {"user_id": shopper, "item_id": item, "rating": 1 + i % 5, "text": SHIFTED + str(i)})
        assert r.status_code == 200, r.text
    after = post(d, "/rating", {"user_id": USER, "item_ids": [ITEM]}).json()
    time.sleep(3)  # the log's writer and the shadow thread are off the request path
    return {"before": before, "after": after, "challenger": version}


def test_the_shadow_never_changes_an_answer_and_its_agreement_is_logged(deployment, traffic):
    d = deployment
    assert traffic["after"]["ratings"] == traffic["before"]["ratings"]
    assert traffic["after"]["models"] == traffic["before"]["models"]
    shadowed = sql(d, "SELECT count(*) FROM request_log WHERE alias = 'challenger' AND error IS NULL")
    assert int(shadowed[0]) >= SHOPPERS
    out = sh("portrait models compare rating-predictor", d.env)
    assert f"v{traffic['challenger']}" in out and "shadow challenger" in out
    assert "rating_difference 0.000" in out  # the challenger is a copy of the champion
    assert "online rule: keep the champion" in out  # a copy is not better


def test_the_log_holds_pseudonyms_only_and_late_labels_are_graded(deployment, traffic):
    d = deployment
    users = sql(d, "SELECT DISTINCT user_id FROM request_log WHERE user_id IS NOT NULL")
    assert users and not any(u.startswith("health-shopper") or u == USER for u in users)
    out = sh("portrait monitor --no-mlflow", d.env)
    rmse = [line for line in out.splitlines() if "champion" in line and " rmse " in line]
    assert rmse and "[" in rmse[0] and "offline test" in rmse[0], out
    assert any("macro_f1" in line and "[" in line for line in out.splitlines()), out
    assert any("text_chars" in line and "drifted" in line for line in out.splitlines()), out


def test_shifted_traffic_fires_the_drift_alert_in_a_real_prometheus(deployment, traffic, tmp_path):
    if not shutil.which("prometheus"):
        pytest.skip("prometheus (Debian's package) not installed")
    d = deployment

    def published() -> str | None:
        text = httpx.get(f"{d.url}/metrics", headers=d.headers()).text
        return text if "portrait_feature_psi{" in text else None

    metrics = until(published, 30, "the service publishes PSI")
    assert "portrait_shadow_agreement" in metrics and "portrait_feature_freshness_seconds" in metrics
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(REPO / "serving" / "prometheus" / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "portrait",
                        "authorization": {"credentials": API_KEY},
                        "static_configs": [{"targets": [d.url.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def firing():
            try:
                alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            except (httpx.HTTPError, ValueError, KeyError):
                return None
            return [a for a in alerts if a["labels"]["alertname"] == "PortraitFeatureDrift" and a["state"] == "firing"]

        fired = until(firing, 60, "PortraitFeatureDrift fires")
        assert any(a["labels"]["feature"] == "text_chars" for a in fired)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_values_past_the_ttl_are_flagged_stale(deployment):
    d = deployment
    script = (
        "import datetime as dt, pandas as pd; from portrait.settings import get_settings; "
        "from portrait.store import database; from portrait.privacy.idkey import verified_id_key; "
        "from portrait.privacy.pseudonyms import pseudonymize; from portrait.featurestore.repo import feature_store; "
        "s = get_settings(); key = verified_id_key(s, database.engine(s)); store = feature_store(s); "
        f"dim = len(store.get_online_features(features=['user_text_profile:user_embedding'], entity_rows=[{{'user_id': pseudonymize('{USER}', key)}}]).to_dict()['user_embedding'][0]); "
        "t = dt.datetime(1980, 1, 1, tzinfo=dt.timezone.utc); "
        "store.push('user_text_push', pd.DataFrame({'user_id': [pseudonymize('stale-shopper', key)], "
        "'embedded_review_count': [1], 'user_embedding': [[0.1] * dim], 'share_negative': [0.0], "
        "'share_neutral': [0.0], 'share_positive': [1.0], 'sentiment_source': ['ratings'], 'interest_tags': [''], "
        "'event_timestamp': [t], 'created_timestamp': [t]}))"
    )
    sh(f'python -c "{script}"', d.env)
    stale = post(d, "/profile", {"user_id": "stale-shopper"})
    assert stale.status_code == 200, stale.text
    assert stale.json()["stale_features"] == ["user_text_profile"]  # 46 years old, the TTL is 40
    fresh = post(d, "/profile", {"user_id": USER}).json()
    assert fresh["stale_features"] == []


def test_every_alias_change_is_audited_and_a_rollback_is_served_without_a_reload(deployment, traffic):
    d = deployment
    new = traffic["challenger"]
    sh(f"portrait models promote rating-predictor {new} --force", d.env)

    def served() -> str:
        return post(d, "/rating", {"user_id": USER, "item_ids": [ITEM]}).json()["models"]["rating_predictor"]

    until(lambda: served() == new, 20, f"v{new} served after the promotion")
    sh("portrait models rollback rating-predictor", d.env)
    until(lambda: served() != new, 20, "the previous champion served after the rollback")
    history = sh("portrait models history rating-predictor", d.env).splitlines()
    assert history[0].split()[2] == "rollback" and history[1].split()[2] == "force", history
    assert any("v- -> v1" in line for line in history), history  # the fixture's first promotion


def test_a_sentiment_challenger_in_shadow_never_changes_the_labels(deployment):
    d = deployment
    texts = {"texts": ["Great strings, bright tone", "Broke in a day", "It is fine"]}
    before = post(d, "/sentiment", texts).json()
    version = copy_version(d, "review-sentiment")
    sh(f"portrait models challenger review-sentiment {version}", d.env)
    try:
        assert post(d, "/admin/reload", {}, admin=True).status_code == 200
        time.sleep(6)  # the sentiment worker polls its aliases (PORTRAIT_CHAMPION_POLL_SECONDS, 5 s)
        after = [post(d, "/sentiment", texts).json() for _ in range(3)]
        assert all(a["results"] == before["results"] for a in after)

        def shadowed() -> int:
            rows = sql(
                d,
                "SELECT count(*) FROM request_log WHERE model = 'review-sentiment' AND alias = 'challenger'"
                " AND error IS NULL AND prediction ? 'champion'",
            )
            return int(rows[0])

        until(shadowed, 20, "the sentiment challenger's answers logged")
        out = sh("portrait models compare review-sentiment", d.env)
        assert "label_agreement 1.000" in out, out
    finally:
        sh("portrait models challenger review-sentiment --clear", d.env)
