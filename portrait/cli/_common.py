"""What every `portrait` command module shares: the group class that turns user errors
into one line, the profile's database and MLflow, started or configured on demand,
and time parsing. Heavy imports (feast, torch, mlflow) stay inside the commands."""

from __future__ import annotations

import click

from portrait.settings import SettingsError


class PortraitGroup(click.Group):
    """Turns the errors users can fix (settings, missing files) into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SettingsError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None


def running(settings):
    """The profile's database server, started first in the local profile (after a reboot)."""
    from portrait.store import database

    database.ensure_running(settings)
    return settings


def connect(settings, **kwargs):
    from portrait.store import database

    return database.engine(running(settings), **kwargs)


def track(settings) -> str:
    """MLflow pointed at this profile (its tracking database lives on the profile's server)."""
    from registry import tracking

    return tracking.configure(running(settings))


def parse_time(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2014-07-01T00:00:00)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
