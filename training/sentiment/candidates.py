"""The shop's sentiment model, chosen among candidates on its own validation split.

Three candidates on the same rows: the fine-tuned encoder, the TF-IDF + LR baseline
(jieba words for a Chinese shop), and their blend (the two models' probabilities
averaged, the encoder's share chosen on validation). Each is scored on the same
validation reviews (`select_val_macro_f1`); the best is registered, a tie going to
the simpler (baseline, then fine-tuned), and the blend only when it beats both its
parts by BLEND_MIN_GAIN, since its weight was fitted on those rows. A shop whose data
is too small for the encoder to learn therefore gets the baseline, never a model
worse than it on validation; the test metric of every candidate is logged beside it,
and the version's description (the model card) says which won and by how much."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from portrait.text.encoder import encoder_prefix
from portrait.text.labels import SENTIMENT_LABELS
from registry.models import HEADLINE, describe_version
from training.common import log_and_register
from training.sentiment.baselines import BaselineCandidate
from training.sentiment.config import FineTuneConfig
from training.sentiment.data import SentimentData
from training.sentiment.finetune import FineTuneResult
from training.sentiment.metrics import LABEL_IDS, bilingual_metrics, binary_labels, evaluate_and_plot

FINE_TUNED, BASELINE, BLEND = "fine-tuned", "baseline", "blend"
SELECT_METRIC = "select_val_macro_f1"
SIMPLER = {BASELINE: 2, FINE_TUNED: 1, BLEND: 0}  # ties go to the simpler candidate
BLEND_WEIGHTS = tuple(np.round(np.arange(0.1, 0.95, 0.1), 1))  # the fine-tuned model's share
# a blend's weight is fitted on the validation rows it is then judged on: it must win by more than that can give
BLEND_MIN_GAIN = 0.005


@dataclass
class FineTunedRun:
    """The fine-tune's run: its test metrics, its selection metrics and probabilities on
    the common validation rows and on test (the blend reuses them)."""

    run_id: str
    metrics: dict[str, float]
    select: dict[str, float]
    result: FineTuneResult
    val_proba: np.ndarray
    test_proba: np.ndarray


@dataclass
class BlendRun:
    run_id: str
    weight: float  # the fine-tuned model's share of the averaged probabilities
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]


@dataclass(frozen=True)
class Candidate:
    kind: str  # FINE_TUNED, BASELINE or BLEND
    name: str  # what it is: "fine-tuned <model>", "tfidf+logreg", ...
    run_id: str
    val_macro_f1: float  # on the common validation rows: what the choice is made on
    test_macro_f1: float


REGISTER_CHOICES = ("best", FINE_TUNED, BASELINE, BLEND)


def choose(candidates: list[Candidate], register: str = "best") -> Candidate:
    """The best on validation, ties going to the simpler (cheaper to serve, nothing
    to gain), a blend only past BLEND_MIN_GAIN; or the kind `register` names (an
    experiment's explicit choice)."""
    if register != "best":
        return next(c for c in candidates if c.kind == register)
    return max(
        candidates,
        key=lambda c: (round(c.val_macro_f1 - (BLEND_MIN_GAIN if c.kind == BLEND else 0), 10), SIMPLER[c.kind]),
    )


def blended(weight: float, fine_tuned: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The blend's probabilities (SENTIMENT_LABELS columns), as the served model averages them."""
    return weight * fine_tuned + (1 - weight) * baseline


def blend_weight(y_true: np.ndarray, fine_tuned: np.ndarray, baseline: np.ndarray, binary: np.ndarray) -> float:
    """The fine-tuned model's share (BLEND_WEIGHTS) with the best validation macro-F1;
    ties to the smaller share."""
    scores = [
        bilingual_metrics(y_true, blended(w, fine_tuned, baseline), binary, "v")["v_macro_f1"] for w in BLEND_WEIGHTS
    ]
    return float(BLEND_WEIGHTS[int(np.argmax(scores))])


def blend_run(data: SentimentData, baseline: BaselineCandidate, ft: FineTunedRun) -> BlendRun:
    """The blend as its own MLflow run: its weight chosen on the common validation rows,
    its test metrics (with the same plots as the others) beside both parts'."""
    import mlflow

    val = data.val_select
    y_val, binary_val = val["label"].map(LABEL_IDS).to_numpy(), binary_labels(val)
    weight = blend_weight(y_val, ft.val_proba, baseline.val_proba, binary_val)
    with mlflow.start_run(run_name="blend-sentiment", tags={**data.tags, "model_kind": BLEND}) as run:
        mlflow.log_params({"blend_weight": weight, "fine_tuned_run": ft.run_id, "baseline_run": baseline.run_id})
        select = bilingual_metrics(y_val, blended(weight, ft.val_proba, baseline.val_proba), binary_val, "select_val")
        proba = blended(weight, ft.test_proba, baseline.test_proba)
        test = evaluate_and_plot("blend", proba, data.y_test, binary_labels(data.test))
        mlflow.log_metrics({**select, **test})
    return BlendRun(run.info.run_id, weight, select, test)


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
    fine_tuned = next((c for c in candidates if c.kind == FINE_TUNED), None)
    base = next((c for c in candidates if c.kind == BASELINE), None)
    if fine_tuned and base and winner is not fine_tuned:  # the encoder's own margin, whoever won
        lines.append(
            f"The fine-tuned model's own margin over {base.name}: {fine_tuned.val_macro_f1 - base.val_macro_f1:+.4f} "
            f"on validation, {fine_tuned.test_macro_f1 - base.test_macro_f1:+.4f} on test."
        )
    lines += ["", split_summary]
    return "\n".join(lines)


def _fine_tuned_parts(data: SentimentData, cfg: FineTuneConfig, result: FineTuneResult, folder: Path):
    """(artifacts, model config, requirements) of the fine-tuned classifier, saved into `folder`."""
    result.model.save_pretrained(folder)
    result.tokenizer.save_pretrained(folder)
    config = {
        "max_length": cfg.length,
        "prefix": encoder_prefix(cfg.model_path()),
        "classes": data.classes,  # the ones it was trained to tell apart
    }
    return {"classifier": str(folder)}, config, ["torch", "transformers", "pandas", "mlflow"]


def _baseline_parts(data: SentimentData, baseline: BaselineCandidate, folder: Path):
    """(artifacts, model config, requirements) of the TF-IDF + LR pipeline: a skops file
    (no pickle to trust) whose types, ours and scikit-learn's, are checked when loading."""
    import skops.io

    path = folder / "pipeline.skops"
    skops.io.dump(baseline.pipeline, path)
    config = {
        "classes": data.classes,
        "labels": list(SENTIMENT_LABELS),
        "trusted_types": skops.io.get_untrusted_types(file=path),
    }
    requirements = ["scikit-learn", "skops", "scipy", "pandas", "mlflow", *(["jieba"] if data.chinese_shop else [])]
    return {"pipeline": str(path)}, config, requirements


def register_winner(
    data: SentimentData,
    cfg: FineTuneConfig,
    winner: Candidate,
    baseline: BaselineCandidate,
    ft: FineTunedRun,
    blend: BlendRun,
) -> int:
    """The winner registered from its own run through the one models-from-code file:
    the classifier, the pipeline, or both with the blend's weight."""
    import mlflow

    headline = HEADLINE[data.registered_name][0]
    metrics = {FINE_TUNED: ft.metrics, BASELINE: baseline.test_metrics, BLEND: blend.test_metrics}[winner.kind]
    tags = {**data.tags, "model_kind": winner.kind}
    with mlflow.start_run(run_id=winner.run_id), tempfile.TemporaryDirectory() as tmp:
        parts = []
        if winner.kind in (FINE_TUNED, BLEND):
            (Path(tmp) / "classifier").mkdir()
            parts.append(_fine_tuned_parts(data, cfg, ft.result, Path(tmp) / "classifier"))
            tags["truncated"] = str(ft.result.truncated).lower()
        if winner.kind in (BASELINE, BLEND):
            parts.append(_baseline_parts(data, baseline, Path(tmp)))
        artifacts = {name: path for part, _, _ in parts for name, path in part.items()}
        config = {key: value for _, part, _ in parts for key, value in part.items()}
        requirements = list(dict.fromkeys(r for _, _, part in parts for r in part))
        if winner.kind == BLEND:
            config["blend_weight"] = blend.weight
        return log_and_register(
            model_file="sentiment_model.py",
            artifacts=artifacts,
            model_config=config,
            registered_name=data.registered_name,
            input_example=pd.DataFrame({"text": data.test["input"].head(3).tolist()}),
            requirements=requirements,
            metrics=metrics,
            tags=tags,
            baseline=data.baseline_name,
            baseline_headline=baseline.test_metrics[headline],
        )


def register_best(
    data: SentimentData, cfg: FineTuneConfig, baseline: BaselineCandidate, ft: FineTunedRun
) -> tuple[int, Candidate, list[Candidate]]:
    """Blend the two, choose on validation, register the winner, write its model card.
    Returns the version, the winner and every candidate."""
    blend = blend_run(data, baseline, ft)
    candidates = [
        Candidate(
            FINE_TUNED,
            f"fine-tuned {Path(cfg.model_path()).name}",
            ft.run_id,
            ft.select[SELECT_METRIC],
            ft.metrics["test_macro_f1"],
        ),
        Candidate(
            BASELINE,
            data.baseline_name,
            baseline.run_id,
            baseline.val_metrics[SELECT_METRIC],
            baseline.test_metrics["test_macro_f1"],
        ),
        Candidate(
            BLEND,
            f"blend {blend.weight:.1f} fine-tuned + {1 - blend.weight:.1f} {data.baseline_name}",
            blend.run_id,
            blend.val_metrics[SELECT_METRIC],
            blend.test_metrics["test_macro_f1"],
        ),
    ]
    winner = choose(candidates, cfg.register)
    version = register_winner(data, cfg, winner, baseline, ft, blend)
    describe_version(
        data.registered_name, version, model_card(winner, candidates, data.split_summary, cfg.register == "best")
    )
    return version, winner, candidates
