"""The operations report as a person sees it: rendered by headless Chromium,
every chart loaded, the screenshot not blank."""

from __future__ import annotations

import re

import pytest

from tests.helpers.deployment import sh
from tests.helpers.report import render_in_chromium

pytestmark = pytest.mark.e2e


def test_report_renders_with_every_chart_and_is_not_blank(deployment, tmp_path):
    out = tmp_path / "report"
    sh(f"portrait report --out {out}", deployment.env)
    dom, dark = render_in_chromium(out / "index.html", tmp_path)
    charts = re.search(r'data-charts="(\d+)"', dom)
    loaded = re.search(r'data-charts-loaded="(\d+)"', dom)
    assert charts and loaded, dom[:500]
    assert int(charts.group(1)) >= 4 and loaded.group(1) == charts.group(1)
    assert 0.01 < dark < 0.9, f"screenshot looks blank or broken ({dark:.3f} dark pixels)"
