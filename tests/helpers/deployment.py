"""Running the CLI and a deployment in e2e tests: the environment, keys, free ports and a shell that fails loudly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers.data import REPO

BIN = Path(sys.executable).parent


API_KEY = "e2e-test-key"


ADMIN_KEY = "e2e-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(cmd: str, env: dict, timeout: int = 600) -> str:
    res = subprocess.run(["bash", "-c", cmd], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def deployment_env(root: Path, encoder: Path, **extra: str) -> dict:
    """The environment of a deployment under root: its own state, encoder, keys and
    BentoML home, none of the caller's PORTRAIT_/FEAST_/MLFLOW_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_", "FEAST_", "MLFLOW_"))}
    env.update(
        PORTRAIT_STATE_DIR=str(root / "state"),
        PORTRAIT_ENCODER=str(encoder),
        PORTRAIT_API_KEYS=API_KEY,
        PORTRAIT_ADMIN_KEYS=ADMIN_KEY,
        PATH=f"{BIN}:{env['PATH']}",
        BENTOML_HOME=str(root / "bentoml"),
        # a test shop's traffic is small: health verdicts from tens of answers, recomputed often
        PORTRAIT_DRIFT_MIN_ROWS="20",
        PORTRAIT_ONLINE_MIN_LABELS="5",
        PORTRAIT_MONITOR_EVERY_S="2",
        PORTRAIT_SHADOW_SHARE="1",  # every request shadowed: the tests count them
        **extra,
    )
    return env
