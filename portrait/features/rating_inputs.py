"""The rating model's inputs, built one way for training, evaluation and serving.

Feature service rating_v1 is the contract: its user and item features as Feast
serves them (historically for training, online for serving) plus the two
on-demand features of `user_item_affinity`, computed here exactly as that view
computes them. Training's ranking evaluation and /recommend both call
`rating_inputs`; tests/integration/test_parity.py holds Feast's own
point-in-time frame equal to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

RATING_SERVICE = "rating_v1"
AFFINITY, IDLE_DAYS = "affinity", "days_since_last_activity"  # the on-demand features
LAST_ACTIVITY = "last_activity_unix"  # the user feature IDLE_DAYS is computed from


def normalize(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def embedding_matrix(vectors: Sequence[Any]) -> np.ndarray:
    """Embeddings as Feast returns them (lists, arrays or None) -> normalized rows; zero rows where missing."""
    dim = next((len(v) for v in vectors if v is not None and len(v)), 0)
    out = np.zeros((len(vectors), dim), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None and len(v):
            out[i] = np.asarray(v, dtype=np.float32)
    return normalize(out)


def affinity(user_vectors: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """Cosine of each user row with each item row (normalized; a zero row is a
    missing embedding and gives NaN), as user_item_affinity computes it.
    Shapes: (u, d) x (i, d) -> (u, i)."""
    scores = user_vectors @ item_vectors.T
    has_user = np.linalg.norm(user_vectors, axis=1) > 0
    has_item = np.linalg.norm(item_vectors, axis=1) > 0
    return np.where(has_user[:, None] & has_item[None, :], scores, np.nan)


def rating_inputs(
    users: pd.DataFrame,
    items: pd.DataFrame,
    pair_affinity: np.ndarray,
    request_unix: float | np.ndarray,
    features: Sequence[str],
) -> pd.DataFrame:
    """The model's inputs, one row per (user, item) pair, columns in `features`
    order (the feature service's). users and items are aligned row by row: row k
    holds the features of pair k's user and item. Missing values are NaN."""
    n = len(users)
    if len(items) != n or len(pair_affinity) != n:
        raise ValueError(f"pairs misaligned: {n} user rows, {len(items)} item rows, {len(pair_affinity)} affinities")
    columns: dict[str, np.ndarray] = {}
    for name in features:
        if name == AFFINITY:
            columns[name] = np.asarray(pair_affinity, dtype=float)
        elif name == IDLE_DAYS:
            columns[name] = (np.asarray(request_unix, dtype=float) - _numeric(users, LAST_ACTIVITY)) / 86400.0
        elif name in users:
            columns[name] = _numeric(users, name)
        elif name in items:
            columns[name] = _numeric(items, name)
        else:
            raise KeyError(f"rating input {name!r} is in neither the user's nor the item's features")
    return pd.DataFrame(columns, index=range(n))


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
