"""MLflow model-from-code for `rating-predictor`: an MLP over the Feast
feature service rating_v1, logged with its weights and feature spec as
artifacts, loaded by serving without training code.

Input: a DataFrame with the spec's feature columns (missing values allowed).
Output: the predicted rating, 1-5."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


def build_net(n_inputs: int, hidden: list[int], dropout: float = 0.1):
    """The rating network; training builds the same one from here."""
    import torch.nn as nn

    layers, width = [], n_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


DERIVED = ("user_rating_shrunk", "item_rating_shrunk", "bias_sum")


def derive(frame: pd.DataFrame, prior: float, strength: float = 3.0) -> pd.DataFrame:
    """Mean ratings shrunk towards the global mean by their review counts (a user
    with 1 review of 5 stars is not a 5-star user), from the Feast features."""

    def col(name: str) -> pd.Series:
        return (
            pd.to_numeric(frame[name], errors="coerce").astype(float)
            if name in frame
            else pd.Series(np.nan, index=frame.index)
        )

    def shrunk(mean: pd.Series, count: pd.Series) -> pd.Series:
        n = count.fillna(0)
        return (mean.fillna(prior) * n + prior * strength) / (n + strength)

    out = pd.DataFrame(index=frame.index)
    out["user_rating_shrunk"] = shrunk(col("rating_mean"), col("review_count_total"))
    out["item_rating_shrunk"] = shrunk(col("item_rating_mean"), col("item_review_count"))
    out["bias_sum"] = out["user_rating_shrunk"] + out["item_rating_shrunk"] - prior
    return out


def prepare(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Features -> standardized matrix: derived features added, missing values
    become the training mean, each feature with missing values gets an indicator."""
    frame = pd.concat(
        [frame.drop(columns=[c for c in DERIVED if c in frame]), derive(frame, spec["target_mean"])], axis=1
    )
    cols = []
    for name in spec["features"]:
        raw = pd.to_numeric(frame[name], errors="coerce") if name in frame else pd.Series(np.nan, index=frame.index)
        values = raw.astype(float).to_numpy()
        missing = np.isnan(values)
        values = np.where(missing, spec["mean"][name], values)
        cols.append((values - spec["mean"][name]) / spec["std"][name])
        if name in spec["indicators"]:
            cols.append(missing.astype(float))
    return np.stack(cols, axis=1).astype(np.float32) if cols else np.zeros((len(frame), 0), np.float32)


# How /recommend ranks (weights chosen on the validation period by training; a
# model logged without them ranks embedding-nearest candidates by predicted rating).
class RankingWeights(TypedDict):
    """How /recommend scores a candidate: prior = affinity * similarity + popularity *
    log review count; score = prior + rating * predicted rating."""

    affinity: float
    popularity: float
    rating: float


class FeatureSpec(TypedDict):
    """The rating model's input contract, logged as its spec.json: the features in
    order, their standardization from the training rows, the missing-value
    indicators, the network's shape, and how /recommend ranks with it."""

    features: list[str]
    mean: dict[str, float]
    std: dict[str, float]
    indicators: list[str]
    hidden: list[int]
    target_mean: float
    target_std: float
    n_inputs: int
    ranking: NotRequired[RankingWeights]
    candidates: NotRequired[int]


DEFAULT_RANKING: RankingWeights = {"affinity": 1.0, "popularity": 0.0, "rating": 1.0}
# candidates by the prior that the rating model re-ranks: chosen with the weights at
# training and logged in the spec beside them, so training and serving rank alike
DEFAULT_CANDIDATES = 100


def ranking_prior(affinity: np.ndarray, item_review_count: np.ndarray, weights: RankingWeights) -> np.ndarray:
    """The candidate score: similarity to what the user reviewed plus a popularity
    prior (log review count). The top candidates by it are re-ranked by
    ranking_score. A missing value counts as 0."""
    aff = np.nan_to_num(np.asarray(affinity, dtype=float), nan=0.0)
    pop = np.log1p(np.nan_to_num(np.asarray(item_review_count, dtype=float), nan=0.0))
    return weights["affinity"] * aff + weights["popularity"] * pop


def ranking_score(prior: np.ndarray, rating: np.ndarray, weights: RankingWeights) -> np.ndarray:
    """The final recommendation score of a candidate: its prior plus the weighted predicted rating."""
    return prior + weights["rating"] * np.asarray(rating, dtype=float)


def top_candidates(prior: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n allowed items with the highest prior, best first."""
    idx = np.flatnonzero(allowed)
    return idx[np.argsort(-prior[idx], kind="stable")[:n]]


def rank_for_user(
    affinity: np.ndarray,
    item_review_count: np.ndarray,
    allowed: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    weights: RankingWeights,
    candidates: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How one user's items are ranked (the ranking evaluation's exact pass over
    every item): the `candidates` allowed items with the best prior, re-ranked by
    prior plus weighted predicted rating (predict: candidate item indices ->
    ratings). Returns the top-k item indices, their scores and predicted ratings,
    best first. /recommend finds the same candidates through an index
    (serving.candidates) and re-ranks them with rerank."""
    prior = ranking_prior(affinity, item_review_count, weights)
    cand = top_candidates(prior, allowed, candidates)
    return rerank(cand, prior[cand], predict, weights, k)


def rerank(
    cand: np.ndarray, prior: np.ndarray, predict: Callable[[np.ndarray], np.ndarray], weights: RankingWeights, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-k of the candidates (item indices, with their priors) by prior plus
    weighted predicted rating: (indices, scores, ratings), best first."""
    ratings = np.asarray(predict(cand), dtype=float) if len(cand) else np.zeros(0)
    scores = ranking_score(prior, ratings, weights)
    order = np.argsort(-scores, kind="stable")[:k]
    return cand[order], scores[order], ratings[order]


class RatingModel(PythonModel):
    def load_context(self, context) -> None:
        import torch

        with open(context.artifacts["spec"]) as f:
            self.spec = json.load(f)
        self.net = build_net(self.spec["n_inputs"], self.spec["hidden"])
        self.net.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu"))
        self.net.eval()
        self.ranking = {**DEFAULT_RANKING, **self.spec.get("ranking", {})}
        self.candidates = int(self.spec.get("candidates", DEFAULT_CANDIDATES))  # models logged before: 100

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        import torch

        x = torch.from_numpy(prepare(model_input, self.spec))
        with torch.inference_mode():
            y = self.net(x).squeeze(-1).numpy() * self.spec["target_std"] + self.spec["target_mean"]
        return pd.DataFrame({"rating": np.clip(y, 1.0, 5.0)})


set_model(RatingModel())
