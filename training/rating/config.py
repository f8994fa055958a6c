"""The rating model's budget and hyperparameters; the CLI takes its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass


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
    # by the ranking prior, re-ranked by the predicted rating; logged in the model's spec
    # (registry.rating_model.DEFAULT_CANDIDATES is only the fallback for models logged before)
    candidates: int = 100
    ranking_users: int = 2000  # users sampled for the ranking evaluation
