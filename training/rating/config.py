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
    ranking_units: int = 3000  # evaluation cases per protocol period (a seeded sample of whole users above it)
    short_history: int = 2  # users with at most this many prior interactions get the cold-start blend
