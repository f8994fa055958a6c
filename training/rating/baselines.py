"""Rating baselines on the same split: global mean, user + item bias, matrix
factorization, and the untrained online bias (each review's user and item mean
ratings as of just before it, shrunk towards the global mean)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.rating.config import RatingConfig
from training.rating.data import RatingData


class BiasModel:
    """rating = global mean + user bias + item bias (regularized, alternating fits)."""

    def __init__(self, reg: float = 5.0, iters: int = 10) -> None:
        self.reg, self.iters = reg, iters

    def fit(self, df: pd.DataFrame) -> BiasModel:
        self.mu = float(df["rating"].mean())
        self.bu: dict = {}
        self.bi: dict = {}
        r = df["rating"].to_numpy() - self.mu
        for _ in range(self.iters):
            bi = df["item_id"].map(self.bi).fillna(0).to_numpy()
            res = pd.Series(r - bi).groupby(df["user_id"].to_numpy())
            self.bu = (res.sum() / (res.count() + self.reg)).to_dict()
            bu = df["user_id"].map(self.bu).fillna(0).to_numpy()
            res = pd.Series(r - bu).groupby(df["item_id"].to_numpy())
            self.bi = (res.sum() / (res.count() + self.reg)).to_dict()
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return np.clip(
            self.mu + df["user_id"].map(self.bu).fillna(0).to_numpy() + df["item_id"].map(self.bi).fillna(0).to_numpy(),
            1,
            5,
        )


class MatrixFactorization(BiasModel):
    """Biased matrix factorization trained by SGD; unseen users or items fall back to biases."""

    def __init__(self, factors: int = 16, epochs: int = 40, lr: float = 0.01, reg: float = 0.05, seed: int = 13):
        super().__init__()
        self.k, self.epochs, self.lr, self.reg_f, self.seed = factors, epochs, lr, reg, seed

    def fit(self, df: pd.DataFrame) -> MatrixFactorization:
        super().fit(df)
        rng = np.random.default_rng(self.seed)
        self.users = {u: i for i, u in enumerate(df["user_id"].unique())}
        self.items = {it: i for i, it in enumerate(df["item_id"].unique())}
        self.P = rng.normal(0, 0.05, (len(self.users), self.k))
        self.Q = rng.normal(0, 0.05, (len(self.items), self.k))
        u = df["user_id"].map(self.users).to_numpy()
        i = df["item_id"].map(self.items).to_numpy()
        base = super().predict(df)
        r = df["rating"].to_numpy() - base
        for _ in range(self.epochs):
            for j in rng.permutation(len(r)):
                pu, qi = self.P[u[j]], self.Q[i[j]]
                err = r[j] - pu @ qi
                self.P[u[j]] += self.lr * (err * qi - self.reg_f * pu)
                self.Q[i[j]] += self.lr * (err * pu - self.reg_f * qi)
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        base = super().predict(df)
        u = df["user_id"].map(self.users)
        i = df["item_id"].map(self.items)
        known = (u.notna() & i.notna()).to_numpy()
        dot = np.zeros(len(df))
        dot[known] = np.einsum("ij,ij->i", self.P[u[known].astype(int)], self.Q[i[known].astype(int)])
        return np.clip(base + dot, 1, 5)


SHRINK_GRID = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0)


def online_bias(frame: pd.DataFrame, prior: float, strength: float) -> np.ndarray:
    """user mean + item mean - global mean, each shrunk by `strength` reviews of prior,
    from the point-in-time features (the means as of each review): nothing trained."""
    from registry.rating_model import derive

    return np.clip(derive(frame, prior, strength)["bias_sum"].to_numpy(), 1, 5)


def choose_shrinkage(train: pd.DataFrame, val: pd.DataFrame) -> float:
    """The shrinkage strength with the lowest validation RMSE of the online bias."""
    prior, y = float(train["rating"].mean()), val["rating"].to_numpy(float)
    return min(SHRINK_GRID, key=lambda s: float(np.mean((online_bias(val, prior, s) - y) ** 2)))


def rmse_difference(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, users: np.ndarray, rounds: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """RMSE(a) - RMSE(b) with a 95% paired-bootstrap interval, resampling users."""
    codes, inverse = np.unique(users, return_inverse=True)
    ea = np.bincount(inverse, weights=(a - y) ** 2, minlength=len(codes))
    eb = np.bincount(inverse, weights=(b - y) ** 2, minlength=len(codes))
    n = np.bincount(inverse, minlength=len(codes)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(codes), size=(rounds, len(codes)))
    diffs = np.sqrt(ea[draws].sum(1) / n[draws].sum(1)) - np.sqrt(eb[draws].sum(1) / n[draws].sum(1))
    point = float(np.sqrt(ea.sum() / n.sum()) - np.sqrt(eb.sum() / n.sum()))
    return point, float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def regression_metrics(y: np.ndarray, pred: np.ndarray, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        f"{prefix}_mae": float(np.mean(np.abs(pred - y))),
    }


def rating_baselines_run(data: RatingData, cfg: RatingConfig) -> tuple[str, dict[str, float]]:
    """Global mean, user + item bias and matrix factorization as one MLflow run; they
    have no early stopping, so they fit train + validation."""
    import mlflow

    fit_frame, test, y_test = data.fit_frame, data.test, data.y_test
    with mlflow.start_run(run_name="rating-baselines", tags={**data.tags, "model_kind": "baseline"}) as base_run:
        mlflow.log_input(data.dataset, context="training")
        baselines: dict[str, float] = {}
        baselines.update(regression_metrics(y_test, np.full(len(test), fit_frame["rating"].mean()), "global_mean_test"))
        bias = BiasModel().fit(fit_frame)
        baselines.update(regression_metrics(y_test, bias.predict(test), "user_item_bias_test"))
        mf = MatrixFactorization(cfg.mf_factors, cfg.mf_epochs, seed=cfg.seed).fit(fit_frame)
        baselines.update(regression_metrics(y_test, mf.predict(test), "matrix_factorization_test"))
        strength = choose_shrinkage(data.train, data.val)
        online = online_bias(test, float(fit_frame["rating"].mean()), strength)
        baselines.update(regression_metrics(y_test, online, "online_bias_test"))
        baselines["online_bias_strength"] = strength
        mlflow.log_params(
            {
                **data.counts,
                "mf_factors": cfg.mf_factors,
                "mf_epochs": cfg.mf_epochs,
                "bias_reg": bias.reg,
                "online_bias_strength": strength,
            }
        )
        mlflow.log_metrics(baselines)
    return base_run.info.run_id, baselines
