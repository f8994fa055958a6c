"""Model quality and training speed, each side by side with its baselines on
the same time split (train < 2013-07-01 <= validation < 2014-01-01 <= test):

- sentiment: fine-tuned encoder (budget --epochs, as `portrait train sentiment`) against TF-IDF + logistic
  regression: test macro-F1, and training examples/s;
- rating: the MLP on Feast features (rating_v1) against global mean, user +
  item bias and matrix factorization: test RMSE / MAE, NDCG@10 and Recall@10
  against the most popular items.

Runs are tracked in the MLflow experiment `portrait-bench` (the registry gets
the versions too; nothing is promoted). Needs ingested data and built features.

    .venv/bin/python bench/models.py [--epochs 3] [--skip-sentiment] [--skip-rating]
"""

from __future__ import annotations

import argparse

import common  # bench/common.py (bench/ is on sys.path when a script runs)

from portrait.featurestore.repo import feature_store
from portrait.settings import get_settings
from registry import tracking
from training.rating import RatingConfig, run_rating_training
from training.sentiment import FineTuneConfig, run_sentiment_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=FineTuneConfig.epochs, help="fine-tuning budget")
    parser.add_argument("--skip-sentiment", action="store_true")
    parser.add_argument("--skip-rating", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    tracking.configure(settings, experiment="portrait-bench")
    engine = common.engine(settings)
    if not args.skip_sentiment:
        out = run_sentiment_training(engine, FineTuneConfig(model=settings.encoder or "", epochs=args.epochs))
        m, b = out.metrics, out.baseline_metrics
        print(f"sentiment, test macro-F1 (accuracy), {args.epochs} epochs, stopped by {out.stopped_by}:")
        print(
            f"  fine-tuned encoder   {m['test_macro_f1']:.4f} ({m['test_accuracy']:.4f})  "
            f"{out.examples_per_s:.1f} train examples/s"
        )
        print(f"  TF-IDF + LR          {b['test_macro_f1']:.4f} ({b['test_accuracy']:.4f})")
        print(f"  gain {m['test_macro_f1'] - b['test_macro_f1']:+.4f} (target >= +0.05)")
    if not args.skip_rating:
        rating = run_rating_training(engine, feature_store(settings), RatingConfig())
        m, b = rating.metrics, rating.baseline_metrics
        print("rating, test RMSE / MAE:")
        print(f"  MLP on rating_v1     {m['test_rmse']:.4f} / {m['test_mae']:.4f}")
        for name in ("user_item_bias", "matrix_factorization", "global_mean", "online_bias"):
            print(f"  {name.replace('_', ' '):<21}{b[f'{name}_test_rmse']:.4f} / {b[f'{name}_test_mae']:.4f}")
        print(
            "ranking (ratios to popularity on test, 95% paired-bootstrap intervals; bench/ranking.py has the classics):"
        )
        for line in rating.ranking_lines:
            print(line)


if __name__ == "__main__":
    with common.recorded("models"):
        main()
