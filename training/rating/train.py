"""Rating prediction from Feast features only: the training set is Feast's
point-in-time join of feature service rating_v1 on (user, item, review time)
rows, so every feature is as of just before the review. A small MLP learns the
rating; baselines on the same time split: global mean, user + item bias, matrix
factorization. Ranking on the test period (NDCG@10, Recall@10) against a
popularity baseline. The model is registered as `rating-predictor`."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from pandas.api.types import is_numeric_dtype

from registry.health import log_reference, reference
from registry.models import RATING
from training.common import (
    TimeSplit,
    environment_params,
    log_and_register,
)
from training.rating.baselines import online_bias, rating_baselines_run, regression_metrics, rmse_difference
from training.rating.config import RatingConfig
from training.rating.data import FEATURE_SERVICE, RatingData, rating_data
from training.rating.mlp import fit_mlp, predict_mlp
from training.rating.ranking import RankingOutcome, describe, ranking_eval

if TYPE_CHECKING:  # the models-from-code file registers its model when imported
    from registry.rating_model import FeatureSpec

REGISTERED_NAME = RATING


@dataclass
class RatingOutcome:
    """What a rating run gives the CLI: typed figures; `metrics` is everything logged."""

    run_id: str
    baseline_run_id: str
    version: int
    test_rmse: float
    test_mae: float
    baseline_rmse: dict[
        str, float
    ]  # test RMSE by baseline: global_mean, user_item_bias, matrix_factorization, online_bias
    ranking: RankingSummary
    rating_lines: list[str]  # the gain over the online bias and from review text, as printed
    ranking_lines: list[str]  # the protocols, classic recommenders, ablation and cold start, as printed
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]  # everything the baselines' run logged
    split_summary: str  # the split's parts with their counts and dates


@dataclass(frozen=True)
class RankingSummary:
    """The headline protocol's test ranking (rolling next-item, NDCG@10 and Recall@10)
    beside popularity's, with the served blend's weights by history segment."""

    ndcg: float
    recall: float
    popularity_ndcg: float
    popularity_recall: float
    weights: dict[str, dict[str, float]]

    @property
    def ndcg_vs_popularity(self) -> float:
        return self.ndcg / self.popularity_ndcg if self.popularity_ndcg else float("nan")


def _register_mlp(
    net,
    spec: FeatureSpec,
    ranking: RankingOutcome,
    data: RatingData,
    metrics: dict[str, float],
    baselines: dict[str, float],
) -> int:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(net.state_dict(), Path(tmp) / "weights.pt")
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        ranking.graph.save(str(Path(tmp) / "neighbours.npz"))
        return log_and_register(
            model_file="rating_model.py",
            artifacts={
                "weights": str(Path(tmp) / "weights.pt"),
                "spec": str(Path(tmp) / "spec.json"),
                "neighbours": str(Path(tmp) / "neighbours.npz"),
            },
            registered_name=REGISTERED_NAME,
            input_example=data.test[data.features].head(3).astype(float),
            requirements=["torch", "pandas", "numpy", "scipy", "mlflow"],
            metrics={**metrics, **{f"baseline_{k}": v for k, v in baselines.items()}},
            tags=data.tags,
            # the gate compares with the stronger of the two bias baselines (lower test RMSE)
            baseline=min(BIAS_BASELINES, key=lambda n: baselines[f"{BIAS_BASELINES[n]}_test_rmse"]),
            baseline_headline=min(baselines[f"{k}_test_rmse"] for k in BIAS_BASELINES.values()),
        )


BIAS_BASELINES = {"user+item bias": "user_item_bias", "online shrunk-mean bias": "online_bias"}
TEXT_VIEWS = ("user_text_profile", "user_item_affinity")  # the rating inputs derived from review text


def text_feature_names(store) -> set[str]:
    """The rating_v1 inputs that come from review text (sentiment shares, affinity)."""
    service = store.get_feature_service(FEATURE_SERVICE)
    return {f.name for p in service.feature_view_projections if p.name in TEXT_VIEWS for f in p.features}


def rating_gains(
    data: RatingData, cfg: RatingConfig, pred: np.ndarray, strength: float, text_features: set[str]
) -> dict[str, float]:
    """The MLP against the online shrunk-mean bias, and the text features' share (the
    MLP refit without them), each an RMSE difference with a paired-bootstrap interval
    over users."""
    y, users = data.y_test, data.test["user_id"].to_numpy()
    online = online_bias(data.test, float(data.fit_frame["rating"].mean()), strength)
    versus_bias = rmse_difference(y, pred, online, users)  # < 0: the MLP beats the untrained bias
    without = [f for f in data.features if f not in text_features]
    _, _, net, spec, _, _ = fit_mlp(data, cfg, features=without, shrink_strength=strength)
    no_text = predict_mlp(net, data.test, spec)
    gain = rmse_difference(y, no_text, pred, users)  # > 0: text lowers the error
    return {
        "test_rmse_minus_online_bias": versus_bias[0],
        "test_rmse_minus_online_bias_low": versus_bias[1],
        "test_rmse_minus_online_bias_high": versus_bias[2],
        "test_rmse_without_text": float(np.sqrt(np.mean((no_text - y) ** 2))),
        "test_text_rmse_gain": gain[0],
        "test_text_rmse_gain_low": gain[1],
        "test_text_rmse_gain_high": gain[2],
        "text_features": float(len(data.features) - len(without)),
    }


def describe_rating(metrics: dict[str, float], baselines: dict[str, float]) -> list[str]:
    """What the rating model gains over the untrained online bias and from review text, in words."""
    d, lo, hi = (metrics[f"test_rmse_minus_online_bias{s}"] for s in ("", "_low", "_high"))
    verdict = "the MLP beats it" if hi < 0 else ("no better than it" if lo <= 0 else "worse than it")
    g, glo, ghi = (metrics[f"test_text_rmse_gain{s}"] for s in ("", "_low", "_high"))
    text = (
        "text helps rating prediction on this shop"
        if glo > 0
        else "text features do not help rating prediction on this shop"
    )
    return [
        f"online shrunk-mean bias {baselines['online_bias_test_rmse']:.4f} (strength "
        f"{baselines['online_bias_strength']:g}, chosen on validation); MLP - it {d:+.4f} [{lo:+.4f}, {hi:+.4f}]: {verdict}",
        f"without its {int(metrics['text_features'])} review-text features the MLP's RMSE is "
        f"{metrics['test_rmse_without_text']:.4f}: gain {g:+.4f} [{glo:+.4f}, {ghi:+.4f}], {text}",
    ]


def rating_mlp_run(
    data: RatingData,
    engine: sa.Engine,
    split: TimeSplit,
    cfg: RatingConfig,
    baselines: dict[str, float],
    text_features: set[str],
) -> tuple[str, int, dict[str, float], RankingOutcome]:
    """The MLP on the rating_v1 feature service as its own MLflow run: epochs chosen on
    validation, refit on train + validation, test metrics beside the baselines'; the
    ranking's protocols evaluated and the served blend logged in the model; returns
    (run id, version, metrics, ranking)."""
    import mlflow

    from training import plots

    test, features, tags, y_test = data.test, data.features, data.tags, data.y_test
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

        strength = baselines["online_bias_strength"]  # chosen on validation by the baselines' run
        _, _, net, spec, history, best_epoch = fit_mlp(data, cfg, shrink_strength=strength)
        pred = predict_mlp(net, test, spec)
        log_reference(
            reference(
                {f: data.train[f].to_numpy(dtype=float) for f in features if is_numeric_dtype(data.train[f])},
                pred,
                "rating",
            )
        )
        metrics = regression_metrics(y_test, pred, "test")
        metrics["val_rmse_at_best_epoch"] = history[best_epoch]["val_rmse"]  # history[0]: the offset alone
        metrics.update(rating_gains(data, cfg, pred, strength, text_features))
        ranking = ranking_eval(engine, split, cfg)
        metrics.update(ranking.metrics)
        spec["recommend"] = ranking.spec  # the served blend travels with the model
        mlflow.log_text("\n".join(describe(ranking)) + "\n", "ranking.txt")
        mlflow.log_figure(plots.ranking_ratios(ranking.results), "ranking_vs_popularity.png")
        metrics["best_epoch"] = best_epoch
        for name in ("user_item_bias", "matrix_factorization", "global_mean", "online_bias"):
            metrics[f"test_rmse_minus_{name}"] = metrics["test_rmse"] - baselines[f"{name}_test_rmse"]
        mlflow.log_figure(
            plots.learning_curves(history, ["train_loss", "val_rmse"], "rating MLP"), "learning_curves.png"
        )
        mlflow.log_figure(plots.residuals(y_test, pred, "rating MLP: test"), "test_residuals.png")
        mlflow.log_dict(spec, "feature_spec.json")
        version = _register_mlp(net, spec, ranking, data, metrics, baselines)
    return run.info.run_id, version, metrics, ranking


def run_rating_training(
    engine: sa.Engine, store, cfg: RatingConfig = RatingConfig(), split: TimeSplit | None = None
) -> RatingOutcome:
    """Build the training set from Feast, train the MLP and the baselines on the
    same time split, log both runs, register the model."""
    data = rating_data(engine, store, split or TimeSplit())
    baseline_run_id, baselines = rating_baselines_run(data, cfg)
    run_id, version, metrics, ranking = rating_mlp_run(
        data, engine, data.split, cfg, baselines, text_feature_names(store)
    )
    rolling = ranking.results["rolling"]
    summary = RankingSummary(
        ndcg=rolling.blend["ndcg"],
        recall=rolling.blend["recall"],
        popularity_ndcg=rolling.popularity["ndcg"],
        popularity_recall=rolling.popularity["recall"],
        weights={seg: dict(w) for seg, w in rolling.weights.items()},
    )
    rmse = {k.removesuffix("_test_rmse"): v for k, v in baselines.items() if k.endswith("_test_rmse")}
    return RatingOutcome(
        run_id,
        baseline_run_id,
        version,
        metrics["test_rmse"],
        metrics["test_mae"],
        rmse,
        summary,
        describe_rating(metrics, baselines),
        describe(ranking),
        metrics,
        baselines,
        data.split_summary,
    )
