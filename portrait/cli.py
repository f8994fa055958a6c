"""The `portrait` command: thin commands over the library functions of every
stage. Heavy imports (feast, torch, mlflow) stay inside the commands that need them."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from portrait.settings import SettingsError, get_settings


class PortraitGroup(click.Group):
    """Turns the errors users can fix (settings, missing files) into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SettingsError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=PortraitGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """Portrait: e-commerce user portraits from reviews, purchases and views."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# --- database -------------------------------------------------------------

@main.group(cls=PortraitGroup)
def db() -> None:
    """The PostgreSQL server: embedded (local profile) or PORTRAIT_DATABASE_URL."""


@db.command()
def up() -> None:
    """Start the embedded server (idempotent) and create the databases."""
    from portrait import database

    settings = get_settings()
    database.up(settings)
    click.echo(database.status(settings).detail)


@db.command()
def down() -> None:
    """Stop the embedded server."""
    from portrait import database

    stopped = database.down(get_settings())
    click.echo("stopped" if stopped else "not running")


@db.command()
def status() -> None:
    """Say whether the profile's server is running; exit 1 if not."""
    from portrait import database

    st = database.status(get_settings())
    click.echo(f"{st.profile}: {'running' if st.running else 'down'}: {st.detail}")
    sys.exit(0 if st.running else 1)


@db.command()
@click.option("--database", "name", default="portrait", show_default=True, help="portrait or mlflow")
def url(name: str) -> None:
    """Print the SQLAlchemy URL of the profile's database (works from any process)."""
    from portrait import database

    click.echo(database.server_url(get_settings(), name).render_as_string(hide_password=False))


@db.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Upgrade the database schema (Alembic) to REVISION."""
    from portrait import migrate as migrations

    settings = get_settings()
    migrations.upgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


@db.command()
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="Downgrading drops tables and their data. Continue?")
def downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (base drops every table)."""
    from portrait import migrate as migrations

    settings = get_settings()
    migrations.downgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


# --- ingest ---------------------------------------------------------------

@main.group(cls=PortraitGroup)
def ingest() -> None:
    """Load raw files into the raw tables (malformed lines go to ingest_rejects)."""


def _ingest(source: str, path: Path, batch_size: int | None) -> None:
    from portrait import database
    from portrait.ingest import ingest_file
    from portrait.settings import id_key

    settings = get_settings()
    key = id_key(settings)
    engine = database.engine(settings)
    try:
        run_id, counts = ingest_file(engine, source, path, key,
                                     batch_size=batch_size or settings.ingest_batch_size)
    finally:
        engine.dispose()
    click.echo(f"ingest run {run_id} ({source}, {path.name}): {counts.summary()}")
    if counts.rejected:
        click.echo(f"  rejected lines and reasons: SELECT line_number, reason FROM ingest_rejects WHERE run_id = {run_id}")
    if not counts.reconciles:
        raise click.ClickException("counts do not reconcile")


_path = click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_batch = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                      help="Rows per transaction (default PORTRAIT_INGEST_BATCH_SIZE or 2000).")


@ingest.command("amazon-reviews")
@_path
@_batch
def ingest_amazon(path: Path, batch_size: int | None) -> None:
    """Amazon review JSON lines (2014 or 2018 dumps; gzip or plain)."""
    _ingest("amazon-reviews", path, batch_size)


@ingest.command("purchases")
@_path
@_batch
def ingest_purchases(path: Path, batch_size: int | None) -> None:
    """CDNOW purchase log: customer_id date(YYYYMMDD) number_of_cds dollar_value."""
    _ingest("purchases", path, batch_size)


@ingest.command("events")
@_path
@_batch
def ingest_events(path: Path, batch_size: int | None) -> None:
    """Generic events CSV: user_id,item_id,event_type,event_timestamp,quantity,amount."""
    _ingest("events", path, batch_size)


if __name__ == "__main__":
    main()
