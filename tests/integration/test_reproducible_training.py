"""Training budgets are steps and epochs, not wall-clock: the same seed and data
give the same model whether or not another process is burning a core, and the
wall-clock cap, when it cuts a run, says so."""

from __future__ import annotations

import gzip
import json
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice

import numpy as np
import pandas as pd
import pytest

from portrait.text.encoder import review_text
from portrait.text.labels import ratings_sentiment
from tests.helpers.data import AMAZON

pytestmark = pytest.mark.integration


def _burn() -> None:
    while True:
        pass


@contextmanager
def cpu_hog() -> Iterator[None]:
    """Another process keeping one core busy, as `yes > /dev/null` would."""
    hog = multiprocessing.get_context("spawn").Process(target=_burn, daemon=True)
    hog.start()
    try:
        yield
    finally:
        hog.terminate()
        hog.join()


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    with gzip.open(AMAZON, "rt") as f:
        rows = [json.loads(line) for line in islice(f, 360)]
    df = pd.DataFrame(
        {
            "input": [review_text(r["summary"], r["reviewText"]) for r in rows],
            "rating": [int(r["overall"]) for r in rows],
        }
    )
    df["label"] = ratings_sentiment(df["rating"])
    return df


def _train_and_score(tiny_bert, reviews: pd.DataFrame, **overrides):
    from training.sentiment import LABEL_IDS, FineTuneConfig, classification_metrics, fine_tune, predict_proba

    cfg = FineTuneConfig(
        model=str(tiny_bert), epochs=2, batch_size=16, eval_every=5, max_length=48, precision="float32", **overrides
    )
    train, val, test = reviews.iloc[:240], reviews.iloc[240:300], reviews.iloc[300:]
    result = fine_tune(train, val, cfg, progress=False)
    ids = result.tokenizer(list(test["input"]), truncation=True, max_length=cfg.max_length)["input_ids"]
    proba = predict_proba(result.model, ids, result.tokenizer.pad_token_id, "cpu")
    f1 = classification_metrics(test["label"].map(LABEL_IDS).to_numpy(), proba.argmax(1), "test")["test_macro_f1"]
    return result, proba, f1


def test_the_same_seed_gives_the_same_model_on_a_busy_machine(tiny_bert, reviews):
    quiet, quiet_proba, quiet_f1 = _train_and_score(tiny_bert, reviews)
    with cpu_hog():
        busy, busy_proba, busy_f1 = _train_and_score(tiny_bert, reviews)
    assert (busy.steps, busy.best_step, busy.stopped_by) == (quiet.steps, quiet.best_step, quiet.stopped_by)
    assert not busy.truncated and quiet.steps == 2 * 15  # 240 reviews / 16 a batch, 2 epochs
    assert abs(busy_f1 - quiet_f1) <= 0.005
    np.testing.assert_allclose(busy_proba, quiet_proba, atol=1e-5)


def test_a_run_cut_by_the_time_cap_is_marked_truncated(tiny_bert, reviews):
    result, _, _ = _train_and_score(tiny_bert, reviews, max_minutes=1e-5)
    assert result.truncated and result.stopped_by == "time cap" and result.steps < 2 * 15


def test_training_sets_do_not_depend_on_the_pseudonymization_key(tmp_path):
    """Two deployments of the same data (each with its own key, so other user ids
    and another load order) read the same training rows in the same order."""
    import sqlalchemy as sa

    from portrait.ingest.loader import ingest_file
    from portrait.settings import Settings
    from portrait.store import migrate
    from tests.helpers.data import real_lines
    from tests.helpers.databases import drop_external_database, fresh_external_database, require_external
    from training.rating import label_rows
    from training.sentiment.data import load_reviews

    base = require_external("PORTRAIT_TEST_DATABASE_URL")
    path = tmp_path / "reviews.json"
    lines = real_lines(400)
    path.write_bytes(b"".join(lines[200:] + lines[:200]))  # a different line order as well, for the second
    frames = []
    for key, source in ((b"k" * 32, path), (b"another-key-for-another-shop-000", None)):
        url, name = fresh_external_database(base)
        settings = Settings(state_dir=tmp_path / name, database_url=url, id_key=key.decode())
        migrate.upgrade(settings)
        engine = sa.create_engine(url)
        try:
            if source is None:
                source = tmp_path / "in-file-order.json"
                source.write_bytes(b"".join(lines))
            ingest_file(engine, "amazon-reviews", source, key, progress=False)
            frames.append((load_reviews(engine), label_rows(engine)))
        finally:
            engine.dispose()
            drop_external_database(base, name)
    (reviews_a, labels_a), (reviews_b, labels_b) = frames
    assert not set(labels_a["user_id"]) & set(labels_b["user_id"])  # different pseudonyms
    columns = ["event_timestamp", "rating", "input", "label"]
    pd.testing.assert_frame_equal(reviews_a[columns], reviews_b[columns])
    columns = ["item_id", "event_timestamp", "rating", "request_unix"]
    pd.testing.assert_frame_equal(labels_a[columns], labels_b[columns])
