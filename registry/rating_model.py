"""MLflow model-from-code for `rating-predictor`: an MLP over the Feast
feature service rating_v1, logged with its weights and feature spec as
artifacts, loaded by serving without training code.

Input: a DataFrame with the spec's feature columns (missing values allowed).
Output: the predicted rating, 1-5."""

from __future__ import annotations

import json
from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from registry.recommender import BlendWeights, GraphParams, ItemGraph, popularity_prior


def build_net(n_inputs: int, hidden: list[int], dropout: float = 0.1):
    """The rating network; training builds the same one from here."""
    import torch.nn as nn

    layers, width = [], n_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    last = nn.Linear(width, 1)
    nn.init.zeros_(last.weight)  # a new net predicts its offset exactly (the shrunk bias): training starts there
    nn.init.zeros_(last.bias)
    layers.append(last)
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
    derived = derive(frame, spec["target_mean"], spec.get("shrink_strength", 3.0))  # models logged before: 3
    frame = pd.concat([frame.drop(columns=[c for c in DERIVED if c in frame]), derived], axis=1)
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


class RankingWeights(TypedDict):
    """The candidate index's prior (serving.candidates): affinity * cosine(user, item) +
    popularity * log1p(item review count), the blend's text and popularity parts."""

    affinity: float
    popularity: float


class RecommendSpec(TypedDict):
    """How /recommend ranks with this model (registry.recommender's blend): the
    weights by history segment ("short": at most short_history prior interactions),
    the graph's parameters, chosen on validation by training (the graph itself is
    the model's neighbours.npz artifact)."""

    weights: dict[str, BlendWeights]
    params: GraphParams
    short_history: int
    protocol: str


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
    shrink_strength: NotRequired[float]  # reviews' worth of prior in the shrunk means, chosen on validation
    residual: NotRequired[bool]  # the network learns the rating minus the shrunk bias (offset())
    recommend: NotRequired[RecommendSpec]


def offset(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """What the network's output is added to: the online shrunk-mean bias (user mean +
    item mean - global mean, as of the request) for a residual model, else the global mean."""
    if spec.get("residual"):
        return derive(frame, spec["target_mean"], spec.get("shrink_strength", 3.0))["bias_sum"].to_numpy(float)
    return np.full(len(frame), spec["target_mean"])


def rating_of(net_output: np.ndarray, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The predicted rating from the network's (standardized) output."""
    return np.clip(np.asarray(net_output) * spec["target_std"] + offset(frame, spec), 1.0, 5.0)


# A model logged without a blend (before the graph): text similarity with a little popularity
DEFAULT_BLEND: BlendWeights = {"transitions": 0.0, "item_item": 0.0, "text": 1.0, "popularity": 0.0}


def ranking_prior(affinity: np.ndarray, item_review_count: np.ndarray, weights: RankingWeights) -> np.ndarray:
    """The candidate index's prior over items (a missing value counts as 0)."""
    aff = np.nan_to_num(np.asarray(affinity, dtype=float), nan=0.0)
    return weights["affinity"] * aff + weights["popularity"] * popularity_prior(item_review_count)


def top_candidates(prior: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n allowed items with the highest prior, best first."""
    idx = np.flatnonzero(allowed)
    return idx[np.argsort(-prior[idx], kind="stable")[:n]]


class RatingModel(PythonModel):
    def load_context(self, context) -> None:
        import torch

        with open(context.artifacts["spec"]) as f:
            self.spec = json.load(f)
        self.net = build_net(self.spec["n_inputs"], self.spec["hidden"])
        self.net.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu"))
        self.net.eval()
        recommend = self.spec.get("recommend")
        self.blend: dict[str, BlendWeights] = (
            recommend["weights"] if recommend else {"short": DEFAULT_BLEND, "long": DEFAULT_BLEND}
        )
        self.short_history = int(recommend["short_history"]) if recommend else 0
        self.graph: ItemGraph | None = (
            ItemGraph.load(context.artifacts["neighbours"], recommend["params"])
            if recommend and "neighbours" in context.artifacts
            else None
        )

    def blend_for(self, history_length: int) -> BlendWeights:
        """The blend weights for a user with this many prior interactions."""
        return self.blend["short" if history_length <= self.short_history else "long"]

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        import torch

        x = torch.from_numpy(prepare(model_input, self.spec))
        with torch.inference_mode():
            out = self.net(x).squeeze(-1).numpy()
        return pd.DataFrame({"rating": rating_of(out, model_input, self.spec)})


set_model(RatingModel())
