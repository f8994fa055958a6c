"""The shop's sentiment model, chosen among candidates on its own validation split.

Two candidates are trained on the same rows: the fine-tuned encoder and the TF-IDF +
LR baseline (jieba words for a Chinese shop). Each is scored on the same
validation reviews (`select_val_macro_f1`); the better one is registered, a tie
going to the baseline (the cheaper model to serve). A shop whose data is too small
for the encoder to learn therefore gets the baseline, never a model worse than it on
validation; the test metric of every candidate is logged beside it, and the
version's description (the model card) says which won and by how much."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from portrait.text.encoder import encoder_prefix
from portrait.text.labels import SENTIMENT_LABELS
from registry.models import HEADLINE, describe_version
from training.common import log_and_register
from training.sentiment.baselines import BaselineCandidate
from training.sentiment.config import FineTuneConfig
from training.sentiment.data import SentimentData
from training.sentiment.finetune import FineTuneResult

FINE_TUNED, BASELINE = "fine-tuned", "baseline"
SELECT_METRIC = "select_val_macro_f1"


@dataclass(frozen=True)
class Candidate:
    kind: str  # FINE_TUNED or BASELINE
    name: str  # what it is: "fine-tuned <model>", "tfidf+logreg", ...
    run_id: str
    val_macro_f1: float  # on the common validation rows: what the choice is made on
    test_macro_f1: float


REGISTER_CHOICES = ("best", FINE_TUNED, BASELINE)


def choose(candidates: list[Candidate], register: str = "best") -> Candidate:
    """The best on validation, ties going to the baseline (cheaper to serve, nothing
    to gain); or the kind `register` names (an experiment's explicit choice)."""
    if register != "best":
        return next(c for c in candidates if c.kind == register)
    return max(candidates, key=lambda c: (c.val_macro_f1, c.kind == BASELINE))


def model_card(winner: Candidate, candidates: list[Candidate], split_summary: str, chosen: bool = True) -> str:
    """The registered version's description: what was compared, on what, and who won by how much."""
    others = [c for c in candidates if c is not winner]
    lines = [
        f"{winner.name} ({winner.kind}) was {'chosen on validation macro-F1' if chosen else 'asked for (--register)'} "
        f"among {len(candidates)} candidates.",
        "",
        "| candidate | validation macro-F1 | test macro-F1 | run |",
        "|---|---|---|---|",
        *(
            f"| {c.name}{' (registered)' if c is winner else ''} | {c.val_macro_f1:.4f} | {c.test_macro_f1:.4f} "
            f"| {c.run_id} |"
            for c in candidates
        ),
        "",
    ]
    for other in others:
        lines.append(
            f"Margin over {other.name}: {winner.val_macro_f1 - other.val_macro_f1:+.4f} on validation, "
            f"{winner.test_macro_f1 - other.test_macro_f1:+.4f} on test."
        )
    lines += ["", split_summary]
    return "\n".join(lines)


def register_fine_tuned(
    data: SentimentData, cfg: FineTuneConfig, result: FineTuneResult, run_id: str, metrics, baseline_headline: float
) -> int:
    """The fine-tuned classifier registered from its own run (reopened)."""
    import mlflow

    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        result.model.save_pretrained(tmp)
        result.tokenizer.save_pretrained(tmp)
        return log_and_register(
            model_file="sentiment_model.py",
            artifacts={"classifier": tmp},
            model_config={
                "max_length": cfg.max_length,
                "prefix": encoder_prefix(cfg.model_path()),
                "classes": data.classes,  # the ones it was trained to tell apart
            },
            registered_name=data.registered_name,
            input_example=pd.DataFrame({"text": data.test["input"].head(3).tolist()}),
            requirements=["torch", "transformers", "pandas", "mlflow"],
            metrics=metrics,
            tags={**data.tags, "truncated": str(result.truncated).lower(), "model_kind": FINE_TUNED},
            baseline=data.baseline_name,
            baseline_headline=baseline_headline,
        )


def register_baseline(data: SentimentData, baseline: BaselineCandidate) -> int:
    """The TF-IDF + LR pipeline registered as the shop's sentiment model, from its own run,
    through the same models-from-code file (a skops artifact: no pickle to trust)."""
    import mlflow
    import skops.io

    with mlflow.start_run(run_id=baseline.run_id), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.skops"
        skops.io.dump(baseline.pipeline, path)
        trusted = skops.io.get_untrusted_types(file=path)  # ours and scikit-learn's, checked when loading
        return log_and_register(
            model_file="sentiment_model.py",
            artifacts={"pipeline": str(path)},
            model_config={"classes": data.classes, "labels": list(SENTIMENT_LABELS), "trusted_types": trusted},
            registered_name=data.registered_name,
            input_example=pd.DataFrame({"text": data.test["input"].head(3).tolist()}),
            requirements=[
                "scikit-learn",
                "skops",
                "scipy",
                "pandas",
                "mlflow",
                *(["jieba"] if data.chinese_shop else []),
            ],
            metrics=baseline.test_metrics,
            tags={**data.tags, "model_kind": BASELINE},
            baseline=data.baseline_name,
            baseline_headline=baseline.test_metrics[HEADLINE[data.registered_name][0]],
        )


def register_best(
    data: SentimentData,
    cfg: FineTuneConfig,
    baseline: BaselineCandidate,
    fine_tuned: tuple[str, dict[str, float], dict[str, float], FineTuneResult],
) -> tuple[int, Candidate, list[Candidate]]:
    """Choose on validation, register the winner, write its model card. Returns the
    version, the winner and every candidate."""
    run_id, metrics, select, result = fine_tuned
    candidates = [
        Candidate(
            FINE_TUNED,
            f"fine-tuned {Path(cfg.model_path()).name}",
            run_id,
            select[SELECT_METRIC],
            metrics["test_macro_f1"],
        ),
        Candidate(
            BASELINE,
            data.baseline_name,
            baseline.run_id,
            baseline.val_metrics[SELECT_METRIC],
            baseline.test_metrics["test_macro_f1"],
        ),
    ]
    winner = choose(candidates, cfg.register)
    if winner.kind == FINE_TUNED:
        headline = HEADLINE[data.registered_name][0]
        version = register_fine_tuned(data, cfg, result, run_id, metrics, baseline.test_metrics[headline])
    else:
        version = register_baseline(data, baseline)
    describe_version(
        data.registered_name, version, model_card(winner, candidates, data.split_summary, cfg.register == "best")
    )
    return version, winner, candidates
