"""Rating prediction from Feast features only: the training set is Feast's
point-in-time join of feature service rating_v1 on (user, item, review time)
rows, so every feature is as of just before the review. A small MLP learns the
rating; baselines on the same time split: global mean, user + item bias, matrix
factorization. Ranking on the test period (NDCG@10, Recall@10) against a
popularity baseline. The model is registered as `rating-predictor`."""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from training.common import TimeSplit, environment_params, run_tags, seed_everything

FEATURE_SERVICE = "rating_v1"
REGISTERED_NAME = "rating-predictor"
NON_FEATURES = {"user_id", "item_id", "event_timestamp", "request_unix", "rating", "review_id", "part",
                "sentiment_source", "interest_tags", "last_activity_unix", "last_purchase_unix"}


@dataclass
class RatingConfig:
    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 8
    mf_factors: int = 16
    mf_epochs: int = 40
    seed: int = 13
    k: int = 10
    candidates: int = 100
    ranking_users: int = 300  # users sampled for the ranking evaluation (each costs 100 feature rows)


def label_rows(engine: sa.Engine) -> pd.DataFrame:
    """One row per review: who, what, when, and the rating to learn. The feature
    time is one second before the review, so the review itself is never its own
    feature (its snapshot has the same timestamp)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT review_id, user_id, item_id, event_timestamp, rating FROM reviews ORDER BY event_timestamp"
        )).mappings().all()
    df = pd.DataFrame(rows, columns=["review_id", "user_id", "item_id", "event_timestamp", "rating"])
    ts = pd.to_datetime(df["event_timestamp"], utc=True)
    df["request_unix"] = (ts.astype("int64") // 10**9).astype("int64")
    df["event_timestamp"] = ts - pd.Timedelta(seconds=1)
    return df


def training_frame(store, labels: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join of rating_v1 onto the label rows."""
    from portrait.featurestore import historical_features

    entity_df = labels[["user_id", "item_id", "event_timestamp", "request_unix", "review_id", "rating"]]
    df = historical_features(store, entity_df, store.get_feature_service(FEATURE_SERVICE), progress=True)
    return df.sort_values(["event_timestamp", "review_id"]).reset_index(drop=True)


def service_features(store) -> list[str]:
    """The features feature service rating_v1 declares (Feast's historical frame
    also carries the inputs of its on-demand view; serving supplies only these)."""
    service = store.get_feature_service(FEATURE_SERVICE)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def feature_columns(frame: pd.DataFrame, declared: list[str] | None = None) -> list[str]:
    return [c for c in (declared or frame.columns)
            if c in frame and c not in NON_FEATURES and pd.api.types.is_numeric_dtype(frame[c])]


def feature_spec(train: pd.DataFrame, features: list[str], hidden: tuple[int, ...]) -> dict:
    """Standardization and missing-value indicators, from the training rows only."""
    from registry.rating_model import DERIVED, derive

    prior = float(train["rating"].mean())
    train = pd.concat([train, derive(train, prior)], axis=1)
    features = [*features, *DERIVED]
    spec = {"features": features, "mean": {}, "std": {}, "indicators": [], "hidden": list(hidden),
            "target_mean": prior, "target_std": float(train["rating"].std() or 1.0)}
    for name in features:
        values = pd.to_numeric(train[name], errors="coerce").astype(float)
        mean = float(values.mean()) if values.notna().any() else 0.0
        std = float(values.std()) if values.notna().sum() > 1 else 1.0
        spec["mean"][name], spec["std"][name] = mean, std if std > 1e-9 else 1.0
        if values.isna().any():
            spec["indicators"].append(name)
    spec["n_inputs"] = len(features) + len(spec["indicators"])
    return spec


def train_mlp(train: pd.DataFrame, val: pd.DataFrame, spec: dict, cfg: RatingConfig, on_epoch=None):
    """MSE on the standardized rating with early stopping on validation RMSE."""
    import torch

    from registry.rating_model import build_net, prepare

    seed_everything(cfg.seed)
    net = build_net(spec["n_inputs"], list(cfg.hidden))
    x_tr, x_va = torch.from_numpy(prepare(train, spec)), torch.from_numpy(prepare(val, spec))
    y_tr = torch.tensor(((train["rating"] - spec["target_mean"]) / spec["target_std"]).to_numpy(), dtype=torch.float32)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history, best, stale = [], (math.inf, None, 0), 0
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


def predict_mlp(net, frame: pd.DataFrame, spec: dict) -> np.ndarray:
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

    def fit(self, df: pd.DataFrame) -> "BiasModel":
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
        return np.clip(self.mu + df["user_id"].map(self.bu).fillna(0).to_numpy()
                       + df["item_id"].map(self.bi).fillna(0).to_numpy(), 1, 5)


class MatrixFactorization(BiasModel):
    """Biased matrix factorization trained by SGD; unseen users or items fall back to biases."""

    def __init__(self, factors: int = 16, epochs: int = 40, lr: float = 0.01, reg: float = 0.05, seed: int = 13):
        super().__init__()
        self.k, self.epochs, self.lr, self.reg_f, self.seed = factors, epochs, lr, reg, seed

    def fit(self, df: pd.DataFrame) -> "MatrixFactorization":
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
    return {f"{prefix}_rmse": float(np.sqrt(np.mean((pred - y) ** 2))), f"{prefix}_mae": float(np.mean(np.abs(pred - y)))}


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
    from portrait.featurestore import historical_features

    return historical_features(store, entities, features)


def ranking_eval(store, frame: pd.DataFrame, split: TimeSplit, score, cfg: RatingConfig) -> dict[str, float]:
    """Top-k recommendation on the test period, as serving does it: candidates are
    the items nearest the user's embedding (as of the test start, items the user
    already reviewed excluded), ranked by the model's predicted rating; users
    without an embedding get the most popular items. Relevant items: those the
    user reviewed in the test period. Baseline: the most popular items."""
    cut = pd.Timestamp(split.test_from) - pd.Timedelta(seconds=1)
    before = frame[frame["part"] != "test"]
    test = frame[frame["part"] == "test"]
    seen = before.groupby("user_id")["item_id"].agg(set).to_dict()
    relevant = {u: set(g) - seen.get(u, set()) for u, g in test.groupby("user_id")["item_id"]}
    relevant = {u: r for u, r in relevant.items() if r}
    popular = before["item_id"].value_counts().index.tolist()

    def popularity(user: str) -> list[str]:
        s = seen.get(user, set())
        return [i for i in popular if i not in s][:cfg.k]

    users = sorted(relevant)
    if len(users) > cfg.ranking_users:
        users = sorted(np.random.default_rng(cfg.seed).choice(users, size=cfg.ranking_users, replace=False))
        relevant = {u: relevant[u] for u in users}
    # Features as of the test start, fetched per user and per item (two small
    # point-in-time joins) and combined in process, as serving does
    # (portrait.online.OnlineReader.rating_inputs): a join per (user, item) pair
    # would carry every item embedding snapshot through PostgreSQL.
    from portrait.online import ITEM_STATS, USER_BEHAVIOR, USER_TEXT

    user_df = _as_of(store, pd.DataFrame({"user_id": users, "event_timestamp": cut}),
                     [f"user_behavior:{f}" for f in USER_BEHAVIOR] + [f"user_text_profile:{f}" for f in USER_TEXT]
                     ).drop(columns=["event_timestamp"]).drop_duplicates("user_id").set_index("user_id")
    items = sorted(set(before["item_id"]))
    item_df = _as_of(store, pd.DataFrame({"item_id": items, "event_timestamp": cut}),
                     [f"item_stats:{f}" for f in ITEM_STATS] + ["item_text_profile:item_embedding"]
                     ).drop_duplicates("item_id").set_index("item_id").reindex(items)
    dim = next((len(v) for v in item_df["item_embedding"] if v is not None and len(v)), 0)
    item_matrix = np.stack([np.asarray(v, dtype=np.float32) if v is not None and len(v) else np.zeros(dim, np.float32)
                            for v in item_df["item_embedding"]])
    item_matrix /= np.maximum(np.linalg.norm(item_matrix, axis=1, keepdims=True), 1e-9)

    rows, cold = [], []
    for user in users:
        vec = user_df["user_embedding"].get(user) if user in user_df.index else None
        if vec is None or not len(vec):
            cold.append(user)
            continue
        v = np.asarray(vec, dtype=np.float32)
        sims = item_matrix @ (v / max(np.linalg.norm(v), 1e-9))
        s = seen.get(user, set())
        top = [j for j in np.argsort(-sims) if items[j] not in s][:cfg.candidates]
        u = user_df.loc[user]
        last = u.get("last_activity_unix")
        for j in top:
            rows.append({"user_id": user, "item_id": items[j], **{f: u.get(f) for f in USER_BEHAVIOR},
                         **{f: u.get(f) for f in ("share_positive", "share_neutral", "share_negative")},
                         **{f: item_df.iloc[j][f] for f in ITEM_STATS}, "affinity": float(sims[j]),
                         "days_since_last_activity": (pd.Timestamp(split.test_from).timestamp() - last) / 86400
                         if last is not None and not pd.isna(last) else np.nan})
    features = pd.DataFrame(rows)
    features["score"] = score(features) if len(features) else []
    ranked = {u: g.sort_values("score", ascending=False)["item_id"].tolist() for u, g in features.groupby("user_id")}
    ranked.update({u: popularity(u) for u in cold})
    pop_ranked = {u: popularity(u) for u in users}
    ndcg, recall = ndcg_recall_at_k(ranked, relevant, cfg.k)
    pop_ndcg, pop_recall = ndcg_recall_at_k(pop_ranked, relevant, cfg.k)
    warm = {u: relevant[u] for u in users if u not in cold}
    warm_ndcg, _ = ndcg_recall_at_k(ranked, warm, cfg.k)
    warm_pop_ndcg, _ = ndcg_recall_at_k(pop_ranked, warm, cfg.k)
    return {f"test_ndcg_at_{cfg.k}": ndcg, f"test_recall_at_{cfg.k}": recall,
            f"popularity_ndcg_at_{cfg.k}": pop_ndcg, f"popularity_recall_at_{cfg.k}": pop_recall,
            f"warm_test_ndcg_at_{cfg.k}": warm_ndcg, f"warm_popularity_ndcg_at_{cfg.k}": warm_pop_ndcg,
            "ranking_users": len(users), "ranking_cold_users": len(cold),
            f"ndcg_at_{cfg.k}_vs_popularity": ndcg / pop_ndcg if pop_ndcg else float("nan")}


@dataclass
class RatingOutcome:
    run_id: str
    baseline_run_id: str
    version: int
    metrics: dict[str, float]
    baselines: dict[str, float]


def run_rating_training(engine: sa.Engine, store, cfg: RatingConfig = RatingConfig(),
                        split: TimeSplit = TimeSplit()) -> RatingOutcome:
    """Build the training set from Feast, train the MLP and the baselines on the
    same time split, log both runs, register the model."""
    import mlflow

    from registry.models import HEADLINE, tag_version
    from training import plots

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
    features = feature_columns(frame, service_features(store))
    tags = run_tags(split, FEATURE_SERVICE)
    counts = {f"{n}_reviews": len(p) for n, p in (("train", train), ("val", val), ("test", test))}
    y_test = test["rating"].to_numpy().astype(float)
    dataset = mlflow.data.from_pandas(frame.drop(columns=["user_id", "item_id"]), name="rating_v1-training-set",
                                      targets="rating")

    fit_frame = pd.concat([train, val], ignore_index=True)  # baselines have no early stopping: they fit train + validation
    with mlflow.start_run(run_name="rating-baselines", tags={**tags, "model_kind": "baseline"}) as base_run:
        mlflow.log_input(dataset, context="training")
        baselines: dict[str, float] = {}
        baselines.update(regression_metrics(y_test, np.full(len(test), fit_frame["rating"].mean()), "global_mean_test"))
        bias = BiasModel().fit(fit_frame)
        baselines.update(regression_metrics(y_test, bias.predict(test), "user_item_bias_test"))
        mf = MatrixFactorization(cfg.mf_factors, cfg.mf_epochs, seed=cfg.seed).fit(fit_frame)
        baselines.update(regression_metrics(y_test, mf.predict(test), "matrix_factorization_test"))
        mlflow.log_params({**counts, "mf_factors": cfg.mf_factors, "mf_epochs": cfg.mf_epochs, "bias_reg": bias.reg})
        mlflow.log_metrics(baselines)

    with mlflow.start_run(run_name="rating-mlp", tags={**tags, "model_kind": "feast-features-mlp"}) as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_params({**{k: v for k, v in asdict(cfg).items()}, **counts, "features": len(features),
                           "feature_service": FEATURE_SERVICE, "feast_join_seconds": round(join_seconds, 1),
                           **environment_params()})
        spec = feature_spec(train, features, cfg.hidden)
        _, history, best_epoch = train_mlp(train, val, spec, cfg,
                                           on_epoch=lambda row: mlflow.log_metrics(
                                               {k: v for k, v in row.items() if k != "step"}, step=row["step"]))
        # the epoch count is chosen on validation; the model then learns from train + validation,
        # as the baselines do (the test period starts right after it)
        spec = feature_spec(fit_frame, features, cfg.hidden)
        refit = RatingConfig(**{**asdict(cfg), "epochs": best_epoch, "patience": 10**6})
        net, _, _ = train_mlp(fit_frame, val, spec, refit)
        pred = predict_mlp(net, test, spec)
        metrics = regression_metrics(y_test, pred, "test")
        metrics["val_rmse_at_best_epoch"] = history[best_epoch - 1]["val_rmse"]
        metrics.update(ranking_eval(store, frame, split, lambda f: predict_mlp(net, f, spec), cfg))
        metrics["best_epoch"] = best_epoch
        for name in ("user_item_bias", "matrix_factorization", "global_mean"):
            metrics[f"test_rmse_minus_{name}"] = metrics["test_rmse"] - baselines[f"{name}_test_rmse"]
        mlflow.log_metrics(metrics)
        mlflow.log_metrics({f"baseline_{k}": v for k, v in baselines.items()})
        mlflow.log_figure(plots.learning_curves(history, ["train_loss", "val_rmse"], "rating MLP"),
                          "learning_curves.png")
        mlflow.log_figure(plots.residuals(y_test, pred, "rating MLP: test"), "test_residuals.png")
        mlflow.log_dict(spec, "feature_spec.json")
        with tempfile.TemporaryDirectory() as tmp:
            import torch

            torch.save(net.state_dict(), Path(tmp) / "weights.pt")
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            example = test[features].head(3).astype(float)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(Path(__file__).resolve().parents[1] / "registry" / "rating_model.py"),
                artifacts={"weights": str(Path(tmp) / "weights.pt"), "spec": str(Path(tmp) / "spec.json")},
                input_example=example, registered_model_name=REGISTERED_NAME,
                pip_requirements=["torch", "pandas", "numpy", "mlflow"])
        version = int(info.registered_model_version)
        tag_version(REGISTERED_NAME, version, {**tags, HEADLINE[REGISTERED_NAME][0]: f"{metrics['test_rmse']:.4f}"})
    return RatingOutcome(run.info.run_id, base_run.info.run_id, version, metrics, baselines)
