"""The `portrait` command: thin commands over the library functions of every stage,
one module per command group (db, ingest, features, train, models, ops); this one
composes them. Heavy imports (feast, torch, mlflow) stay inside the commands."""

from __future__ import annotations

import logging

import click

from portrait.cli import db, features, ingest, models, monitor, ops, train
from portrait.cli._common import PortraitGroup
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """Portrait: e-commerce user portraits from reviews, purchases and views."""
    import os

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.umask(0o077)  # what Portrait writes (state, artifacts, report) is the owner's only
    if get_settings().profile == "local" or get_settings().state_dir.exists():
        from portrait.settings import private_state_dir

        private_state_dir(get_settings())


for _module in (db, ingest, features, train, models, monitor, ops):
    for _command in _module.COMMANDS:
        main.add_command(_command)


@main.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming the pages that are stale.")
def reference(check: bool) -> None:
    """Generate docs/reference/ (CLI, settings, HTTP API, feature services) from the code."""
    from portrait.cli import reference as pages

    if check:
        stale = pages.stale_pages(main)
        if stale:
            raise click.ClickException(f"stale reference pages: {', '.join(stale)} (run `portrait reference`)")
        click.echo("docs/reference is current")
        return
    for path in pages.write_pages(main):
        click.echo(f"wrote {path.relative_to(pages.REPO_ROOT)}")


if __name__ == "__main__":
    main()
