"""Review sentiment: fine-tune the encoder as a 3-class classifier (labels from
the star rating, portrait.text.labels) and, on the same time split, a TF-IDF +
logistic-regression baseline. Each is its own MLflow run; the fine-tuned model
is registered as `review-sentiment`. Macro-F1 is the headline metric."""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.store.database import REVIEW_ORDER
from portrait.text.encoder import autocast, encoder_prefix, resolve_precision, review_text
from portrait.text.labels import SENTIMENT_LABELS, ratings_sentiment
from registry.models import SENTIMENT, SENTIMENT_ZH
from training.behaviour import behaviour_report
from training.common import (
    TimeSplit,
    device,
    environment_params,
    log_and_register,
    pinned_requirements,
    run_tags,
    seed_everything,
    with_float_integers,
)
from training.config import FineTuneConfig

log = logging.getLogger(__name__)
TRUNCATED = "time cap"  # stopped_by when --max-minutes cut the run
LABEL_IDS = {label: i for i, label in enumerate(SENTIMENT_LABELS)}


def load_reviews(engine: sa.Engine) -> pd.DataFrame:
    """Every review with its text, sentiment label and time (raw tables)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT review_id, event_timestamp, rating, summary, text, language FROM reviews r ORDER BY "
                    + REVIEW_ORDER
                )
            )
            .mappings()
            .all()
        )
    df = pd.DataFrame(rows, columns=["review_id", "event_timestamp", "rating", "summary", "text", "language"])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["input"] = [review_text(s, t) for s, t in zip(df["summary"], df["text"])]
    df["label"] = ratings_sentiment(df["rating"])
    return df


def class_weights(labels: pd.Series) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training set (most reviews are 5 stars)."""
    counts = labels.value_counts().reindex(SENTIMENT_LABELS, fill_value=0).to_numpy().astype(float)
    weights = counts.sum() / (len(SENTIMENT_LABELS) * np.maximum(counts, 1))
    return weights


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, prefix: str) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    out = {
        f"{prefix}_macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=range(3), zero_division=0)),
        f"{prefix}_accuracy": float(accuracy_score(y_true, y_pred)),
    }
    per_class = f1_score(y_true, y_pred, average=None, labels=range(3), zero_division=0)
    for label, f1 in zip(SENTIMENT_LABELS, per_class):
        out[f"{prefix}_f1_{label}"] = float(f1)
    return out


def _binary(frame: pd.DataFrame) -> np.ndarray:
    """Which rows carry a positive/negative label only (Chinese data), as a bool array."""
    if "binary" not in frame:
        return np.zeros(len(frame), bool)
    return frame["binary"].eq(True).to_numpy()  # English rows of a concat hold NaN there


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, prefix: str) -> dict[str, float]:
    """Positive/negative data: the prediction is the likelier of the two (neutral is not a
    possible answer for it); macro-F1 over the two classes."""
    from sklearn.metrics import accuracy_score, f1_score

    neg, pos = LABEL_IDS["negative"], LABEL_IDS["positive"]
    y_pred = np.where(proba[:, pos] >= proba[:, neg], pos, neg)
    return {
        f"{prefix}_macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=[neg, pos], zero_division=0)),
        f"{prefix}_accuracy": float(accuracy_score(y_true, y_pred)),
    }


def bilingual_metrics(y_true: np.ndarray, proba: np.ndarray, binary: np.ndarray, prefix: str) -> dict[str, float]:
    """English (3-class) metrics under `prefix`; with binary rows also `zh_<prefix>` metrics,
    and `prefix`_macro_f1 becomes the mean of the two (what early stopping watches).
    All rows binary (a shop without neutral ratings): the binary metrics under `prefix`."""
    if len(binary) and binary.all():
        return binary_metrics(y_true, proba, prefix)
    metrics = classification_metrics(y_true[~binary], proba[~binary].argmax(1), prefix)
    if binary.any():
        metrics.update(binary_metrics(y_true[binary], proba[binary], f"zh_{prefix}"))
        metrics[f"en_{prefix}_macro_f1"] = metrics[f"{prefix}_macro_f1"]
        metrics[f"{prefix}_macro_f1"] = (metrics[f"{prefix}_macro_f1"] + metrics[f"zh_{prefix}_macro_f1"]) / 2
    return metrics


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of similar length (per-batch padding stays short); batch order
    shuffled when rng is given, with some shuffling inside length buckets."""
    order = np.argsort(lengths, kind="stable")
    if rng is not None:
        # shuffle within windows of 50 batches so epochs differ but lengths stay close
        window = batch_size * 50
        order = np.concatenate([rng.permutation(order[i : i + window]) for i in range(0, len(order), window)])
        order = np.concatenate(
            [
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.array_split(order, max(1, len(order) // window))
            ]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _collate(ids: list[list[int]], idx: np.ndarray, pad_id: int):
    import torch

    width = max(len(ids[i]) for i in idx)
    input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = ids[i]
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def predict_proba(
    model, ids: list[list[int]], pad_id: int, dev: str, batch_size: int = 64, precision: str = "float32"
) -> np.ndarray:
    import torch

    model.eval()
    out = np.zeros((len(ids), len(SENTIMENT_LABELS)), dtype=np.float32)
    with torch.inference_mode():
        for idx in length_batches(np.array([len(x) for x in ids]), batch_size, None):
            input_ids, mask = _collate(ids, idx, pad_id)
            with autocast(dev, precision):
                logits = model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev)).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


@dataclass
class FineTuneResult:
    model: Any  # a transformers model
    tokenizer: Any  # a transformers tokenizer
    history: list[dict]
    best_step: int
    steps: int
    examples_per_s: float
    stopped_by: str
    precision: str

    @property
    def truncated(self) -> bool:
        """Cut by the wall-clock cap: the model depends on how fast the machine was."""
        return self.stopped_by == TRUNCATED


class EarlyStopping:
    """Keeps the best checkpoint by validation macro-F1; says stop after `patience`
    validations without a better one."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.f1 = -1.0
        self.step = 0
        self.state: dict[str, Any] | None = None
        self.stale = 0

    def update(self, f1: float, step: int, model: Any) -> bool:
        if f1 > self.f1:
            self.f1, self.step, self.stale = f1, step, 0
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.patience


def _classifier(cfg: FineTuneConfig, dev: Any) -> tuple[Any, Any]:
    """The encoder with a fresh 3-class head, and its tokenizer (local files only)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.model_path(), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg.model_path(),
        local_files_only=True,
        num_labels=len(SENTIMENT_LABELS),
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id=LABEL_IDS,
    ).to(dev)
    return tokenizer, model


def _optimizer(model: Any, cfg: FineTuneConfig, n_train: int) -> tuple[list, Any, Any, int, int]:
    """AdamW over the trainable weights (a large vocabulary's embeddings frozen), linear
    warm-up then decay over the planned steps; returns (trainable, optimizer,
    scheduler, steps per epoch, planned steps)."""
    import torch

    embeddings = model.base_model.embeddings.word_embeddings
    freeze = cfg.freeze_embeddings if cfg.freeze_embeddings is not None else embeddings.num_embeddings > 100_000
    embeddings.weight.requires_grad_(not freeze)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(n_train / cfg.batch_size)
    planned = min(cfg.max_steps or per_epoch * cfg.epochs, per_epoch * cfg.epochs)
    warmup = max(1, int(planned * cfg.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (planned - s) / max(1, planned - warmup)))
    )
    return trainable, optimizer, scheduler, per_epoch, planned


def _validation(
    model: Any, val_ids: list, y_val: np.ndarray, val: pd.DataFrame, pad_id: int, dev: Any, precision: str
) -> dict:
    """Validation macro-F1 (per language) and loss of the model as it is now."""
    import torch

    proba = predict_proba(model, val_ids, pad_id, dev, precision=precision)
    metrics = bilingual_metrics(y_val, proba, _binary(val), "val")
    metrics["val_loss"] = float(
        torch.nn.functional.cross_entropy(torch.log(torch.tensor(proba) + 1e-9), torch.tensor(y_val), reduction="mean")
    )
    return metrics


def _train_step(model: Any, loss_fn: Any, trainable: list, optimizer: Any, scheduler: Any, dev: Any, precision: str):
    """One optimizer step on a batch (logits outside `allowed` masked); returns its loss."""
    import torch

    def step(input_ids: Any, mask: Any, allowed: Any, labels: Any) -> float:
        with autocast(dev, precision):
            logits = model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev)).logits
        logits = logits.float().masked_fill(~allowed.to(dev), -1e4)
        loss = loss_fn(logits, labels.to(dev))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def _encoded(tokenizer: Any, cfg: FineTuneConfig, train: pd.DataFrame, val: pd.DataFrame):
    """Token ids of the training and validation texts, the training labels, and which
    classes each training example may be: binary-labelled examples (Chinese: positive /
    negative, no neutral class) are never asked to be neutral (neutral's logit masked)."""
    import torch

    prefix = encoder_prefix(cfg.model_path())
    tok = lambda texts: tokenizer([prefix + t for t in texts], truncation=True, max_length=cfg.max_length)["input_ids"]
    train_ids, val_ids = tok(train["input"]), tok(val["input"])
    y_train = torch.tensor(train["label"].map(LABEL_IDS).to_numpy())
    allowed = torch.ones((len(train), len(SENTIMENT_LABELS)), dtype=torch.bool)
    allowed[torch.from_numpy(_binary(train)), LABEL_IDS["neutral"]] = False
    return train_ids, val_ids, y_train, allowed


def _epochs_of_batches(lengths: np.ndarray, cfg: FineTuneConfig, rng: np.random.Generator):
    """The length-sorted batches of every epoch, one after the other."""
    for _epoch in range(cfg.epochs):
        yield from length_batches(lengths, cfg.batch_size, rng)


def _stop_reason(step: int, planned: int, cfg: FineTuneConfig, started: float, cap: float | None) -> str | None:
    if step >= planned:
        return "max steps" if cfg.max_steps else "epochs"
    if cap and time.perf_counter() - started > cap:
        return TRUNCATED
    return None


def fine_tune(
    train: pd.DataFrame, val: pd.DataFrame, cfg: FineTuneConfig, progress: bool = True, on_eval=None
) -> FineTuneResult:
    """Fine-tune with class weights, length-sorted batches, early stopping on
    validation macro-F1; returns the best checkpoint."""
    import torch
    from tqdm import tqdm

    seed_everything(cfg.seed)
    dev = device()
    precision = resolve_precision(cfg.precision)  # bf16 where native (faster there; docs/guides/training.md)
    tokenizer, model = _classifier(cfg, dev)
    train_ids, val_ids, y_train, allowed = _encoded(tokenizer, cfg, train, val)
    y_val = val["label"].map(LABEL_IDS).to_numpy()
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weights(train["label"]), dtype=torch.float32).to(dev))
    trainable, optimizer, scheduler, per_epoch, planned = _optimizer(model, cfg, len(train_ids))
    step_fn = _train_step(model, loss_fn, trainable, optimizer, scheduler, dev, precision)
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(x) for x in train_ids])
    eval_every = cfg.eval_every or max(1, per_epoch // 4)
    cap = cfg.max_minutes * 60 if cfg.max_minutes else None  # a safety cap: never part of the schedule

    history: list[dict] = []
    stopping = EarlyStopping(cfg.patience)
    running: list[float] = []
    step, seen, start, stopped_by = 0, 0, time.perf_counter(), "epochs"
    train_time = 0.0  # optimizer steps only, without validation

    def validate() -> bool:
        metrics = _validation(model, val_ids, y_val, val, tokenizer.pad_token_id, dev, precision)
        row = {
            "step": step,
            "epoch": step / per_epoch,
            "train_loss": float(np.mean(running)) if running else None,
            "val_loss": metrics.pop("val_loss"),
            **metrics,
            "train_examples_per_s": seen / max(train_time, 1e-9),
            "elapsed_s": time.perf_counter() - start,
        }
        history.append(row)
        running.clear()
        if on_eval:
            on_eval(row)
        stop = stopping.update(metrics["val_macro_f1"], step, model)
        model.train()
        return stop

    model.train()
    with tqdm(total=planned, desc="fine-tune sentiment", unit="step", disable=not progress, leave=False) as bar:
        for idx in _epochs_of_batches(lengths, cfg, rng):
            t0 = time.perf_counter()
            input_ids, mask = _collate(train_ids, idx, tokenizer.pad_token_id)
            running.append(step_fn(input_ids, mask, allowed[idx], y_train[idx]))
            train_time += time.perf_counter() - t0
            step += 1
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}", best_f1=f"{max(stopping.f1, 0):.3f}", refresh=False)
            if step % eval_every == 0 and validate():
                reason: str | None = "early stopping"
            else:
                reason = _stop_reason(step, planned, cfg, start, cap)
            if reason:
                stopped_by = reason
                break
    if not history or history[-1]["step"] != step:
        validate()
    examples_per_s = seen / max(1e-9, train_time)
    model.load_state_dict(stopping.state)
    model.eval()
    return FineTuneResult(model, tokenizer, history, stopping.step, step, examples_per_s, stopped_by, precision)


def train_baseline(train: pd.DataFrame, chinese: bool = False):
    """TF-IDF (words and bigrams) + class-weighted logistic regression; words from
    jieba for Chinese text (which has no spaces to split at)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from training.common import word_tfidf

    pipeline = make_pipeline(
        word_tfidf(chinese, max_features=100_000),
        LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0),
    )
    start = time.perf_counter()
    pipeline.fit(train["input"], train["label"].map(LABEL_IDS))
    fit_seconds = time.perf_counter() - start
    return pipeline, fit_seconds


def evaluate_and_plot(
    name: str, proba: np.ndarray, y_true: np.ndarray, binary: np.ndarray, prefix: str = "test"
) -> dict[str, float]:
    """The metrics; confusion matrix, classification report and calibration plot into the
    active run (the caller logs the metrics, linked to the model it logs)."""
    import mlflow
    from sklearn.metrics import classification_report, confusion_matrix

    from training import plots

    if binary.all():  # never neutral: the likelier of negative and positive
        proba = proba * (np.arange(proba.shape[1]) != LABEL_IDS["neutral"])
        proba = proba / proba.sum(1, keepdims=True)
    y_pred = proba.argmax(1)
    metrics = bilingual_metrics(y_true, proba, binary, prefix)
    cm = confusion_matrix(y_true, y_pred, labels=range(3))
    mlflow.log_figure(
        plots.confusion_matrix(cm, list(SENTIMENT_LABELS), f"{name}: {prefix} confusion"),
        f"{prefix}_confusion_matrix.png",
    )
    mlflow.log_text(
        classification_report(
            y_true, y_pred, labels=range(3), target_names=list(SENTIMENT_LABELS), digits=3, zero_division=0
        ),
        f"{prefix}_classification_report.txt",
    )
    mlflow.log_figure(
        plots.calibration(proba.max(1), (y_pred == y_true).astype(float), f"{name}: calibration"),
        f"{prefix}_calibration.png",
    )
    return metrics


def baseline_proba(pipeline, texts) -> np.ndarray:
    """A scikit-learn classifier's probabilities as SENTIMENT_LABELS columns (a class
    it never saw, e.g. neutral in positive/negative data, gets 0)."""
    proba = np.zeros((len(texts), len(SENTIMENT_LABELS)))
    for column, label in enumerate(pipeline.classes_):
        proba[:, label if isinstance(label, (int, np.integer)) else LABEL_IDS[label]] = pipeline.predict_proba(texts)[
            :, column
        ]
    return proba


def _proba(result: FineTuneResult, texts: list[str], cfg: FineTuneConfig) -> np.ndarray:
    """Class probabilities of the fine-tuned model, inputs prefixed as in training."""
    prefix = encoder_prefix(cfg.model_path())
    ids = result.tokenizer([prefix + t for t in texts], truncation=True, max_length=cfg.max_length)["input_ids"]
    return predict_proba(result.model, ids, result.tokenizer.pad_token_id, device(), precision=result.precision)


def _labels_and_positive(result: FineTuneResult, texts: list[str], cfg: FineTuneConfig) -> tuple[list[str], np.ndarray]:
    """The fine-tuned model as training.behaviour's predict."""
    proba = _proba(result, texts, cfg)
    return [SENTIMENT_LABELS[i] for i in proba.argmax(1)], proba[:, LABEL_IDS["positive"]]


def chinese_parts(cfg: FineTuneConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) of the Chinese data, marked binary: cfg.chinese training
    reviews sampled evenly over the categories, at most cfg.val_limit for validation, the
    whole fixed test split. Empty frames when cfg.chinese is 0."""
    if not cfg.chinese:
        empty = pd.DataFrame(columns=["input", "label", "binary"])
        return empty, empty, empty
    from portrait.settings import get_settings
    from training.chinese import load_chinese

    zh = load_chinese(get_settings().resolved_data_dir()).assign(binary=True, language="zh")
    train = zh[zh["split"] == "train"]
    train = train.groupby("category").sample(frac=min(1.0, cfg.chinese / len(train)), random_state=cfg.seed)
    val = zh[zh["split"] == "val"]
    val = val.sample(min(cfg.val_limit, len(val)), random_state=cfg.seed)
    test = zh[zh["split"] == "test"]
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


@dataclass
class SentimentOutcome:
    name: str  # the registered model: review-sentiment, or review-sentiment-zh
    baseline_run_id: str
    run_id: str
    version: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    baseline: str  # its name: tfidf+logreg, or jieba-tfidf+logreg for a mostly Chinese shop
    examples_per_s: float
    stopped_by: str
    result: FineTuneResult


@dataclass
class SentimentData:
    """One training run's reviews, split by time, and what follows from them."""

    train: pd.DataFrame
    val: pd.DataFrame
    val_small: pd.DataFrame  # an evenly spaced subset (time order kept): validation stays cheap on CPU
    test: pd.DataFrame
    zh_train: pd.DataFrame  # the shared Chinese data beside an English shop's reviews (else empty)
    zh_val: pd.DataFrame
    zh_test: pd.DataFrame
    registered_name: str
    classes: list[str]
    chinese_shop: bool  # its baseline tokenizes with jieba
    baseline_name: str
    dataset: Any  # the MLflow dataset logged as each run's input
    counts: dict[str, int | str]
    tags: dict[str, str]

    @property
    def y_test(self) -> np.ndarray:
        return self.test["label"].map(LABEL_IDS).to_numpy()


def sentiment_data(engine: sa.Engine, cfg: FineTuneConfig, split: TimeSplit) -> SentimentData:
    """The reviews of the run (the shop's, and the Chinese data where asked), split by time."""
    import mlflow

    reviews = load_reviews(engine)
    if cfg.language:
        reviews = reviews[reviews["language"].eq(cfg.language)].reset_index(drop=True)
    zh_train, zh_val, zh_test = chinese_parts(cfg)
    if reviews.empty and not len(zh_train):
        raise ValueError(f"no {cfg.language + ' ' if cfg.language else ''}reviews: run portrait ingest first")
    parts = split.part(reviews["event_timestamp"])
    train, val, test = (reviews[parts == p].reset_index(drop=True) for p in ("train", "val", "test"))
    registered_name = SENTIMENT
    if cfg.language == "zh":  # the Chinese model: the shop's Chinese reviews and the Chinese data, one test set
        registered_name = SENTIMENT_ZH
        train, val, test = (
            pd.concat([a, b], ignore_index=True) for a, b in ((train, zh_train), (val, zh_val), (test, zh_test))
        )
        zh_train = zh_val = zh_test = zh_train.iloc[:0]
    for label, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise ValueError(f"the {label} period of {split.window()} holds no reviews")
    # A shop whose ratings have no middle (thumbs up/down, 0/1 labels mapped to 1 and 5 stars)
    # teaches no neutral class: its reviews are binary rows, never asked to be neutral, and the
    # model it gives answers negative or positive only (model_config classes).
    binary_shop = not train["label"].eq("neutral").any()
    if binary_shop:
        train, val, test = (part.assign(binary=True) for part in (train, val, test))
    classes = ["negative", "positive"] if binary_shop else list(SENTIMENT_LABELS)
    chinese_shop = bool(train["language"].eq("zh").mean() > 0.5)
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily bound by mlflow.data
        with_float_integers(reviews.assign(part=parts)[["review_id", "event_timestamp", "input", "label", "part"]]),
        name="shop-reviews-sentiment",
        targets="label",
    )
    counts: dict[str, int | str] = {f"{n}_reviews": len(p) for n, p in (("train", train), ("val", val), ("test", test))}
    counts["sentiment_classes"] = ",".join(classes)  # ("classes" is the model config's, logged by MLflow)
    if len(zh_train):
        counts.update(chinese_train_reviews=len(zh_train), chinese_test_reviews=len(zh_test))
    return SentimentData(
        train=train,
        val=val,
        val_small=val.iloc[np.linspace(0, len(val) - 1, min(cfg.val_limit, len(val))).astype(int)],
        test=test,
        zh_train=zh_train,
        zh_val=zh_val,
        zh_test=zh_test,
        registered_name=registered_name,
        classes=classes,
        chinese_shop=chinese_shop,
        baseline_name="jieba-tfidf+logreg" if chinese_shop else "tfidf+logreg",
        dataset=dataset,
        counts=counts,
        tags=run_tags(split),
    )


def baseline_run(data: SentimentData) -> tuple[str, dict[str, float]]:
    """The TF-IDF + LR baseline (jieba-tokenized for a Chinese shop) as its own MLflow
    run on the same split; returns the run id and its metrics."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    chinese_shop, train, val, test = data.chinese_shop, data.train, data.val, data.test
    with mlflow.start_run(
        run_name=data.baseline_name.replace("+", "-") + "-baseline", tags={**data.tags, "model_kind": "baseline"}
    ) as base_run:
        mlflow.log_input(data.dataset, context="training")
        pipeline, fit_seconds = train_baseline(train, chinese=chinese_shop)
        mlflow.log_params(
            {
                "model": f"{'jieba ' if chinese_shop else ''}tfidf(1-2gram)+logreg(balanced)",
                **data.counts,
                "fit_seconds": round(fit_seconds, 2),
            }
        )
        val_metrics = bilingual_metrics(
            val["label"].map(LABEL_IDS).to_numpy(), baseline_proba(pipeline, val["input"]), _binary(val), "val"
        )
        baseline_metrics = evaluate_and_plot(
            data.baseline_name, baseline_proba(pipeline, test["input"]), data.y_test, _binary(test)
        )
        baseline_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            # declared, not inferred: review text in, class id (0..2, SENTIMENT_LABELS order) out
            signature=ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("long")])),
            pip_requirements=pinned_requirements(
                ["scikit-learn", "cloudpickle", "numpy", "scipy", *(["jieba"] if chinese_shop else [])]
            ),
            # its tokenizer is Portrait's jieba segmentation (loading it needs portrait installed)
            skops_trusted_types=["portrait.text.language.jieba_words"] if chinese_shop else None,
        )
        if len(data.zh_train):  # the Chinese baseline: jieba TF-IDF + LR on the same Chinese training rows
            from training.chinese import train_jieba_baseline

            zh_pipeline = train_jieba_baseline(data.zh_train)
            zh_proba = baseline_proba(zh_pipeline, data.zh_test["input"])
            baseline_metrics.update(
                binary_metrics(data.zh_test["label"].map(LABEL_IDS).to_numpy(), zh_proba, "zh_test")
            )
        # after the model, linked to it (see run_rating_training: no duplicate inserts)
        mlflow.log_metrics({**val_metrics, **baseline_metrics}, model_id=baseline_info.model_id)
    return base_run.info.run_id, baseline_metrics


def _fine_tuned_metrics(
    data: SentimentData, result: FineTuneResult, cfg: FineTuneConfig, baseline_metrics: dict[str, float]
) -> dict[str, float]:
    """Test metrics of the fine-tuned model (and on the Chinese test set), each beside
    the baseline's, and the behavioural checks."""
    import mlflow

    proba = _proba(result, list(data.test["input"]), cfg)
    metrics = evaluate_and_plot("fine-tuned", proba, data.y_test, _binary(data.test))
    metrics["test_macro_f1_gain_over_baseline"] = metrics["test_macro_f1"] - baseline_metrics["test_macro_f1"]
    if len(data.zh_test):
        zh_metrics = binary_metrics(
            data.zh_test["label"].map(LABEL_IDS).to_numpy(),
            _proba(result, list(data.zh_test["input"]), cfg),
            "zh_test",
        )
        zh_metrics["zh_test_macro_f1_gain_over_baseline"] = (
            zh_metrics["zh_test_macro_f1"] - baseline_metrics["zh_test_macro_f1"]
        )
        metrics.update(zh_metrics)
    behaviour = behaviour_report(lambda texts: _labels_and_positive(result, texts, cfg))
    metrics.update(behaviour.metrics())
    mlflow.log_text("\n".join(behaviour.failures) or "all behavioural checks passed", "behaviour_failures.txt")
    return metrics


def fine_tune_run(
    data: SentimentData, cfg: FineTuneConfig, baseline_metrics: dict[str, float], progress: bool
) -> tuple[str, int, dict[str, float], FineTuneResult]:
    """The fine-tune as its own MLflow run: learning curves, test metrics beside the
    baseline's, the model registered and its version tagged with the baseline's
    headline. Returns the run id, the version, the metrics and the result."""
    import mlflow

    from registry.models import HEADLINE
    from training import plots

    with mlflow.start_run(run_name="fine-tune-sentiment", tags={**data.tags, "model_kind": "fine-tuned"}) as run:
        mlflow.log_input(data.dataset, context="training")
        mlflow.log_params({**asdict(cfg), "model": cfg.model_path(), **data.counts, **environment_params()})
        result = fine_tune(
            pd.concat([data.train, data.zh_train], ignore_index=True),
            pd.concat([data.val_small, data.zh_val], ignore_index=True),
            cfg,
            progress=progress,
            on_eval=lambda row: mlflow.log_metrics(
                {k: v for k, v in row.items() if k not in ("step",) and v is not None}, step=row["step"]
            ),
        )
        mlflow.log_figure(
            plots.learning_curves(result.history, ["train_loss", "val_loss", "val_macro_f1"], "fine-tune sentiment"),
            "learning_curves.png",
        )
        metrics = _fine_tuned_metrics(data, result, cfg, baseline_metrics)
        mlflow.log_param("precision_used", result.precision)
        mlflow.set_tags({"stopped_by": result.stopped_by, "truncated": str(result.truncated).lower()})
        run_metrics = {
            "train_examples_per_s": result.examples_per_s,
            "best_step": result.best_step,
            "steps": result.steps,
        }
        with tempfile.TemporaryDirectory() as tmp:
            result.model.save_pretrained(tmp)
            result.tokenizer.save_pretrained(tmp)
            version = log_and_register(
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
                metrics={**metrics, **run_metrics},
                tags={**data.tags, "truncated": str(result.truncated).lower()},
                baseline=data.baseline_name,
                baseline_headline=baseline_metrics[HEADLINE[data.registered_name][0]],
            )
    return run.info.run_id, version, metrics, result


def run_sentiment_training(
    engine: sa.Engine, cfg: FineTuneConfig, split: TimeSplit = TimeSplit(), progress: bool = True
) -> SentimentOutcome:
    """Baseline and fine-tune on the same time split, each logged as an MLflow run
    (the tracking URI must be configured); the fine-tuned model is registered."""
    data = sentiment_data(engine, cfg, split)
    baseline_run_id, baseline_metrics = baseline_run(data)
    run_id, version, metrics, result = fine_tune_run(data, cfg, baseline_metrics, progress)
    return SentimentOutcome(
        data.registered_name,
        baseline_run_id,
        run_id,
        version,
        metrics,
        baseline_metrics,
        data.baseline_name,
        result.examples_per_s,
        result.stopped_by,
        result,
    )
