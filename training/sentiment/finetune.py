"""Fine-tuning the encoder as a 3-class classifier: length-bucketed batches, class-weighted loss, early stopping on validation macro-F1."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from portrait.text.encoder import autocast, encoder_prefix, resolve_precision
from portrait.text.labels import SENTIMENT_LABELS
from training.common import (
    device,
    seed_everything,
)
from training.sentiment.config import FineTuneConfig
from training.sentiment.metrics import LABEL_IDS, bilingual_metrics, binary_labels

TRUNCATED = "time cap"  # stopped_by when --max-minutes cut the run


def class_weights(labels: pd.Series) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training set (most reviews are 5 stars)."""
    counts = labels.value_counts().reindex(SENTIMENT_LABELS, fill_value=0).to_numpy().astype(float)
    weights = counts.sum() / (len(SENTIMENT_LABELS) * np.maximum(counts, 1))
    return weights


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
    metrics = bilingual_metrics(y_val, proba, binary_labels(val), "val")
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


def token_ids(tokenizer: Any, prefix: str, frame: pd.DataFrame, max_length: int) -> list[list[int]]:
    """Token ids of the frame's `input`; with an `aspect` column, the pair "text [SEP]
    aspect" (the aspect-conditioned classifier of BERT-SPC), the text truncated first.
    No segment ids: serving tokenizes the same way (registry/sentiment_model.py)."""
    texts = [prefix + str(t) for t in frame["input"]]
    if "aspect" not in frame:
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    aspects = [str(a) for a in frame["aspect"]]
    return tokenizer(texts, aspects, truncation="only_first", max_length=max_length)["input_ids"]


# The lengths a fitted max length chooses between: the shorter when it holds FIT_COVERAGE of
# the training texts whole, else the longer (capped: CPU time grows with it). Measured on
# online_shopping_10_cats (17.8% of its reviews exceed 64 e5 tokens, p95 129): 128 gave
# validation macro-F1 0.9312 against 0.9286 at 64, at 28.9 against 33.8 examples/s (batches
# are padded to their longest text, so short texts stay cheap).
FIT_LENGTHS = (64, 128)
FIT_COVERAGE = 0.95
FIT_SAMPLE = 5000  # texts tokenized to measure the lengths (evenly spaced)


def fitted_length(cfg: FineTuneConfig, texts: list[str]) -> FineTuneConfig:
    """cfg with its max length fitted to the training texts when none was given (the
    entry points call it before fine_tune: their inference and model config need it too)."""
    if cfg.max_length is not None:
        return cfg
    return replace(cfg, max_length=fit_length(token_counts(cfg.model_path(), texts)))


def fit_length(counts: list[int]) -> int:
    if not counts:
        return FIT_LENGTHS[0]
    need = sorted(counts)[math.ceil(FIT_COVERAGE * len(counts)) - 1]  # FIT_COVERAGE of the texts have <= need
    return next((n for n in FIT_LENGTHS if need <= n), FIT_LENGTHS[-1])


def token_counts(model_path: str, texts: list[str]) -> list[int]:
    """Tokens per text as training tokenizes them (prefix, special tokens), on an evenly
    spaced sample; counted up to one past the longest choice (beyond it all are alike)."""
    from transformers import AutoTokenizer

    sample = pd.DataFrame({"input": texts[:: max(1, len(texts) // FIT_SAMPLE)]})
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return [len(ids) for ids in token_ids(tokenizer, encoder_prefix(model_path), sample, FIT_LENGTHS[-1] + 1)]


def _encoded(tokenizer: Any, cfg: FineTuneConfig, train: pd.DataFrame, val: pd.DataFrame):
    """Token ids of the training and validation texts, the training labels, and which
    classes each training example may be: binary-labelled examples (Chinese: positive /
    negative, no neutral class) are never asked to be neutral (neutral's logit masked)."""
    import torch

    prefix = encoder_prefix(cfg.model_path())
    train_ids, val_ids = (token_ids(tokenizer, prefix, part, cfg.length) for part in (train, val))
    y_train = torch.tensor(train["label"].map(LABEL_IDS).to_numpy())
    allowed = torch.ones((len(train), len(SENTIMENT_LABELS)), dtype=torch.bool)
    allowed[torch.from_numpy(binary_labels(train)), LABEL_IDS["neutral"]] = False
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
