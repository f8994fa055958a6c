"""Behavioural tests of the served sentiment champion (Made With ML's model
tests): the local profile's models:/review-sentiment@champion, as `make demo`
leaves it. Skipped, saying so, where no champion has been trained and promoted
(a fresh clone before `make demo`); training logs the same checks on every run."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from training.sentiment.behaviour import behaviour_report

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def champion():
    from mlflow.exceptions import MlflowException

    from portrait.settings import Settings
    from portrait.store import database
    from registry import models, tracking

    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: after the integration tests it
    # names their throwaway registry, whose tiny-BERT champion is not the one under test
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    settings = Settings()
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v
    if settings.profile != "local" or not settings.pgdata.exists():
        pytest.skip("no local profile with a trained champion here: run `make demo` first")
    tracking.configure(settings)
    try:
        model, info = models.load(models.SENTIMENT)
    except MlflowException:
        pytest.skip("no review-sentiment champion: run `make demo` (or train and promote one) first")
    finally:
        database.engine(settings).dispose()
    return model, info


def _predict(model):
    def predict(texts: list[str]) -> tuple[list[str], np.ndarray]:
        out = model.predict(pd.DataFrame({"text": texts}))
        return list(out["label"]), out["prob_positive"].to_numpy()

    return predict


def test_minimum_functionality_invariance_and_direction(champion):
    model, info = champion
    report = behaviour_report(_predict(model))
    assert report.all_passed, f"review-sentiment v{info.version}: " + "; ".join(report.failures)
