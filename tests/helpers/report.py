"""Rendering an HTML page in headless Chromium: its DOM after load and the share of dark pixels of its screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


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
