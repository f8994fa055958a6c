"""Rating prediction from Feast features only, and the ranking /recommend serves:
config (budget), data (label rows and the point-in-time join), baselines, mlp,
protocols (rolling next-item, leave-one-out, frozen snapshot; metrics and the
bootstrap), ranking (the blend chosen and measured on them), train (the runs).
What the CLI and the other stages use is named here."""

from training.rating.config import RatingConfig
from training.rating.data import FEATURE_SERVICE, label_rows, training_frame
from training.rating.ranking import RankingOutcome, describe, ranking_eval
from training.rating.train import RatingOutcome, run_rating_training

__all__ = [
    "FEATURE_SERVICE",
    "RankingOutcome",
    "RatingConfig",
    "RatingOutcome",
    "describe",
    "label_rows",
    "ranking_eval",
    "run_rating_training",
    "training_frame",
]
