"""`portrait report`, `portrait forget` and `portrait serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portrait.cli._common import connect
from portrait.settings import get_settings


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for index.html and the charts (default: .portrait/report).",
)
def report(out_dir: Path | None) -> None:
    """Operations report: segments, trends, rising and falling items, cohorts, model health (HTML + PNG)."""
    from portrait.ops.report import load, render

    settings = get_settings()
    engine = connect(settings)
    try:
        reviews, users = load(engine)
        health = _model_health(engine, settings)
    finally:
        engine.dispose()
    if reviews.empty:
        raise click.ClickException("no reviews: run portrait ingest (and portrait features build) first")
    path = render(reviews, users, out_dir or settings.state_dir / "report", health)
    click.echo(f"report: {path}")


def _model_health(engine, settings):
    """The report's Model health section: the monitoring tables and each model's audit trail
    (with the reason on the page when they cannot be computed)."""
    from portrait.ops.report import ModelHealth

    try:
        from portrait.featurestore.repo import feature_store
        from registry import tracking
        from registry.audit import history
        from registry.models import HEADLINE
        from registry.monitoring import tables

        tracking.configure(settings)
        health = tables(engine, settings, store=feature_store(settings))
        return ModelHealth(health, {m: history(engine, m, 20) for m in HEADLINE})
    except Exception as err:  # noqa: BLE001 - the rest of the report stands without it
        return ModelHealth(error=str(err)[:300])


@click.command()
@click.argument("user_id")
@click.confirmation_option(prompt="Erase this user from every table and the online store?")
def forget(user_id: str) -> None:
    """The right to be forgotten: erase USER_ID (the shop's id) everywhere."""
    from portrait.featurestore.repo import feature_store
    from portrait.ops.forget import forget as erase
    from portrait.privacy.idkey import verified_id_key

    settings = get_settings()
    engine = connect(settings)
    try:
        report = erase(engine, feature_store(settings), user_id, verified_id_key(settings, engine))
    finally:
        engine.dispose()
    if not report.found:
        click.echo(f"no rows of user {user_id} in the database; online store: {report.online_store}")
        return
    rows = ", ".join(f"{t} {n}" for t, n in report.rows_deleted.items() if n)
    click.echo(f"forgot user {user_id}: {rows}; {report.online_store}; audit row written (without the id)")


@click.command()
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def serve(port: int, host: str) -> None:
    """Serve the HTTP API with BentoML (bentoml serve serving.service:Portrait)."""
    import os

    from portrait.settings import admin_keys, api_keys

    settings = get_settings()
    api_keys(settings), admin_keys(settings)  # fail now, not at the first request, if a key is missing
    if settings.profile == "local" and not settings.api_keys:
        click.echo(
            f"API key (X-API-Key header): in {settings.state_dir / 'api_key'}; "
            f"admin key (for /admin/*): in {settings.state_dir / 'admin_key'}"
        )
    else:
        click.echo("API keys: PORTRAIT_API_KEYS (storefront), PORTRAIT_ADMIN_KEYS (admin)")
    # serving.launch: bentoml serve with its process manager on owner-only Unix sockets
    os.execv(sys.executable, [sys.executable, "-m", "serving.launch", "--host", host, "--port", str(port)])


COMMANDS = [report, forget, serve]
