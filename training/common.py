"""What every training run shares: the time split, seeds, device, provenance tags."""

from __future__ import annotations

import platform
import random
import subprocess
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from portrait.settings import REPO_ROOT
from portrait.text.language import jieba_words
from registry.models import BASELINE_PREFIX, HEADLINE, tag_version

SPLIT_SHARES = (0.70, 0.10, 0.20)  # train / validation / test shares of the reviews, in time order


class SplitError(ValueError):
    """A split this shop's data cannot be trained or evaluated on (the message says why)."""


@dataclass(frozen=True)
class TimeSplit:
    """Train before `train_before`, validate until `test_from`, test from then on; never at
    random. Without dates, `resolved` puts the cuts at quantiles of the reviews' times
    (SPLIT_SHARES), so any shop gets a split that fits its own history."""

    train_before: datetime | None = None
    test_from: datetime | None = None
    shares: tuple[float, float, float] = SPLIT_SHARES
    chosen_by: str = "dates"  # or "quantiles 70/10/20" once resolved from the data

    def __post_init__(self) -> None:
        if (self.train_before is None) != (self.test_from is None):
            raise SplitError("give both --train-before and --test-from, or neither (a split by quantiles of time)")
        if self.train_before and self.test_from and not self.train_before <= self.test_from:
            raise SplitError("the validation period must not end before it starts (train_before <= test_from)")

    @property
    def by_quantiles(self) -> bool:
        return self.train_before is None

    def resolved(self, times: pd.Series) -> TimeSplit:
        """This split with dates: the given ones, or the times at the shares' quantiles."""
        if not self.by_quantiles:
            return self
        t = np.sort(pd.to_datetime(times, utc=True).to_numpy())
        if len(t) < 3:
            raise SplitError(f"{len(t)} reviews cannot be split into train, validation and test")
        first, second = (t[min(len(t) - 1, int(np.ceil(q * len(t))))] for q in np.cumsum(self.shares[:2]))
        shares = "/".join(f"{round(100 * x)}" for x in self.shares)
        return TimeSplit(_utc(first), _utc(second), self.shares, f"quantiles {shares} of review time")

    def part(self, times: pd.Series) -> pd.Series:
        """'train' | 'val' | 'test' for each timestamp."""
        if self.train_before is None or self.test_from is None:
            raise SplitError("resolve the split on the data first (TimeSplit.resolved)")
        t = pd.to_datetime(times, utc=True)
        return pd.Series(
            np.where(t < self.train_before, "train", np.where(t < self.test_from, "val", "test")), index=times.index
        )

    def window(self) -> str:
        if self.train_before is None or self.test_from is None:
            return f"quantiles {'/'.join(str(round(100 * x)) for x in self.shares)} of review time"
        return f"train<{self.train_before:%Y-%m-%d}<=val<{self.test_from:%Y-%m-%d}<=test"

    def describe(self, times: pd.Series) -> str:
        """Each part's review count and date range, as the CLI prints it."""
        t = pd.to_datetime(times, utc=True)
        parts = self.part(times)
        out = []
        for name, label in (("train", "train"), ("val", "validation"), ("test", "test")):
            mine = t[parts == name]
            span = f"{mine.min():%Y-%m-%d} to {mine.max():%Y-%m-%d}" if len(mine) else "empty"
            out.append(f"{label} {len(mine):,} ({span})")
        return f"split by {self.chosen_by}: " + "; ".join(out)


def _utc(value) -> datetime:
    """A time of a UTC series (aware, or naive UTC as numpy gives it) as an aware datetime."""
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_params() -> dict[str, str]:
    """Device and library versions, logged with every run (versions from package
    metadata: no heavy imports)."""
    from importlib.metadata import version

    import torch

    libs = {name: version(name) for name in ("torch", "transformers", "scikit-learn", "mlflow", "feast")}
    return {
        "device": device(),
        **libs,
        "python": platform.python_version(),
        "cpu_threads": str(torch.get_num_threads()),
    }


def run_tags(split: TimeSplit, feature_service: str | None = None) -> dict[str, str]:
    tags = {"git_commit": git_commit(), "data_window": split.window(), "feast_project": "portrait"}
    if feature_service:
        tags["feast_feature_service"] = feature_service
    return tags


def with_float_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as float64 for the schema MLflow infers: a feature can be
    missing at inference time, and an integer column cannot hold a missing value."""
    ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    return frame.astype({c: "float64" for c in ints})


def pinned_requirements(packages: list[str]) -> list[str]:
    """package==installed version for a logged model's environment. A local
    version label (torch 2.13.0+cpu) is dropped on purpose: PyPI has no such
    build, and serving picks its own CPU or CUDA build of the same release."""
    from importlib.metadata import version

    from packaging.version import Version

    return [f"{name}=={Version(version(name)).public}" for name in packages]


def word_tfidf(chinese: bool = False, **options):
    """The baselines' TF-IDF of words and word bigrams; words from jieba for Chinese
    (which has no spaces to split at)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = {"tokenizer": jieba_words, "token_pattern": None, "lowercase": False} if chinese else {}
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, **words, **options)


def log_and_register(
    *,
    model_file: str,
    artifacts: dict[str, str],
    registered_name: str,
    input_example: pd.DataFrame,
    requirements: list[str],
    metrics: dict[str, float],
    tags: dict[str, str],
    baseline: str,
    baseline_headline: float,
    model_config: dict | None = None,
) -> int:
    """The end of every training run: the model logged as an MLflow models-from-code
    pyfunc (registry/<model_file>) and registered, the run's metrics linked to it,
    and the new version tagged with its provenance, its headline metric and the
    baseline's (the promotion gate reads them). Returns the version."""
    import mlflow

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(REPO_ROOT / "registry" / model_file),
        artifacts=artifacts,
        model_config=model_config,
        input_example=input_example,
        registered_model_name=registered_name,
        pip_requirements=pinned_requirements(requirements),
    )
    # after the model, linked to it: metrics logged before log_model are copied to the
    # model by MLflow, which inserts each one twice and recovers from the duplicate key
    mlflow.log_metrics(metrics, model_id=info.model_id)
    version = int(info.registered_model_version)
    headline = HEADLINE[registered_name][0]
    tag_version(
        registered_name,
        version,
        {
            **tags,
            headline: f"{metrics[headline]:.4f}",
            "baseline": baseline,
            BASELINE_PREFIX + headline: repr(float(baseline_headline)),  # exact: a baseline version equals it
        },
    )
    return version
