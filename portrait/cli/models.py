"""`portrait models`: the MLflow model registry (list, champion, promote, roll back)."""

from __future__ import annotations

import sys

import click

from portrait.cli._common import PortraitGroup, connect, track
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
def models() -> None:
    """The MLflow model registry: list, promote (alias champion), roll back."""


@models.command("list")
@click.argument("name", required=False)
def models_list(name: str | None) -> None:
    """Versions, aliases and headline metrics."""
    from datetime import datetime, timezone

    from registry.models import HEADLINE, OPTIONAL, list_versions

    track(get_settings())
    for model in [name] if name else list(HEADLINE):
        versions = list_versions(model)
        if not versions and not name and model in OPTIONAL:
            continue  # only some shops have them (Chinese routed to its own model, aspect labels)
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
@click.argument("version", type=int, required=False)
@click.option("--force", is_flag=True, help="Promote even if the headline metric is worse than the champion's.")
@click.option(
    "--online", is_flag=True, help="Promote the shadowed challenger if it wins online (see `models compare`)."
)
def models_promote(name: str, version: int | None, force: bool, online: bool) -> None:
    """Make VERSION the champion (served); the old champion becomes `previous`.
    With --online, VERSION is the challenger, promoted only if the online rule says so."""
    from registry.models import PromotionRefused, promote

    settings = get_settings()
    track(settings)
    engine = connect(settings)
    if online:
        _promote_online(name, engine, settings)
        return
    if version is None:
        raise click.UsageError("give the VERSION to promote (or --online for the challenger)")
    try:
        new, old = promote(name, version, force=force, audit=engine)
    except PromotionRefused as err:
        raise click.ClickException(str(err)) from None
    was = f" (was v{old.version})" if old and old.version != new.version else ""
    click.echo(f"{name} champion is v{new.version}{was}: {new.metric} {new.value}")


def _comparison(name: str, engine, settings):
    """(champion, challenger, online tables, the rule's decision) for NAME."""
    from registry.health import ShadowSummary, promotion_rule
    from registry.models import champion, version_info
    from registry.monitoring import higher_is_better, tables

    current = champion(name)
    try:
        from mlflow import MlflowClient

        challenger = version_info(name, MlflowClient().get_model_version_by_alias(name, "challenger").version)
    except Exception:  # noqa: BLE001 - no challenger alias
        raise click.ClickException(
            f"{name} has no challenger: set the alias (MLflow UI, or `portrait models challenger {name} VERSION`)"
        ) from None
    t = tables(engine, settings, models=(name,))
    by_alias = t.shadow.get(name, {})
    none = ShadowSummary(None, 0.0, 0)
    difference = t.difference.get(name)
    if difference is None:
        from registry.health import Estimate

        difference = Estimate("online metric", None, None, None, 0)
    decision = promotion_rule(
        difference,
        higher_is_better(difference.metric),
        by_alias.get("champion", none),
        by_alias.get("challenger", none),
    )
    return current, challenger, t, decision


@models.command("challenger")
@click.argument("name")
@click.argument("version", type=int, required=False)
@click.option("--clear", is_flag=True, help="Remove the alias: no more shadow scoring.")
def models_challenger(name: str, version: int | None, clear: bool) -> None:
    """Set (or --clear) the `challenger` alias: the service scores it in shadow beside the champion."""
    from mlflow import MlflowClient

    track(get_settings())
    if clear:
        MlflowClient().delete_registered_model_alias(name, "challenger")
        click.echo(f"{name} has no challenger now")
        return
    if version is None:
        raise click.UsageError("give the VERSION to shadow (or --clear)")
    MlflowClient().set_registered_model_alias(name, "challenger", str(version))
    click.echo(f"{name} v{version} is the challenger: scored in shadow from the services' next poll")


@models.command("compare")
@click.argument("name")
def models_compare(name: str) -> None:
    """Champion vs challenger, offline and online side by side, and what the online rule decides."""
    from portrait.cli.monitor import health_lines

    settings = get_settings()
    track(settings)
    current, challenger, t, decision = _comparison(name, connect(settings), settings)
    metric = challenger.metric

    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    click.echo(f"{name}            {'champion':>12} {'challenger':>12}")
    click.echo(
        f"  version          {('v' + str(current.version)) if current else '-':>12} {'v' + str(challenger.version):>12}"
    )
    click.echo(f"  offline {metric:<9}{fmt(current.value if current else None):>12} {fmt(challenger.value):>12}")
    for line in health_lines(t):
        click.echo("  " + line)
    click.echo(f"online rule: {'PROMOTE' if decision.promote else 'keep the champion'}")
    for reason in decision.reasons:
        click.echo(f"  - {reason}")


def _promote_online(name: str, engine, settings) -> None:
    from mlflow import MlflowClient

    from registry.models import promote

    current, challenger, _, decision = _comparison(name, engine, settings)
    if not decision.promote:
        raise click.ClickException("the online rule keeps the champion: " + "; ".join(decision.reasons))
    # the online evidence outranks the offline comparison the plain gate makes
    new, old = promote(name, challenger.version, force=True, audit=engine, action="online")
    MlflowClient().delete_registered_model_alias(name, "challenger")
    click.echo(
        f"{name} champion is v{new.version} (was v{old.version if old else '-'}): " + "; ".join(decision.reasons)
    )


@models.command("rollback")
@click.argument("name")
def models_rollback(name: str) -> None:
    """Restore the previous champion."""
    from registry.models import PromotionRefused, rollback

    settings = get_settings()
    track(settings)
    try:
        restored, demoted = rollback(name, audit=connect(settings))
    except PromotionRefused as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{name} champion is v{restored.version} again (v{demoted.version if demoted else '-'} is now previous)")


@models.command("history")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, help="The newest changes shown.")
def models_history(name: str, limit: int) -> None:
    """Every change of NAME's champion: when, who, from and to which version, the gate's decision."""
    from registry.audit import history

    rows = history(connect(get_settings()), name, limit)
    if not rows:
        click.echo(f"{name}: no alias changes recorded")
        return
    for row in rows:
        versions = f"v{row.from_version or '-'} -> v{row.to_version or '-'}"
        click.echo(
            f"{row.changed_at:%Y-%m-%d %H:%M:%S}  {row.action:<8} {versions:<12} {row.actor:<24} {row.decision or ''}"
        )


COMMANDS = [models]
