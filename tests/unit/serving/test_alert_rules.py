"""The Prometheus alert rules: valid (promtool) and written on series the service exposes."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from serving.health import gauges

RULES = Path(__file__).resolve().parents[3] / "serving" / "prometheus" / "alerts.yml"


def test_promtool_accepts_the_rules():
    if not shutil.which("promtool"):
        if os.environ.get("CI"):
            pytest.fail("promtool (Debian's prometheus) is needed to check the alert rules")
        pytest.skip("promtool not installed")
    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_series_a_rule_reads_is_one_the_service_exposes():
    exposed = {"portrait_request_log_dropped_total"}
    for metric in gauges().values():
        name = metric._name  # prometheus_client strips _total from counters' names
        exposed.add(name + "_total" if metric._type == "counter" else name)
    used = set(re.findall(r"\bportrait_[a-z_]+", RULES.read_text()))
    assert used and used <= exposed, used - exposed
