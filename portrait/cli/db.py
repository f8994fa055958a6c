"""The `portrait db` commands: the profile's PostgreSQL server and its schema."""

from __future__ import annotations

import sys

import click

from portrait.cli._common import PortraitGroup, running
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
def db() -> None:
    """The PostgreSQL server: embedded (local profile) or PORTRAIT_DATABASE_URL."""


@db.command()
def up() -> None:
    """Start the embedded server (idempotent) and create the databases."""
    from portrait.store import database

    settings = get_settings()
    database.up(settings)
    click.echo(database.status(settings).detail)


@db.command()
def down() -> None:
    """Stop the embedded server."""
    from portrait.store import database

    stopped = database.down(get_settings())
    click.echo("stopped" if stopped else "not running")


@db.command()
def status() -> None:
    """Say whether the profile's server is running; exit 1 if not."""
    from portrait.store import database

    st = database.status(get_settings())
    click.echo(f"{st.profile}: {'running' if st.running else 'down'}: {st.detail}")
    sys.exit(0 if st.running else 1)


@db.command()
@click.option(
    "--database",
    "role",
    type=click.Choice(["app", "feast", "mlflow"]),
    default="app",
    show_default=True,
    help="app: raw and feature tables; feast: registry and online store; mlflow: tracking",
)
def url(role: str) -> None:
    """Print the SQLAlchemy URL of one of the profile's databases (works from any process)."""
    from portrait.store import database

    settings = get_settings()
    click.echo(
        database.server_url(settings, database.database_name(settings, role)).render_as_string(hide_password=False)
    )


@db.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Upgrade the database schema (Alembic) to REVISION."""
    from portrait.store import migrate as migrations

    settings = get_settings()
    running(settings)
    migrations.upgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


@db.command()
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="Downgrading drops tables and their data. Continue?")
def downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (base drops every table)."""
    from portrait.store import migrate as migrations

    settings = get_settings()
    running(settings)
    migrations.downgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


COMMANDS = [db]
