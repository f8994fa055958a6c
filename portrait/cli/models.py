"""`portrait models`: the MLflow model registry (list, champion, promote, roll back)."""

from __future__ import annotations

import sys

import click

from portrait.cli._common import PortraitGroup, track
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
def models() -> None:
    """The MLflow model registry: list, promote (alias champion), roll back."""


@models.command("list")
@click.argument("name", required=False)
def models_list(name: str | None) -> None:
    """Versions, aliases and headline metrics."""
    from datetime import datetime, timezone

    from registry.models import HEADLINE, SENTIMENT_ZH, list_versions

    track(get_settings())
    for model in [name] if name else list(HEADLINE):
        versions = list_versions(model)
        if not versions and not name and model == SENTIMENT_ZH:
            continue  # optional: only shops that route Chinese texts to their own model have it
        click.echo(
            f"{model}  (headline: {HEADLINE[model][0]}, {'higher' if HEADLINE[model][1] else 'lower'} is better)"
        )
        if not versions:
            click.echo("  no versions yet")
        for v in versions:
            created = datetime.fromtimestamp(v.created / 1000, tz=timezone.utc)
            value = "n/a" if v.value is None else f"{v.value:.4f}"
            click.echo(
                f"  v{v.version:<4} {value:>8}  {created:%Y-%m-%d %H:%M}  {','.join(sorted(v.aliases)) or '-'}"
                f"  {v.tags.get('data_window', '')}"
            )


@models.command("champion")
@click.argument("name")
def models_champion(name: str) -> None:
    """Print the champion's version; exit 1 when there is none."""
    from registry.models import champion

    track(get_settings())
    current = champion(name)
    if current is None:
        click.echo(f"{name} has no champion", err=True)
        sys.exit(1)
    click.echo(current.version)


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even if the headline metric is worse than the champion's.")
def models_promote(name: str, version: int, force: bool) -> None:
    """Make VERSION the champion (served); the old champion becomes `previous`."""
    from registry.models import PromotionRefused, promote

    track(get_settings())
    try:
        new, old = promote(name, version, force=force)
    except PromotionRefused as err:
        raise click.ClickException(str(err)) from None
    was = f" (was v{old.version})" if old and old.version != new.version else ""
    click.echo(f"{name} champion is v{new.version}{was}: {new.metric} {new.value}")


@models.command("rollback")
@click.argument("name")
def models_rollback(name: str) -> None:
    """Restore the previous champion."""
    from registry.models import PromotionRefused, rollback

    track(get_settings())
    try:
        restored, demoted = rollback(name)
    except PromotionRefused as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{name} champion is v{restored.version} again (v{demoted.version if demoted else '-'} is now previous)")


COMMANDS = [models]
