"""A whole Portrait deployment for the e2e tests, built the way a user builds it:
CLI commands on a fresh state directory (embedded PostgreSQL), a private Redis
online store (so a test can stop it), and `bentoml serve` on a free port."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portrait.cli.demo import wait_ready
from tests.helpers.data import REPO, real_lines
from tests.helpers.deployment import ADMIN_KEY, API_KEY, deployment_env, free_port, sh


def _stop_with_pytest() -> None:
    """Runs in the child before exec: on Linux the child gets SIGTERM when pytest dies,
    even by SIGKILL, so a test run killed mid-way leaves no service or Redis behind."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class PrivateRedis:
    """A redis-server of our own (append-only file, so data survives a restart)."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.dir, self.proc = free_port(), workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_stop_with_pytest,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Deployment:
    def __init__(self, env: dict, url: str, redis: PrivateRedis, proc: subprocess.Popen, log: Path) -> None:
        self.env, self.url, self.redis, self.proc, self.log = env, url, redis, proc, log

    def headers(self, admin: bool = False) -> dict:
        return {"X-API-Key": ADMIN_KEY if admin else API_KEY}


def start_deployment(root: Path, env: dict, tiny_bert: Path, chinese: Path | None, redis=None):
    """Build a deployment under root the way a user does (CLI commands), serve it with
    `portrait serve`'s launcher, and yield it; torn down after."""
    data = root / "reviews.json"
    data.write_bytes(b"".join(real_lines(400)))
    split = "--train-before 2012-01-01 --test-from 2013-01-01"
    sh(
        f"portrait db up && portrait db migrate && portrait ingest amazon-reviews {data} && portrait features build "
        f"&& portrait features apply && portrait features materialize",
        env,
    )
    sh(
        # a 400-review shop: no class minimum; the fine-tuned candidate served (the baseline's
        # registration and serving are tested in tests/integration/test_training.py)
        f"portrait train sentiment --max-steps 8 --batch-size 16 --register fine-tuned --min-class-examples 0 {split} "
        f"&& portrait train rating --epochs 3 {split} "
        # tiny models need not beat their baselines: the gate is tested in tests/integration/test_training.py
        "&& portrait models promote review-sentiment 1 --force && portrait models promote rating-predictor 1 --force",
        env,
    )
    if (
        chinese is not None
    ):  # a bilingual shop: Chinese texts routed to a Chinese model (trained on the Chinese data only)
        sh(
            f"portrait train sentiment --language zh --chinese 200 --model {chinese} --max-steps 4 "
            "--register fine-tuned --min-class-examples 0 "
            f"--batch-size 16 {split} && portrait models promote review-sentiment-zh 1 --force",
            env,
        )
    port = free_port()
    log = root / "serve.log"
    proc = subprocess.Popen(
        # as `portrait serve` runs it: the process manager on Unix sockets, BentoML's home in the state
        [sys.executable, "-m", "serving.launch", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO,
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 - the server process writes it after we return
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_stop_with_pytest,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield Deployment(env, url, redis, proc, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if redis is not None:
            redis.stop()
        subprocess.run(["portrait", "db", "down"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory, tiny_bert, tiny_multilingual_bert):
    """The local profile (embedded PostgreSQL) with a Redis online store of its own."""
    if not shutil.which("redis-server"):
        if os.environ.get("CI"):
            pytest.fail("redis-server is needed for the e2e tests")
        pytest.skip("redis-server not installed")
    root = tmp_path_factory.mktemp("deployment")
    redis = PrivateRedis(root)
    redis.start()
    env = deployment_env(root, tiny_bert, PORTRAIT_REDIS_URL=redis.url)
    yield from start_deployment(root, env, tiny_bert, tiny_multilingual_bert, redis)


@pytest.fixture(scope="session")
def pg_deployment(tmp_path_factory, tiny_bert):
    """The production profile (PORTRAIT_DATABASE_URL: the machine's PostgreSQL, a fresh
    database) with the PostgreSQL online store, and no BENTOML_HOME given (the launcher
    puts it in the state directory)."""
    from portrait.settings import Settings
    from portrait.store import database
    from tests.helpers.databases import drop_external_database, fresh_external_database, require_external

    base = require_external("PORTRAIT_TEST_DATABASE_URL")
    url, _ = fresh_external_database(base)
    root = tmp_path_factory.mktemp("pg-deployment")
    env = deployment_env(root, tiny_bert, PORTRAIT_DATABASE_URL=url, PORTRAIT_ID_KEY="e2e-production-id-key-0123456789")
    env.pop("BENTOML_HOME")
    try:
        yield from start_deployment(root, env, tiny_bert, None)
    finally:
        settings = Settings(state_dir=root / "state", database_url=url)
        for role in database.ROLES:
            drop_external_database(base, database.database_name(settings, role))
