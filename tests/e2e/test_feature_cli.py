"""The feature store as a user drives it: portrait commands and the feast CLI,
in a fresh state directory (embedded PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import REPO, real_lines

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


def _serve_until(cmd: str, env: dict, url: str, cwd: Path = REPO, timeout: float = 120):
    """Start a UI server with cmd; (process, first successful response of url)."""
    import time

    import httpx

    proc = subprocess.Popen(
        ["bash", "-c", f"exec {cmd}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return proc, response
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_the_uis_the_readme_names_start_and_portrait_env_serves_mlflow(tmp_path):
    """`eval "$(portrait env)" && cd feature_repo && feast ui`, `make mlflow-ui`'s
    server, and plain mlflow in a shell after `eval "$(portrait env)"`."""
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_", "FEAST_", "MLFLOW_"))}
    env.update(PORTRAIT_STATE_DIR=str(tmp_path / "state"), PATH=f"{BIN}:{env['PATH']}")
    try:
        run("portrait db up && portrait db migrate && portrait features apply && portrait models list", env)
        feast_ui, page = _serve_until(
            "bash -c 'eval \"$(portrait env)\" && cd feature_repo && feast ui --port 8899'",
            env,
            "http://127.0.0.1:8899/",
        )
        try:
            assert "<html" in page.text.lower()
            projects = httpx.get("http://127.0.0.1:8899/projects-list.json", timeout=10).json()["projects"]
            assert "portrait" in [p["id"] for p in projects]
        finally:
            _stop(feast_ui)

        mlflow_ui, _ = _serve_until(
            f'mlflow server --backend-store-uri "$(portrait db url --database mlflow)" '
            f"--default-artifact-root {tmp_path / 'artifacts'} --host 127.0.0.1 --port 5099",
            env,
            "http://127.0.0.1:5099/health",
        )
        try:
            found = httpx.post(
                "http://127.0.0.1:5099/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=10
            ).json()
            assert "portrait" in [e["name"] for e in found["experiments"]]
        finally:
            _stop(mlflow_ui)

        shell = run(
            'eval "$(portrait env)" && python -c "import mlflow; '
            "print(mlflow.get_tracking_uri()); print(mlflow.get_registry_uri()); "
            'print([e.name for e in mlflow.search_experiments()])"',
            env,
        ).stdout.splitlines()
        url = run("portrait db url --database mlflow", env).stdout.strip()
        assert shell[0] == url and shell[1] == url and "portrait" in shell[2]
    finally:
        subprocess.run(["portrait", "db", "down"], env=env, capture_output=True, timeout=60)
