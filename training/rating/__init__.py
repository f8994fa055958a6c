"""Rating prediction from Feast features only, and the ranking it drives: config (budget),
data (label rows and the point-in-time join), baselines, mlp, ranking (the test period's
protocol), train (the runs). What the CLI and the other stages use is named here."""

from training.rating.config import RatingConfig
from training.rating.data import FEATURE_SERVICE, label_rows, training_frame
from training.rating.ranking import RankingPeriod, choose_ranking, ndcg_recall_at_k, ranked_lists
from training.rating.train import RatingOutcome, run_rating_training

__all__ = [
    "FEATURE_SERVICE",
    "RankingPeriod",
    "RatingConfig",
    "RatingOutcome",
    "choose_ranking",
    "label_rows",
    "ndcg_recall_at_k",
    "ranked_lists",
    "run_rating_training",
    "training_frame",
]
