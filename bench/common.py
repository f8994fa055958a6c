"""Shared helpers for the benchmarks: scratch databases on the profile's server
(the app's, and Feast's registry + online store), the online rows Feast writes, and
the results file each benchmark writes (docs/benchmarks/results/<name>.md)."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from portrait.settings import Settings, get_settings
from portrait.store import database, migrate


@contextlib.contextmanager
def scratch_database() -> Iterator[Settings]:
    """A migrated throwaway database (dropped afterwards) on the profile's server."""
    base = get_settings()
    admin = database.server_url(base, "postgres") if base.profile == "external" else None
    if admin is None:
        database.up(base)
        admin = database.server_url(base, "postgres")
    name = f"portrait_bench_{uuid.uuid4().hex[:8]}"
    database.create_database(admin, name)
    url = admin.set(database=name).render_as_string(hide_password=False)
    settings = Settings(state_dir=base.state_dir, database_url=url, id_key="bench-pseudonymization-key-32-bytes-long")
    try:
        migrate.upgrade(settings)
        yield settings
    finally:
        drop_database(admin, name)


def drop_database(admin, name: str) -> None:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@contextlib.contextmanager
def scratch_feast(settings: Settings) -> Iterator[dict[str, str]]:
    """A throwaway database for Feast's registry and PostgreSQL online store (dropped
    afterwards); yields the featurestore overrides that point Feast at it."""
    name = f"portrait_bench_feast_{uuid.uuid4().hex[:8]}"
    admin = database.server_url(settings)
    database.create_database(admin, name)
    try:
        yield {
            "PORTRAIT_FEAST_DATABASE": name,
            "PORTRAIT_FEAST_REGISTRY_URL": admin.set(database=name).render_as_string(hide_password=False),
        }
    finally:
        drop_database(admin, name)


def online_rows(engine) -> int:
    """Rows Feast writes per full materialization: the latest row of each entity per online view."""
    with engine.connect() as conn:
        return sum(
            conn.execute(sa.text(f"SELECT count(DISTINCT {key}) FROM {table}")).scalar()
            for table, key in (
                ("user_behavior", "user_id"),
                ("user_text_profile", "user_id"),
                ("item_stats", "item_id"),
                ("item_text_profile", "item_id"),
            )
        )


def engine(settings: Settings):
    """An engine on the profile's server, the embedded one started first if needed."""
    database.ensure_running(settings)
    return database.engine(settings)


RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "results"


class _Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def machine() -> str:
    """The CPU model and core count (and the GPU when torch sees one)."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown"
    return (out.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.strip() else "")


@contextlib.contextmanager
def recorded(name: str, directory: Path = RESULTS_DIR, script: str | None = None) -> Iterator[None]:
    """What the benchmark prints (stdout; progress bars are on stderr) also goes to
    <directory>/<name>.md under the date, machine, commit and command of the run: the
    figures in the docs come from these files, not from hand-typed numbers. `script`:
    the bench/<script>.py that ran, when one script records several variants."""
    script = script or name
    captured = io.StringIO()
    stdout = sys.stdout
    sys.stdout = _Tee(stdout, captured)
    started = datetime.now(timezone.utc)
    try:
        yield
    finally:
        sys.stdout = stdout
        directory.mkdir(parents=True, exist_ok=True)
        header = (
            f"# bench/{script}.py\n\n"
            f"- date: {started:%Y-%m-%d %H:%M} UTC ({(datetime.now(timezone.utc) - started).total_seconds():.0f} s)\n"
            f"- machine: {machine()}\n- commit: {commit()}\n"
            f"- command: `python bench/{script}.py {' '.join(sys.argv[1:])}`\n\n"
        )
        (directory / f"{name}.md").write_text(header + "```\n" + captured.getvalue().rstrip() + "\n```\n")
