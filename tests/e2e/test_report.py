"""The operations report as a person sees it: rendered by headless Chromium,
every chart loaded, the screenshot not blank."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import sh

pytestmark = pytest.mark.e2e


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is needed to check the report (apt-get install chromium)")
        pytest.skip("chromium not installed")
    return path


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[str, float]:
    """The page's DOM after load (scripts run) and the share of dark pixels of its screenshot."""
    browser = chromium()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
    ]
    uri = page.as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", uri], capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,3000", f"--screenshot={shot}", uri], capture_output=True, timeout=120
    )
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    return dom, float((pixels < 200).mean())


def test_report_renders_with_every_chart_and_is_not_blank(deployment, tmp_path):
    out = tmp_path / "report"
    sh(f"portrait report --out {out}", deployment.env)
    dom, dark = render_in_chromium(out / "index.html", tmp_path)
    charts = re.search(r'data-charts="(\d+)"', dom)
    loaded = re.search(r'data-charts-loaded="(\d+)"', dom)
    assert charts and loaded, dom[:500]
    assert int(charts.group(1)) >= 4 and loaded.group(1) == charts.group(1)
    assert 0.01 < dark < 0.9, f"screenshot looks blank or broken ({dark:.3f} dark pixels)"
