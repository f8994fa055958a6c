"""`portrait ingest` (the built-in formats, a shop's own export, runs and rejects), `portrait sample-export` and `portrait synth`."""

from __future__ import annotations

from pathlib import Path

import click

from portrait.cli._common import PortraitGroup, connect
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
def ingest() -> None:
    """Load raw files into the raw tables (malformed lines go to ingest_rejects)."""


def _ingest(source: str, path: Path, batch_size: int | None, spec=None) -> None:
    from portrait.ingest.imports import MappingError
    from portrait.ingest.loader import ingest_file
    from portrait.privacy.idkey import verified_id_key

    settings = get_settings()
    engine = connect(settings)
    try:
        key = verified_id_key(settings, engine)
        run_id, counts = ingest_file(
            engine, source, path, key, batch_size=batch_size or settings.ingest_batch_size, spec=spec
        )
    except MappingError as err:  # the export does not fit the mapping: nothing of it was loaded
        raise click.ClickException(f"{path.name}: {err}") from None
    finally:
        engine.dispose()
    click.echo(f"ingest run {run_id} ({source}, {path.name}): {counts.summary()}")
    if counts.rejected:
        click.echo(f"  rejected lines and reasons: portrait ingest rejects {run_id}")
    if not counts.reconciles:
        raise click.ClickException("counts do not reconcile")


@ingest.command("runs")
@click.option("--limit", type=int, default=20, show_default=True)
def ingest_runs(limit: int) -> None:
    """The latest ingest runs with their owner and counts; a run whose process is gone
    (killed, crashed) is marked interrupted first."""
    from portrait.ingest.loader import list_runs

    engine = connect(get_settings())
    try:
        runs = list_runs(engine, limit)
    finally:
        engine.dispose()
    click.echo(
        f"{'run':>5}  {'source':<15} {'status':<12} {'started':<20} {'last sign of life':<20} owner  read/loaded/rejected/dup"
    )
    for r in runs:
        beat = r["finished_at"] or r["heartbeat_at"]
        click.echo(
            f"{r['run_id']:>5}  {r['source']:<15} {r['status']:<12} {r['started_at']:%Y-%m-%d %H:%M:%S}  "
            f"{(f'{beat:%Y-%m-%d %H:%M:%S}' if beat else '-'):<20} {r['owner_host'] or '-'}:{r['owner_pid'] or '-'}  "
            f"{r['rows_read']}/{r['rows_loaded']}/{r['rows_rejected']}/{r['rows_duplicate']}"
        )


@ingest.command("rejects")
@click.argument("run_id", type=int)
@click.option("--limit", type=int, default=50, show_default=True)
def ingest_rejects(run_id: int, limit: int) -> None:
    """Show a run's rejected lines: line number, reason and the line itself
    (stored sealed under the id key; shown here to whoever holds that key)."""
    import sqlalchemy as sa

    from portrait.privacy.idkey import verified_id_key
    from portrait.privacy.pseudonyms import unseal

    settings = get_settings()
    engine = connect(settings)
    try:
        key = verified_id_key(settings, engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT line_number, reason, raw_sealed FROM ingest_rejects WHERE run_id = :r "
                    "ORDER BY line_number LIMIT :n"
                ),
                {"r": run_id, "n": limit},
            ).all()
    finally:
        engine.dispose()
    if not rows:
        click.echo(f"run {run_id} rejected no lines")
    for line_number, reason, sealed in rows:
        text = unseal(sealed, key) if sealed is not None else "(not kept: rejected before lines were sealed)"
        click.echo(f"line {line_number}: {reason}\n  {text[:300]}{'...' if len(text) > 300 else ''}")


@ingest.command("flag")
def ingest_flag() -> None:
    """Re-apply the placeholder rule (portrait.text.placeholders) to every stored review:
    after the rule or PORTRAIT_TEMPLATE_MIN_USERS / _SHARE changed. Reviews whose flag
    changes are rebuilt by the next `portrait features build`."""
    from portrait.ingest.flags import reflag_all

    settings = get_settings()
    engine = connect(settings)
    try:
        with engine.begin() as conn:
            counts = reflag_all(conn, settings)
    finally:
        engine.dispose()
    flagged = ", ".join(f"{reason} {n:,}" for reason, n in counts.items())
    click.echo(f"placeholder reviews (kept for their stars, no text features): {flagged}")


_path = click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_batch = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per transaction (default PORTRAIT_INGEST_BATCH_SIZE or 2000).",
)


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


def _export_options(f):
    """Options of a shop's own export (portrait.ingest.imports)."""
    for option in reversed(
        [
            click.option(
                "--format", "fmt", type=click.Choice(["csv", "tsv", "jsonl", "parquet"]), help="Default: from the name."
            ),
            click.option("--delimiter", help="CSV field delimiter (default ',' for csv, tab for tsv)."),
            click.option(
                "--encoding",
                default="auto",
                show_default=True,
                help="auto: a BOM, else UTF-8 if it decodes, else GB18030 (reads GBK); or any codec name.",
            ),
            click.option("--time-format", help="strftime format of the time column (default: ISO 8601 or Unix s)."),
            click.option(
                "--timezone",
                "tz",
                default="UTC",
                show_default=True,
                help="IANA zone of naive times, e.g. Asia/Shanghai.",
            ),
        ]
    ):
        f = option(f)
    return f


def _spec(mapping: str, fields: dict, fmt, delimiter, encoding, time_format, tz, rating_scale: str = "1-5"):
    from portrait.ingest.imports import ImportSpec, MappingError, parse_mapping, parse_scale

    try:
        return ImportSpec(
            columns=parse_mapping(mapping, fields),
            format=fmt,
            delimiter=delimiter.encode().decode("unicode_escape") if delimiter else None,  # lets a shell pass '\t'
            encoding=encoding,
            time_format=time_format,
            timezone=tz,
            rating_scale=parse_scale(rating_scale),
        )
    except MappingError as err:
        raise click.BadParameter(str(err)) from None


@ingest.command("reviews")
@_path
@click.option(
    "--map",
    "mapping",
    required=True,
    help="Columns of the export: user=COL,item=COL,rating=COL,time=COL[,text=COL,title=COL,helpful=COL].",
)
@click.option(
    "--rating-scale", default="1-5", show_default=True, help="LOW-HIGH of the export's ratings; mapped to 1-5."
)
@_export_options
@_batch
def ingest_reviews(path: Path, mapping, rating_scale, fmt, delimiter, encoding, time_format, tz, batch_size) -> None:
    """A shop's own review export: CSV/TSV, JSON lines or Parquet, with its own column names."""
    from portrait.ingest.imports import REVIEW_FIELDS

    _ingest(
        "reviews",
        path,
        batch_size,
        _spec(mapping, REVIEW_FIELDS, fmt, delimiter, encoding, time_format, tz, rating_scale),
    )


@ingest.command("events")
@_path
@click.option(
    "--map",
    "mapping",
    help="Columns of a shop's own export: user=COL,type=COL,time=COL[,item=COL,quantity=COL,amount=COL]. "
    "Without it: the fixed CSV user_id,item_id,event_type,event_timestamp,quantity,amount.",
)
@_export_options
@_batch
def ingest_events(path: Path, mapping, fmt, delimiter, encoding, time_format, tz, batch_size) -> None:
    """Events (view, cart, purchase, review): the generic CSV, or any export with --map."""
    from portrait.ingest.imports import EVENT_FIELDS

    spec = _spec(mapping, EVENT_FIELDS, fmt, delimiter, encoding, time_format, tz) if mapping else None
    _ingest("events", path, batch_size, spec)


@click.command("sample-export")
@click.argument("language", type=click.Choice(["zh"]))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reviews", type=click.IntRange(min=10), default=3000, show_default=True)
def sample_export(language: str, out: Path, reviews: int) -> None:
    """Write a SYNTHETIC shop export (real Chinese review texts and labels from
    online_shopping_10_cats; made-up buyers, items and times) and say how to ingest it."""
    from portrait.ingest import zh_sample

    path = zh_sample.write_export(get_settings().resolved_data_dir(), out, reviews=reviews)
    click.echo(f"wrote {path}")
    import shlex

    command = ["portrait", "ingest", "reviews", str(path), "--map", zh_sample.MAPPING, *zh_sample.OPTIONS]
    click.echo(f"ingest it: {shlex.join(command)}")


@click.command("synth")
@click.option("--users", type=click.IntRange(min=1), required=True)
@click.option("--items", type=click.IntRange(min=1), required=True)
@click.option("--reviews", type=click.IntRange(min=0), required=True)
@click.option("--events", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("synthetic"), show_default=True)
def synth(users: int, items: int, reviews: int, events: int, seed: int, lang: str, out: Path) -> None:
    """Write a SYNTHETIC shop of this size, resampled from the real shared data (deterministic
    for a seed), print how close its distributions are to the real ones and how to ingest it."""
    import shlex

    from portrait.ingest import zh_sample
    from portrait.ops import synth as synthetic

    real = synthetic.load_real(get_settings().resolved_data_dir(), lang)
    shop = synthetic.generate(real, out, users=users, items=items, reviews=reviews, events=events, seed=seed)
    click.echo(f"wrote {shop.reviews_path} ({shop.reviews:,} reviews) and {shop.events_path} ({shop.events:,} events)")
    for name, ks in synthetic.check(real, shop).items():
        click.echo(f"  KS statistic against the real data, {name}: {ks:.3f}")
    if lang == "zh":
        reviews_cmd = ["portrait", "ingest", "reviews", str(shop.reviews_path), "--map", zh_sample.MAPPING]
        reviews_cmd += zh_sample.OPTIONS
    else:
        reviews_cmd = ["portrait", "ingest", "amazon-reviews", str(shop.reviews_path)]
    click.echo(f"ingest: {shlex.join(reviews_cmd)} && portrait ingest events {shlex.quote(str(shop.events_path))}")


COMMANDS = [ingest, sample_export, synth]
