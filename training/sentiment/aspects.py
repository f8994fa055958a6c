"""Aspect sentiment: how a text feels about one aspect it mentions ("battery life" in
"great screen, but the battery life is poor"), learned from an aspect-labelled set
(the SemEval-2014 format or a CSV) as an aspect-conditioned classifier: the encoder
fine-tuned on the pair "text [SEP] aspect" (BERT-SPC, Song et al. 2019), with the
review-sentiment fine-tune's recipe (training.sentiment.finetune).

It competes with what a shop has without aspect labels, the clause rule (the
sentiment of the clause that mentions the aspect, labelled by the review-sentiment
champion; the training set's majority class when there is none), on the labelled
set's validation part. It is registered as `aspect-sentiment` only when it wins
there; the model card gives both on validation and test. Once promoted, the feature
build labels every aspect mention with it (registry.models.champion_labeler)."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from portrait.text.aspects import clause_mentioning
from portrait.text.encoder import encoder_prefix
from portrait.text.labels import SENTIMENT_LABELS
from portrait.text.language import has_han
from registry.models import ASPECT_SENTIMENT
from training.common import device, environment_params, log_and_register
from training.sentiment.config import FineTuneConfig
from training.sentiment.finetune import FineTuneResult, fine_tune, fitted_length, predict_proba, token_ids
from training.sentiment.metrics import LABEL_IDS, classification_metrics, evaluate_and_plot

TERM = "$T$"  # SemEval format: the sentence with the aspect term replaced by $T$, the term, its polarity
VAL_SHARE, TEST_SHARE = 0.15, 0.2  # of the labelled set, per class (test only when no --test file)
RULE = "clause rule"


@dataclass(frozen=True)
class AspectRecipe:
    """Compared on SemEval-14 Laptops' validation part, never its test set (bench/aspects.py --grid; measured: 1e-4 0.7015, 5e-5 0.6961 macro-F1)."""

    epochs: int = 4
    lr: float = 1e-4
    max_length: int = 128


ASPECT_DEFAULTS = AspectRecipe()


@dataclass
class AspectSet:
    """Labelled aspects (input: the text, aspect, label) and the rows set aside, with why."""

    rows: pd.DataFrame
    set_aside: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def read_aspect_set(path: Path) -> AspectSet:
    """A .csv with columns text, aspect, polarity; otherwise the SemEval three-line
    format. Polarity is positive / negative / neutral (other values set aside, e.g.
    SemEval's "conflict"); an aspect the text does not contain is set aside."""
    rows: list[dict[str, str]] = []
    aside: list[tuple[int, str]] = []

    def add(line: int, text: str, aspect: str, polarity: str) -> None:
        text, aspect, polarity = text.strip(), aspect.strip(), polarity.strip().lower()
        if not text or not aspect:
            aside.append((line, "empty text or aspect"))
        elif polarity not in LABEL_IDS:
            aside.append((line, f"polarity {polarity!r} is not one of {', '.join(SENTIMENT_LABELS)}"))
        elif aspect.lower() not in text.lower():
            aside.append((line, f"aspect {aspect!r} is not in the text"))
        else:
            rows.append({"input": text, "aspect": aspect, "label": polarity})

    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {"text", "aspect", "polarity"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                add(line, row["text"] or "", row["aspect"] or "", row["polarity"] or "")
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) % 3:
            aside.append((len(lines), f"{len(lines) % 3} trailing line(s): the format has three lines per aspect"))
        for i in range(0, len(lines) - 2, 3):
            template, term, polarity = lines[i], lines[i + 1], lines[i + 2]
            if TERM not in template:
                aside.append((i + 1, f"no {TERM} in the sentence line"))
                continue
            add(i + 1, template.replace(TERM, term.strip()), term, polarity)
    return AspectSet(pd.DataFrame(rows, columns=["input", "aspect", "label"]), aside)


def stratified_parts(rows: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rest, `share` of each class): labelled aspects have no time to split by."""
    part = rows.groupby("label").sample(frac=share, random_state=seed).index
    return rows.drop(part), rows.loc[part]


def language(rows: pd.DataFrame) -> str:
    """zh when most labelled texts are Chinese: the build applies the model to mentions of its language only."""
    return "zh" if rows["input"].map(has_han).mean() > 0.5 else "en"


def majority(train: pd.DataFrame):
    """The rule's labeler when no sentiment model is promoted: the training set's majority class."""
    label = train["label"].value_counts().idxmax()
    return lambda frame: pd.Series([label] * len(frame))


def rule_labels(frame: pd.DataFrame, labeler) -> list[str]:
    """The clause rule: the labeler's label of the clause that mentions each aspect."""
    texts = [clause_mentioning(t, a) for t, a in zip(frame["input"], frame["aspect"])]
    return [str(x) for x in labeler(pd.DataFrame({"text": texts, "summary": "", "rating": 0}))]


@dataclass
class AspectOutcome:
    version: int | None  # None: the clause rule won on validation, nothing registered
    run_id: str
    sizes: dict[str, int]
    set_aside: list[tuple[int, str]]
    rule: str  # which labeler the rule used
    val: dict[str, float]  # macro_f1 / accuracy of the model and the rule, on validation
    test: dict[str, float]  # ... on test
    result: FineTuneResult


def _scores(truth: pd.Series, predicted: list[str], prefix: str) -> dict[str, float]:
    return classification_metrics(truth.map(LABEL_IDS).to_numpy(), np.array([LABEL_IDS[p] for p in predicted]), prefix)


def aspect_proba(result: FineTuneResult, frame: pd.DataFrame, cfg: FineTuneConfig) -> np.ndarray:
    ids = token_ids(result.tokenizer, encoder_prefix(cfg.model_path()), frame, cfg.length)
    return predict_proba(result.model, ids, result.tokenizer.pad_token_id, device(), precision=result.precision)


def model_card(outcome: AspectOutcome, rule: str) -> str:
    v, t = outcome.val, outcome.test
    return "\n".join(
        [
            f"Aspect-conditioned fine-tune (text [SEP] aspect), chosen over the {RULE} ({rule}) on validation.",
            "",
            "| candidate | validation macro-F1 | validation accuracy | test macro-F1 | test accuracy |",
            "|---|---|---|---|---|",
            f"| fine-tuned (registered) | {v['val_macro_f1']:.4f} | {v['val_accuracy']:.4f} "
            f"| {t['test_macro_f1']:.4f} | {t['test_accuracy']:.4f} |",
            f"| {RULE} | {v['rule_val_macro_f1']:.4f} | {v['rule_val_accuracy']:.4f} "
            f"| {t['rule_test_macro_f1']:.4f} | {t['rule_test_accuracy']:.4f} |",
            "",
            "Sizes: " + ", ".join(f"{k} {n:,}" for k, n in outcome.sizes.items()),
        ]
    )


def run_aspect_training(
    labelled: AspectSet, test: AspectSet | None, cfg: FineTuneConfig, labeler: Any = None, rule: str = ""
) -> AspectOutcome:
    """Fine-tune on the labelled set (validation: 15% per class; test: the --test set or
    20% per class), score the clause rule with `labeler` (None: majority class) on the
    same rows, register the model when it beats the rule on validation macro-F1."""
    import mlflow

    from training import plots

    rest, val = stratified_parts(labelled.rows, VAL_SHARE, cfg.seed)
    train, test_rows = (rest, test.rows) if test is not None else stratified_parts(rest, TEST_SHARE, cfg.seed)
    for name, part in (("validation", val), ("test", test_rows)):
        short = [c for c in SENTIMENT_LABELS if (part["label"] == c).sum() < cfg.min_class_examples]
        if short:
            raise ValueError(f"the {name} part has fewer than {cfg.min_class_examples} aspects of {', '.join(short)}")
    labeler = labeler or majority(train)
    rule = rule or f"majority class {train['label'].value_counts().idxmax()}"
    sizes = {"train": len(train), "validation": len(val), "test": len(test_rows)}
    cfg = fitted_length(cfg, list(train["input"]))  # the CLI gives the recipe's 128
    with mlflow.start_run(run_name="aspect-sentiment") as run:
        mlflow.log_params({**asdict(cfg), "model": cfg.model_path(), **environment_params(), **sizes})
        mlflow.set_tags({"model_kind": "fine-tuned", "rule": rule})
        result = fine_tune(
            train,
            val,
            cfg,
            on_eval=lambda row: mlflow.log_metrics(
                {k: v for k, v in row.items() if k != "step" and v is not None}, step=row["step"]
            ),
        )
        mlflow.log_figure(
            plots.learning_curves(result.history, ["train_loss", "val_loss", "val_macro_f1"], "aspect sentiment"),
            "learning_curves.png",
        )
        val_scores = {
            **_scores(val["label"], [SENTIMENT_LABELS[i] for i in aspect_proba(result, val, cfg).argmax(1)], "val"),
            **_scores(val["label"], rule_labels(val, labeler), "rule_val"),
        }
        proba = aspect_proba(result, test_rows, cfg)
        test_scores = {
            **evaluate_and_plot(
                "aspect-sentiment", proba, test_rows["label"].map(LABEL_IDS).to_numpy(), np.zeros(len(test_rows), bool)
            ),
            **_scores(test_rows["label"], rule_labels(test_rows, labeler), "rule_test"),
        }
        mlflow.log_metrics({**val_scores, **test_scores})
        outcome = AspectOutcome(None, run.info.run_id, sizes, labelled.set_aside, rule, val_scores, test_scores, result)
        if val_scores["val_macro_f1"] <= val_scores["rule_val_macro_f1"]:
            return outcome  # the rule is as good on validation: nothing to serve
        with tempfile.TemporaryDirectory() as tmp:
            result.model.save_pretrained(tmp)
            result.tokenizer.save_pretrained(tmp)
            outcome.version = log_and_register(
                model_file="sentiment_model.py",
                artifacts={"classifier": tmp},
                model_config={"max_length": cfg.length, "prefix": encoder_prefix(cfg.model_path()), "aspect": True},
                registered_name=ASPECT_SENTIMENT,
                input_example=pd.DataFrame(
                    {"text": test_rows["input"].head(3).tolist(), "aspect": test_rows["aspect"].head(3).tolist()}
                ),
                requirements=["torch", "transformers", "pandas", "mlflow"],
                metrics=test_scores,
                tags={
                    "model_kind": "fine-tuned",
                    "truncated": str(result.truncated).lower(),
                    "language": language(train),
                },
                baseline=RULE,
                baseline_headline=test_scores["rule_test_macro_f1"],
            )
    from registry.models import describe_version

    describe_version(ASPECT_SENTIMENT, outcome.version, model_card(outcome, rule))
    return outcome
