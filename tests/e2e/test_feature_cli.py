"""The feature store as a user drives it: portrait commands and the feast CLI,
in a fresh state directory (embedded PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_ingest import real_lines

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def run(cmd: str, env: dict, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(["bash", "-c", cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_build_apply_materialize_and_get_a_portrait(tmp_path, tiny_bert):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_", "FEAST_"))}
    env.update(PORTRAIT_STATE_DIR=str(tmp_path / "state"), PORTRAIT_ENCODER=str(tiny_bert), PATH=f"{BIN}:{env['PATH']}")
    data = tmp_path / "reviews.json"
    data.write_bytes(b"".join(real_lines(300)))
    try:
        run(f"portrait db up && portrait db migrate && portrait ingest amazon-reviews {data}", env)
        built = run("portrait features build", env)
        assert "embedded 300 reviews" in built.stdout
        # the README's feast path, verbatim in spirit: env, apply, materialize-incremental
        run(
            'eval "$(portrait env)" && cd feature_repo && feast apply && '
            "feast materialize-incremental $(date -u +%Y-%m-%dT%H:%M:%S)",
            env,
        )
        got = run("portrait features get --user A2IBPI20UZIR0U", env).stdout
        assert "review_count_total" in got and "user_embedding" in got and "32-d vector" in got
        unknown = subprocess.run(
            ["portrait", "features", "get", "--user", "NOBODY"], env=env, capture_output=True, text=True, timeout=120
        )
        assert unknown.returncode != 0 and "no online features for user NOBODY" in unknown.stderr
    finally:
        subprocess.run(["portrait", "db", "down"], env=env, capture_output=True, timeout=60)
