"""The rating MLP on rating_v1: its feature spec (scaling, fill values), training with early stopping, prediction."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.common import (
    seed_everything,
)
from training.rating.config import RatingConfig
from training.rating.data import RatingData

if TYPE_CHECKING:  # the models-from-code file registers its model when imported
    from registry.rating_model import FeatureSpec


def feature_spec(
    train: pd.DataFrame, features: list[str], hidden: tuple[int, ...], shrink_strength: float = 3.0
) -> FeatureSpec:
    """Standardization and missing-value indicators, from the training rows only."""
    from registry.rating_model import DERIVED, derive

    prior = float(train["rating"].mean())
    train = pd.concat([train, derive(train, prior, shrink_strength)], axis=1)
    features = [*features, *DERIVED]
    spec: FeatureSpec = {
        "features": features,
        "mean": {},
        "std": {},
        "indicators": [],
        "hidden": list(hidden),
        "target_mean": prior,
        "target_std": float(train["rating"].std() or 1.0),
        "n_inputs": 0,  # set below, once the indicators are known
        "shrink_strength": float(shrink_strength),
        "residual": True,
    }
    for name in features:
        values = pd.to_numeric(train[name], errors="coerce").astype(float)
        mean = float(values.mean()) if values.notna().any() else 0.0
        std = float(values.std()) if values.notna().sum() > 1 else 1.0
        spec["mean"][name], spec["std"][name] = mean, std if std > 1e-9 else 1.0
        if values.isna().any():
            spec["indicators"].append(name)
    spec["n_inputs"] = len(features) + len(spec["indicators"])
    return spec


def train_mlp(train: pd.DataFrame, val: pd.DataFrame, spec: FeatureSpec, cfg: RatingConfig, on_epoch=None):
    """MSE on the standardized rating with early stopping on validation RMSE."""
    import torch

    from registry.rating_model import build_net, offset, prepare, rating_of

    seed_everything(cfg.seed)
    net = build_net(spec["n_inputs"], list(cfg.hidden))
    x_tr, x_va = torch.from_numpy(prepare(train, spec)), torch.from_numpy(prepare(val, spec))
    residual = (train["rating"].to_numpy(float) - offset(train, spec)) / spec["target_std"]
    y_tr = torch.tensor(residual, dtype=torch.float32)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []

    def val_rmse_now() -> float:
        net.eval()
        with torch.inference_mode():
            pred = rating_of(net(x_va).squeeze(-1).numpy(), val, spec)
        return float(np.sqrt(np.mean((pred - val["rating"].to_numpy()) ** 2)))

    # epoch 0 is the offset alone (the last layer starts at zero): no epoch that does
    # not beat it on validation is kept
    start = val_rmse_now()
    history.append({"step": 0, "train_loss": float("nan"), "val_rmse": start})
    best: tuple[float, dict | None, int] = (start, {k: v.clone() for k, v in net.state_dict().items()}, 0)
    stale = 0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        losses = []
        for idx in torch.randperm(len(x_tr), generator=gen).split(cfg.batch_size):
            loss = torch.nn.functional.mse_loss(net(x_tr[idx]).squeeze(-1), y_tr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val_rmse = val_rmse_now()
        row = {"step": epoch, "train_loss": float(np.mean(losses)), "val_rmse": val_rmse}
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if val_rmse < best[0]:
            best, stale = (val_rmse, {k: v.clone() for k, v in net.state_dict().items()}, epoch), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    net.load_state_dict(best[1])
    net.eval()
    return net, history, best[2]


def predict_mlp(net, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    import torch

    from registry.rating_model import prepare, rating_of

    with torch.inference_mode():
        y = net(torch.from_numpy(prepare(frame, spec))).squeeze(-1).numpy()
    return rating_of(y, frame, spec)


def fit_mlp(data: RatingData, cfg: RatingConfig, features: list[str] | None = None, shrink_strength: float = 3.0):
    """The epoch count chosen on validation (early stopping), then the model refit on
    train + validation for that many epochs, as the baselines learn from both (the test
    period starts right after). features: data.features unless given (the text
    ablation). Returns (first net, its spec, net, spec, history, best epoch)."""
    import mlflow

    features = data.features if features is None else features
    first_spec = feature_spec(data.train, features, cfg.hidden, shrink_strength)
    log = features is data.features  # the ablation's curves stay out of the run's
    first_net, history, best_epoch = train_mlp(
        data.train,
        data.val,
        first_spec,
        cfg,
        on_epoch=(lambda row: mlflow.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"]))
        if log
        else None,
    )
    fit_frame = data.fit_frame
    spec = feature_spec(fit_frame, features, cfg.hidden, shrink_strength)
    refit = RatingConfig(**{**asdict(cfg), "epochs": best_epoch, "patience": 10**6})
    net, _, _ = train_mlp(fit_frame, data.val, spec, refit)
    return first_net, first_spec, net, spec, history, best_epoch
