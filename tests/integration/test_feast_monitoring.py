"""Feast's own data-quality monitoring, enabled in feature_repo/: statistics per view
after a materialization, served by Feast's REST API, and the Feast UI's Monitoring
page showing them in headless Chromium (not "Monitoring Is Not Enabled")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.deployment import free_port
from tests.helpers.featurestore import feature_store
from tests.helpers.report import chromium

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_statistics_reach_feasts_api_and_its_ui_monitoring_page(built, tmp_path):
    from portrait.featurestore import repo as featurestore

    settings, _, _ = built
    settings, store = feature_store(settings, "postgres")
    featurestore.materialize(settings, full=True)
    done = featurestore.feature_statistics(settings)
    assert done["computed_feature_views"] >= 4 and done["computed_features"] > 0, done

    from feast.monitoring.monitoring_service import MonitoringService

    views = {
        row["feature_view_name"] for row in MonitoringService(store).get_feature_view_metrics(project=store.project)
    }
    assert {"user_behavior", "item_stats"} <= views

    port = free_port()
    env = {**os.environ, **featurestore.feast_env(settings)}
    ui = subprocess.Popen(
        [str(Path(sys.executable).with_name("feast")), "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO / "feature_repo",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                got = httpx.get(
                    f"{url}/api/v1/monitoring/metrics/feature_views", params={"project": store.project}, timeout=5
                )
                if got.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert got.status_code == 200 and got.json(), got.text[:500]
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ]
        dom = subprocess.run(
            [chromium(), *flags, f"{url}/p/{store.project}/monitoring"], capture_output=True, text=True, timeout=180
        ).stdout
        assert "Monitoring" in dom and "Monitoring Is Not Enabled" not in dom, dom[-2000:]
        # the page's table of per-feature statistics, not only the navigation
        assert "Null Rate" in dom and "review_count_total" in dom and "item_rating_mean" in dom, dom[-2000:]
    finally:
        import signal

        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
