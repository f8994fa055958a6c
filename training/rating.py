"""Rating prediction from Feast features only: the training set is Feast's
point-in-time join of feature service rating_v1 on (user, item, review time)
rows, so every feature is as of just before the review. A small MLP learns the
rating; baselines on the same time split: global mean, user + item bias, matrix
factorization. Ranking on the test period (NDCG@10, Recall@10) against a
popularity baseline. The model is registered as `rating-predictor`."""

from __future__ import annotations

import functools
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.features.rating_inputs import RATING_SERVICE
from portrait.featurestore.repo import service_features
from portrait.store.database import REVIEW_ORDER
from registry.models import RATING
from training.common import (
    TimeSplit,
    environment_params,
    log_and_register,
    run_tags,
    seed_everything,
    with_float_integers,
)
from training.config import RatingConfig

if TYPE_CHECKING:  # the models-from-code file registers its model when imported
    from registry.rating_model import FeatureSpec, RankingWeights

FEATURE_SERVICE = RATING_SERVICE
REGISTERED_NAME = RATING
NON_FEATURES = {
    "label_order",
    "user_id",
    "item_id",
    "event_timestamp",
    "request_unix",
    "rating",
    "review_id",
    "part",
    "sentiment_source",
    "interest_tags",
    "last_activity_unix",
    "last_purchase_unix",
}


def label_rows(engine: sa.Engine) -> pd.DataFrame:
    """One row per review: who, what, when, and the rating to learn. The feature
    time is one second before the review, so the review itself is never its own
    feature (its snapshot has the same timestamp)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT review_id, user_id, item_id, event_timestamp, rating FROM reviews r ORDER BY "
                    + REVIEW_ORDER
                )
            )
            .mappings()
            .all()
        )
    df = pd.DataFrame(rows, columns=["review_id", "user_id", "item_id", "event_timestamp", "rating"])
    ts = pd.to_datetime(df["event_timestamp"], utc=True)
    df["request_unix"] = (ts.astype("int64") // 10**9).astype("int64")
    df["event_timestamp"] = ts - pd.Timedelta(seconds=1)
    return df


def training_frame(store, labels: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join of rating_v1 onto the label rows."""
    from portrait.featurestore.repo import historical_features

    entity_df = labels[["user_id", "item_id", "event_timestamp", "request_unix", "review_id", "rating"]].assign(
        label_order=np.arange(len(labels))
    )
    df = historical_features(store, entity_df, store.get_feature_service(FEATURE_SERVICE), progress=True)
    # back in the labels' order (portrait.store.database.REVIEW_ORDER): Feast returns its own
    return df.sort_values("label_order").drop(columns="label_order").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame, declared: list[str] | None = None) -> list[str]:
    return [
        c
        for c in (declared or frame.columns)
        if c in frame and c not in NON_FEATURES and pd.api.types.is_numeric_dtype(frame[c])
    ]


def feature_spec(train: pd.DataFrame, features: list[str], hidden: tuple[int, ...]) -> FeatureSpec:
    """Standardization and missing-value indicators, from the training rows only."""
    from registry.rating_model import DERIVED, derive

    prior = float(train["rating"].mean())
    train = pd.concat([train, derive(train, prior)], axis=1)
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

    from registry.rating_model import build_net, prepare

    seed_everything(cfg.seed)
    net = build_net(spec["n_inputs"], list(cfg.hidden))
    x_tr, x_va = torch.from_numpy(prepare(train, spec)), torch.from_numpy(prepare(val, spec))
    y_tr = torch.tensor(((train["rating"] - spec["target_mean"]) / spec["target_std"]).to_numpy(), dtype=torch.float32)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best: tuple[float, dict | None, int] = (math.inf, None, 0)
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
        net.eval()
        with torch.inference_mode():
            pred = np.clip(net(x_va).squeeze(-1).numpy() * spec["target_std"] + spec["target_mean"], 1, 5)
        val_rmse = float(np.sqrt(np.mean((pred - val["rating"].to_numpy()) ** 2)))
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

    from registry.rating_model import prepare

    with torch.inference_mode():
        y = net(torch.from_numpy(prepare(frame, spec))).squeeze(-1).numpy()
    return np.clip(y * spec["target_std"] + spec["target_mean"], 1, 5)


# --- baselines ---------------------------------------------------------------------


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


def regression_metrics(y: np.ndarray, pred: np.ndarray, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        f"{prefix}_mae": float(np.mean(np.abs(pred - y))),
    }


# --- ranking ---------------------------------------------------------------------------


def ndcg_recall_at_k(ranked: dict[str, list[str]], relevant: dict[str, set[str]], k: int) -> tuple[float, float]:
    """Mean NDCG@k and Recall@k over users with at least one relevant item."""
    ndcgs, recalls = [], []
    for user, items in relevant.items():
        top = ranked.get(user, [])[:k]
        gains = [1.0 if it in items else 0.0 for it in top]
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(items))))
        ndcgs.append(dcg / ideal)
        recalls.append(sum(gains) / len(items))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def _as_of(store, entities: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    from portrait.featurestore.repo import historical_features

    return historical_features(store, entities, features)


@dataclass
class RankingPeriod:
    """Who reviewed what in one period, and everything known at its start.
    Warm users (with a text profile) are ranked by the model, the rest get the
    most popular items, as serving does."""

    users: list[str]  # sampled users with at least one new item in the period
    relevant: dict[str, set[str]]  # items each reviewed in the period, seen ones excluded
    seen: dict[str, set[str]]
    popular: list[str]  # items by review count before the period
    items: list[str]
    warm: list[str]
    features: pd.DataFrame  # rating_v1 inputs for every (warm user, item), user-major
    affinity: np.ndarray  # warm users x items
    item_review_count: np.ndarray  # items
    allowed: np.ndarray  # warm users x items: not reviewed before

    def popularity(self, user: str, k: int) -> list[str]:
        s = self.seen.get(user, set())
        return [i for i in self.popular if i not in s][:k]


def _new_items(before: pd.DataFrame, during: pd.DataFrame, seen: dict, cfg: RatingConfig) -> dict[str, set]:
    """Each user's items of the period not seen before it (users with none left out;
    a seeded sample of cfg.ranking_users when there are more)."""
    relevant = {u: set(g) - seen.get(u, set()) for u, g in during.groupby("user_id")["item_id"]}
    relevant = {u: r for u, r in relevant.items() if r}
    users = sorted(relevant)
    if len(users) > cfg.ranking_users:
        users = sorted(np.random.default_rng(cfg.seed).choice(users, size=cfg.ranking_users, replace=False))
    return {u: relevant[u] for u in users}


def ranking_period(store, before: pd.DataFrame, during: pd.DataFrame, start, cfg: RatingConfig) -> RankingPeriod:
    """Features as of `start`, fetched per user and per item (two small
    point-in-time joins) and combined by portrait.features.rating_inputs, as serving
    combines the online ones: a join per (user, item) pair would carry every item
    embedding snapshot through PostgreSQL."""
    from portrait.features.rating_inputs import RATING_SERVICE, affinity, embedding_matrix, rating_inputs
    from portrait.featurestore.repo import PROFILE_SERVICE, RECOMMEND_SERVICE, service_features, service_refs

    cut = pd.Timestamp(start) - pd.Timedelta(seconds=1)
    seen = before.groupby("user_id")["item_id"].agg(set).to_dict()
    relevant = _new_items(before, during, seen, cfg)
    users = sorted(relevant)
    user_df = _as_of(
        store, pd.DataFrame({"user_id": users, "event_timestamp": cut}), service_refs(store, PROFILE_SERVICE, "user_id")
    )
    user_df = user_df.drop(columns=["event_timestamp"]).drop_duplicates("user_id").set_index("user_id")
    items = sorted(set(before["item_id"]))
    item_df = _as_of(
        store,
        pd.DataFrame({"item_id": items, "event_timestamp": cut}),
        service_refs(store, RECOMMEND_SERVICE, "item_id"),
    )
    item_df = item_df.drop_duplicates("item_id").set_index("item_id").reindex(items)
    item_vectors = embedding_matrix(list(item_df["item_embedding"]))
    warm = [
        u
        for u in users
        if u in user_df.index and user_df.at[u, "user_embedding"] is not None and len(user_df.at[u, "user_embedding"])
    ]
    user_vectors = embedding_matrix([user_df.at[u, "user_embedding"] for u in warm])
    if not warm:
        user_vectors = np.zeros((0, item_vectors.shape[1]), np.float32)
    period_affinity = affinity(user_vectors, item_vectors)
    n_items = len(items)
    features = rating_inputs(
        user_df.reindex(np.repeat(warm, n_items)).reset_index(drop=True),
        item_df.iloc[np.tile(np.arange(n_items), len(warm))].reset_index(drop=True),
        period_affinity.reshape(-1),
        pd.Timestamp(start).timestamp(),
        service_features(store, RATING_SERVICE),
    )
    index = {i: j for j, i in enumerate(items)}
    allowed = np.ones((len(warm), n_items), dtype=bool)
    for r, user in enumerate(warm):
        allowed[r, [index[i] for i in seen.get(user, ()) if i in index]] = False
    review_count = pd.to_numeric(item_df["item_review_count"], errors="coerce").to_numpy(float)
    return RankingPeriod(
        users,
        relevant,
        seen,
        before["item_id"].value_counts().index.tolist(),
        items,
        warm,
        features,
        period_affinity,
        review_count,
        allowed,
    )


def _row_ratings(ratings: np.ndarray, row: int, cand: np.ndarray) -> np.ndarray:
    return ratings[row, cand]


def ranked_lists(
    period: RankingPeriod, ratings: np.ndarray, weights: RankingWeights, cfg: RatingConfig
) -> dict[str, list[str]]:
    """Top-k per user exactly as /recommend ranks (registry.rating_model.rank_for_user;
    ratings: warm users x items)."""
    from registry.rating_model import rank_for_user

    ranked = {}
    for r, user in enumerate(period.warm):
        top, _, _ = rank_for_user(
            period.affinity[r],
            period.item_review_count,
            period.allowed[r],
            functools.partial(_row_ratings, ratings, r),
            weights,
            cfg.candidates,
            cfg.k,
        )
        ranked[user] = [period.items[j] for j in top]
    for user in period.users:
        ranked.setdefault(user, period.popularity(user, cfg.k))
    return ranked


RANKING_GRID: list[RankingWeights] = [
    {"affinity": a, "popularity": p, "rating": r}
    for a in (0.0, 0.5, 1.0, 2.0, 4.0)
    for p in (0.0, 0.1, 0.25, 0.5, 1.0)
    for r in (0.0, 0.5, 1.0)
    if a or p
]


def choose_ranking(period: RankingPeriod, ratings: np.ndarray, cfg: RatingConfig) -> tuple[RankingWeights, float]:
    """The ranking weights with the best NDCG@k on this (validation) period."""
    best, best_ndcg = RANKING_GRID[0], -1.0
    for weights in RANKING_GRID:
        ndcg, _ = ndcg_recall_at_k(ranked_lists(period, ratings, weights, cfg), period.relevant, cfg.k)
        if ndcg > best_ndcg + 1e-12:
            best, best_ndcg = weights, ndcg
    return best, best_ndcg


def ranking_metrics(
    period: RankingPeriod, ratings: np.ndarray, weights: RankingWeights, cfg: RatingConfig, prefix: str
) -> dict[str, float]:
    """NDCG@k and Recall@k of the model's ranking and of popularity on one period."""
    from registry.rating_model import DEFAULT_RANKING

    k = cfg.k
    ndcg, recall = ndcg_recall_at_k(ranked_lists(period, ratings, weights, cfg), period.relevant, k)
    pop = {u: period.popularity(u, k) for u in period.users}
    pop_ndcg, pop_recall = ndcg_recall_at_k(pop, period.relevant, k)
    by_rating, _ = ndcg_recall_at_k(ranked_lists(period, ratings, DEFAULT_RANKING, cfg), period.relevant, k)
    return {
        f"{prefix}_ndcg_at_{k}": ndcg,
        f"{prefix}_recall_at_{k}": recall,
        f"{prefix}_popularity_ndcg_at_{k}": pop_ndcg,
        f"{prefix}_popularity_recall_at_{k}": pop_recall,
        f"{prefix}_nearest_by_rating_ndcg_at_{k}": by_rating,
        f"{prefix}_ndcg_at_{k}_vs_popularity": ndcg / pop_ndcg if pop_ndcg else float("nan"),
        f"{prefix}_ranking_users": len(period.users),
        f"{prefix}_ranking_cold_users": len(period.users) - len(period.warm),
    }


def predicted_matrix(period: RankingPeriod, score) -> np.ndarray:
    return (
        np.asarray(score(period.features), dtype=float).reshape(len(period.warm), len(period.items))
        if period.warm
        else np.zeros((0, len(period.items)))
    )


def ranking_eval(
    store, frame: pd.DataFrame, split: TimeSplit, score_val, score_test, cfg: RatingConfig
) -> tuple[dict[str, float], RankingWeights]:
    """Top-k recommendation as serving does it. The ranking weights (affinity,
    popularity prior, predicted rating) are chosen on the validation period with
    the model trained before it (score_val); the test period, with the refit
    model (score_test), reports the result. Relevant items: those a user
    reviewed in the period. Baseline: the most popular items before it."""
    parts = frame["part"]
    val = ranking_period(store, frame[parts == "train"], frame[parts == "val"], split.train_before, cfg)
    val_ratings = predicted_matrix(val, score_val)
    weights, _ = choose_ranking(val, val_ratings, cfg)
    test = ranking_period(store, frame[parts != "test"], frame[parts == "test"], split.test_from, cfg)
    metrics = {
        **ranking_metrics(val, val_ratings, weights, cfg, "val"),
        **ranking_metrics(test, predicted_matrix(test, score_test), weights, cfg, "test"),
    }
    metrics.update({f"ranking_weight_{k}": float(weights[k]) for k in ("affinity", "popularity", "rating")})
    return metrics, weights


@dataclass
class RatingOutcome:
    run_id: str
    baseline_run_id: str
    version: int
    metrics: dict[str, float]
    baselines: dict[str, float]


@dataclass
class RatingData:
    """The rating training set (Feast's point-in-time join), split by time."""

    frame: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    tags: dict[str, str]
    counts: dict[str, int]
    dataset: Any  # the MLflow dataset logged as each run's input
    join_seconds: float

    @property
    def y_test(self) -> np.ndarray:
        return self.test["rating"].to_numpy().astype(float)

    @functools.cached_property
    def fit_frame(self) -> pd.DataFrame:
        """Train + validation: what the baselines and the final MLP learn from."""
        return pd.concat([self.train, self.val], ignore_index=True)


def rating_data(engine: sa.Engine, store, split: TimeSplit) -> RatingData:
    import mlflow

    labels = label_rows(engine)
    if labels.empty:
        raise ValueError("no reviews: run portrait ingest and portrait features build first")
    start = time.perf_counter()
    frame = training_frame(store, labels)
    join_seconds = time.perf_counter() - start
    frame["part"] = split.part(frame["event_timestamp"] + pd.Timedelta(seconds=1))
    train, val, test = (frame[frame["part"] == p].reset_index(drop=True) for p in ("train", "val", "test"))
    for label, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise ValueError(f"the {label} period of {split.window()} holds no reviews")
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily bound by mlflow.data
        with_float_integers(frame.drop(columns=["user_id", "item_id"])), name="rating_v1-training-set", targets="rating"
    )
    return RatingData(
        frame=frame,
        train=train,
        val=val,
        test=test,
        features=feature_columns(frame, service_features(store, FEATURE_SERVICE)),
        tags=run_tags(split, FEATURE_SERVICE),
        counts={f"{n}_reviews": len(p) for n, p in (("train", train), ("val", val), ("test", test))},
        dataset=dataset,
        join_seconds=join_seconds,
    )


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
        mlflow.log_params(
            {**data.counts, "mf_factors": cfg.mf_factors, "mf_epochs": cfg.mf_epochs, "bias_reg": bias.reg}
        )
        mlflow.log_metrics(baselines)
    return base_run.info.run_id, baselines


def fit_mlp(data: RatingData, cfg: RatingConfig):
    """The epoch count chosen on validation (early stopping), then the model refit on
    train + validation for that many epochs, as the baselines learn from both (the test
    period starts right after). Returns (first net, its spec, net, spec, history, best epoch)."""
    import mlflow

    first_spec = feature_spec(data.train, data.features, cfg.hidden)
    first_net, history, best_epoch = train_mlp(
        data.train,
        data.val,
        first_spec,
        cfg,
        on_epoch=lambda row: mlflow.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"]),
    )
    fit_frame = data.fit_frame
    spec = feature_spec(fit_frame, data.features, cfg.hidden)
    refit = RatingConfig(**{**asdict(cfg), "epochs": best_epoch, "patience": 10**6})
    net, _, _ = train_mlp(fit_frame, data.val, spec, refit)
    return first_net, first_spec, net, spec, history, best_epoch


def _register_mlp(
    net, spec: FeatureSpec, data: RatingData, metrics: dict[str, float], baselines: dict[str, float]
) -> int:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(net.state_dict(), Path(tmp) / "weights.pt")
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        return log_and_register(
            model_file="rating_model.py",
            artifacts={"weights": str(Path(tmp) / "weights.pt"), "spec": str(Path(tmp) / "spec.json")},
            registered_name=REGISTERED_NAME,
            input_example=data.test[data.features].head(3).astype(float),
            requirements=["torch", "pandas", "numpy", "mlflow"],
            metrics={**metrics, **{f"baseline_{k}": v for k, v in baselines.items()}},
            tags=data.tags,
            baseline="user+item bias",
            baseline_headline=baselines["user_item_bias_test_rmse"],
        )


def rating_mlp_run(
    data: RatingData, store, split: TimeSplit, cfg: RatingConfig, baselines: dict[str, float]
) -> tuple[str, int, dict[str, float]]:
    """The MLP on the rating_v1 feature service as its own MLflow run: epochs chosen on
    validation, refit on train + validation, test metrics beside the baselines', the
    ranking evaluated and its weights logged in the model; returns (run id, version, metrics)."""
    import mlflow

    from training import plots

    frame, test, features, tags, y_test = data.frame, data.test, data.features, data.tags, data.y_test
    with mlflow.start_run(run_name="rating-mlp", tags={**tags, "model_kind": "feast-features-mlp"}) as run:
        mlflow.log_input(data.dataset, context="training")
        mlflow.log_params(
            {
                **{k: v for k, v in asdict(cfg).items()},
                **data.counts,
                "features": len(features),
                "feature_service": FEATURE_SERVICE,
                "feast_join_seconds": round(data.join_seconds, 1),
                **environment_params(),
            }
        )

        first_net, first_spec, net, spec, history, best_epoch = fit_mlp(data, cfg)
        pred = predict_mlp(net, test, spec)
        metrics = regression_metrics(y_test, pred, "test")
        metrics["val_rmse_at_best_epoch"] = history[best_epoch - 1]["val_rmse"]
        ranking, weights = ranking_eval(
            store,
            frame,
            split,
            lambda f: predict_mlp(first_net, f, first_spec),
            lambda f: predict_mlp(net, f, spec),
            cfg,
        )
        metrics.update(ranking)
        spec["ranking"] = weights
        spec["candidates"] = cfg.candidates  # serving re-ranks as many as the evaluation did
        metrics["best_epoch"] = best_epoch
        for name in ("user_item_bias", "matrix_factorization", "global_mean"):
            metrics[f"test_rmse_minus_{name}"] = metrics["test_rmse"] - baselines[f"{name}_test_rmse"]
        mlflow.log_figure(
            plots.learning_curves(history, ["train_loss", "val_rmse"], "rating MLP"), "learning_curves.png"
        )
        mlflow.log_figure(plots.residuals(y_test, pred, "rating MLP: test"), "test_residuals.png")
        mlflow.log_dict(spec, "feature_spec.json")
        version = _register_mlp(net, spec, data, metrics, baselines)
    return run.info.run_id, version, metrics


def run_rating_training(
    engine: sa.Engine, store, cfg: RatingConfig = RatingConfig(), split: TimeSplit = TimeSplit()
) -> RatingOutcome:
    """Build the training set from Feast, train the MLP and the baselines on the
    same time split, log both runs, register the model."""
    data = rating_data(engine, store, split)
    baseline_run_id, baselines = rating_baselines_run(data, cfg)
    run_id, version, metrics = rating_mlp_run(data, store, split, cfg, baselines)
    return RatingOutcome(run_id, baseline_run_id, version, metrics, baselines)
