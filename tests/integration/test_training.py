"""Training and the registry against a real MLflow backend (PostgreSQL) and a
real Feast store: tiny-BERT fine-tune, registration, promotion gate, rollback,
loading by alias, and the point-in-time correctness of the rating training set."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers.featurestore import feature_store

pytestmark = pytest.mark.integration
# The first 400 Amazon reviews span 2004-2014; this split gives every part reviews.
SPLIT_DATES = (datetime(2012, 1, 1, tzinfo=timezone.utc), datetime(2013, 1, 1, tzinfo=timezone.utc))


def test_sentiment_fine_tune_register_promote_gate_rollback_and_load(tracked, tiny_bert, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from registry import models
    from training.common import TimeSplit
    from training.sentiment import LABEL_IDS, FineTuneConfig, predict_proba, run_sentiment_training

    settings, engine = tracked
    cfg = FineTuneConfig(
        model=str(tiny_bert),
        max_steps=12,
        batch_size=16,
        eval_every=4,
        max_length=64,
        precision="bfloat16",
        register="fine-tuned",  # a tiny random BERT loses to TF-IDF on validation: registered by name here
        min_class_examples=0,  # a shop of a few hundred reviews
    )  # bf16 autocast, as on CPUs that have it; float32 is checked below
    out = run_sentiment_training(engine, cfg, TimeSplit(*SPLIT_DATES), progress=False)
    assert out.winner.kind == "fine-tuned" and out.run_id == out.fine_tuned.run_id
    client = MlflowClient()
    run = client.get_run(out.run_id)
    assert {"test_macro_f1", "val_macro_f1", "train_examples_per_s"} <= set(run.data.metrics)
    assert (
        run.data.params["precision_used"] == "bfloat16"
        and run.data.params["device"] == "cpu"
        and run.data.tags["data_window"].startswith("train<2012-01-01")
    )
    artifacts = {a.path for a in client.list_artifacts(out.run_id)}
    assert {
        "test_confusion_matrix.png",
        "learning_curves.png",
        "test_calibration.png",
        "test_classification_report.txt",
    } <= artifacts
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest
    baseline_run = client.get_run(out.baseline_candidate.run_id)
    assert baseline_run.data.metrics["test_macro_f1"] == out.baseline_metrics["test_macro_f1"]
    assert run.data.metrics["select_val_macro_f1"] == out.fine_tuned.val_macro_f1
    assert baseline_run.data.metrics["select_val_macro_f1"] == out.baseline_candidate.val_macro_f1

    assert run.data.tags["truncated"] == "false" and run.data.tags["stopped_by"] == "max steps"

    # a version is promoted only if it beats the baseline of its own run (recorded on the version)
    info = models.version_info(models.SENTIMENT, out.version)
    assert models.baseline_value(info) == pytest.approx(out.baseline_metrics["test_macro_f1"], abs=1e-6)
    f1 = out.metrics["test_macro_f1"]
    models.tag_version(models.SENTIMENT, out.version, {"baseline_test_macro_f1": f"{f1 + 0.01:.6f}"})
    with pytest.raises(models.PromotionRefused, match="baseline of its own run"):
        models.promote(models.SENTIMENT, out.version)
    assert models.champion(models.SENTIMENT) is None
    models.tag_version(models.SENTIMENT, out.version, {"baseline_test_macro_f1": f"{f1 - 0.01:.6f}"})
    # promoted, then loaded back by alias: the same predictions as the trained model
    models.promote(models.SENTIMENT, out.version)
    monkeypatch.setenv("PORTRAIT_ENCODER_PRECISION", "float32")
    loaded, info = models.load(models.SENTIMENT)
    assert info.version == out.version and "champion" in info.aliases
    texts = ["Great strings, bright tone.", "Broke after two days. Returned it.", "It is ok I guess"]
    got = loaded.predict(pd.DataFrame({"text": texts}))
    tok = out.result.tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    expected = predict_proba(out.result.model, tok, out.result.tokenizer.pad_token_id, "cpu", precision="float32")
    np.testing.assert_allclose(got[["prob_negative", "prob_neutral", "prob_positive"]].to_numpy(), expected, atol=1e-5)
    assert list(got["label"]) == [list(LABEL_IDS)[i] for i in expected.argmax(1)]
    monkeypatch.setenv("PORTRAIT_ENCODER_PRECISION", "bfloat16")  # as served where bf16 is native
    in_bf16 = models.load(models.SENTIMENT)[0].predict(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(
        in_bf16[["prob_negative", "prob_neutral", "prob_positive"]].to_numpy(), expected, atol=0.02
    )

    # a worse version (same artifacts, a run whose headline metric is lower) is refused
    champion_f1 = out.metrics["test_macro_f1"]
    with mlflow.start_run(run_name="worse") as worse_run:
        mlflow.log_metric("test_macro_f1", champion_f1 - 0.1)
    source = client.get_model_version(models.SENTIMENT, str(out.version)).source
    worse = client.create_model_version(models.SENTIMENT, source, run_id=worse_run.info.run_id)
    with pytest.raises(models.PromotionRefused, match="worse than champion"):
        models.promote(models.SENTIMENT, int(worse.version))
    assert models.champion(models.SENTIMENT).version == out.version
    models.promote(models.SENTIMENT, int(worse.version), force=True)
    assert models.champion(models.SENTIMENT).version == int(worse.version)
    restored, demoted = models.rollback(models.SENTIMENT)
    assert restored.version == out.version and demoted.version == int(worse.version)
    assert models.champion(models.SENTIMENT).version == out.version
    listed = {v.version: v for v in models.list_versions(models.SENTIMENT)}
    assert listed[out.version].value == pytest.approx(champion_f1) and "champion" in listed[out.version].aliases

    # with a champion, the next feature build relabels every user's text profile with it
    from portrait.features.build import RatingsSentiment, build_features

    sentiment = models.champion_labeler(settings, RatingsSentiment())
    assert sentiment.source == f"model:review-sentiment/{out.version}"
    result = build_features(engine, encoder_path=str(tiny_bert), sentiment=sentiment, progress=False)
    with engine.connect() as conn:
        sources = conn.execute(sa.text("SELECT DISTINCT sentiment_source FROM user_text_profile")).scalars().all()
        users = conn.execute(sa.text("SELECT count(DISTINCT user_id) FROM reviews")).scalar()
    assert sources == [sentiment.source] and result.users_rebuilt == users


def test_rating_training_set_is_point_in_time_correct(tracked):
    from training.rating import label_rows, training_frame

    settings, engine = tracked
    settings, store = feature_store(settings, "postgres")
    frame = training_frame(store, label_rows(engine))
    with engine.connect() as conn:
        reviews = pd.DataFrame(
            conn.execute(sa.text("SELECT user_id, event_timestamp FROM reviews")).all(), columns=["user_id", "t"]
        )
    reviews["t"] = pd.to_datetime(reviews["t"], utc=True)
    label_time = pd.to_datetime(frame["event_timestamp"], utc=True) + pd.Timedelta(seconds=1)
    before = [int(((reviews.user_id == u) & (reviews.t < t)).sum()) for u, t in zip(frame.user_id, label_time)]
    # the user's review count as the model sees it: exactly the reviews before this one, never later ones
    assert frame["review_count_total"].fillna(0).astype(int).tolist() == before
    assert (
        frame["review_count_total"].fillna(0)
        < frame.groupby("user_id")["review_count_total"].transform("max").fillna(0) + 1
    ).all()


def test_the_baseline_is_registered_when_it_wins_on_validation_and_serves_as_trained(tracked, tiny_bert):
    """A tiny random BERT cannot beat TF-IDF + LR: the shop gets the baseline, loaded through
    the same models-from-code file, its model card naming both candidates; the promotion
    gate takes a version equal to its own baseline."""
    from mlflow import MlflowClient

    from registry import models
    from training.common import TimeSplit
    from training.sentiment import FineTuneConfig, run_sentiment_training
    from training.sentiment.baselines import baseline_proba

    settings, engine = tracked
    cfg = FineTuneConfig(model=str(tiny_bert), max_steps=4, batch_size=16, eval_every=4, min_class_examples=0)
    out = run_sentiment_training(engine, cfg, TimeSplit(*SPLIT_DATES), progress=False)
    assert out.baseline_candidate.val_macro_f1 >= out.fine_tuned.val_macro_f1  # the measured premise
    # no --max-length: fitted to the training texts, logged with the run
    loser = MlflowClient().get_run(out.fine_tuned.run_id).data
    assert out.max_length in (64, 128) and loser.params["max_length"] == str(out.max_length)
    # the losing fine-tuned run still carries its test figure
    assert loser.metrics["test_macro_f1"] == pytest.approx(out.fine_tuned.test_macro_f1)
    assert out.winner.kind == "baseline" and out.run_id == out.baseline_candidate.run_id
    version = MlflowClient().get_model_version(models.SENTIMENT, str(out.version))
    assert version.tags["model_kind"] == "baseline" and version.run_id == out.baseline_candidate.run_id
    assert "(registered)" in version.description and "Margin over fine-tuned" in version.description
    assert "split by dates" in version.description
    models.promote(models.SENTIMENT, out.version)  # equal to its baseline: not refused
    loaded, info = models.load(models.SENTIMENT)
    texts = ["Great strings, bright tone.", "Broke after two days. Returned it.", "It is ok I guess"]
    got = loaded.predict(pd.DataFrame({"text": texts}))
    pipeline = loaded.unwrap_python_model().pipeline
    expected = baseline_proba(pipeline, texts)
    np.testing.assert_allclose(got[["prob_negative", "prob_neutral", "prob_positive"]].to_numpy(), expected)
    assert list(got["label"]) == [["negative", "neutral", "positive"][i] for i in expected.argmax(1)]


def test_a_registered_blend_serves_the_weighted_average_of_its_two_models(tracked, tiny_bert, monkeypatch):
    """The blend candidate (--register blend here) carries the classifier and the pipeline
    in one version: loaded by alias, it answers weight x fine-tuned + (1 - weight) x TF-IDF."""
    from mlflow import MlflowClient

    from registry import models
    from training.common import TimeSplit
    from training.sentiment import FineTuneConfig, predict_proba, run_sentiment_training
    from training.sentiment.baselines import baseline_proba
    from training.sentiment.candidates import blended

    settings, engine = tracked
    cfg = FineTuneConfig(
        model=str(tiny_bert), max_steps=4, batch_size=16, eval_every=4, max_length=32, min_class_examples=0
    )
    cfg.register = "blend"
    out = run_sentiment_training(engine, cfg, TimeSplit(*SPLIT_DATES), progress=False)
    assert out.winner.kind == "blend" and out.run_id == out.blend.run_id
    run = MlflowClient().get_run(out.run_id)
    weight = float(run.data.params["blend_weight"])
    assert 0 < weight < 1 and run.data.metrics["test_macro_f1"] == out.blend.test_macro_f1
    version = MlflowClient().get_model_version(models.SENTIMENT, str(out.version))
    assert version.tags["model_kind"] == "blend" and f"blend {weight:.1f} fine-tuned" in version.description
    models.promote(models.SENTIMENT, out.version, force=True)  # a tiny random BERT: the gate is not the point
    monkeypatch.setenv("PORTRAIT_ENCODER_PRECISION", "float32")
    loaded, _ = models.load(models.SENTIMENT)
    texts = ["Great strings, bright tone.", "Broke after two days. Returned it.", "It is ok I guess"]
    got = loaded.predict(pd.DataFrame({"text": texts}))
    served = loaded.unwrap_python_model()
    tok = out.result.tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    fine_tuned = predict_proba(out.result.model, tok, out.result.tokenizer.pad_token_id, "cpu", precision="float32")
    expected = blended(weight, fine_tuned, baseline_proba(served.pipeline, texts))
    np.testing.assert_allclose(got[["prob_negative", "prob_neutral", "prob_positive"]].to_numpy(), expected, atol=1e-5)
    assert list(got["label"]) == [["negative", "neutral", "positive"][i] for i in expected.argmax(1)]


def test_rating_model_trains_registers_and_loads_by_alias(tracked):
    from portrait.featurestore.repo import service_features
    from registry import models
    from training.common import TimeSplit
    from training.rating import FEATURE_SERVICE, RatingConfig, label_rows, run_rating_training, training_frame
    from training.rating.data import feature_columns

    settings, engine = tracked
    settings, store = feature_store(settings, "postgres")
    out = run_rating_training(
        engine, store, RatingConfig(epochs=5, mf_epochs=3, short_history=3), TimeSplit(*SPLIT_DATES)
    )
    for key in (
        "test_rmse",
        "test_mae",
        "rolling_test_ndcg_at_10",
        "rolling_test_popularity_ndcg_at_10",
        "rolling_test_recall_at_10_vs_popularity_low",
        "loo_test_mrr_at_10_vs_popularity",
        "frozen_test_ndcg_at_10_vs_popularity_high",
        "rolling_test_ndcg_vs_popularity_without_text",
    ):
        assert np.isfinite(out.metrics[key]), key
    assert set(out.baseline_rmse) == {"user_item_bias", "matrix_factorization", "global_mean", "online_bias"}
    assert all(np.isfinite(v) for v in out.baseline_rmse.values()), out.baseline_rmse
    assert out.test_rmse == out.metrics["test_rmse"] and out.ranking.ndcg == out.metrics["rolling_test_ndcg_at_10"]
    models.promote(models.RATING, out.version, force=True)  # a model of a few hundred reviews: the gate is tested above
    loaded, info = models.load(models.RATING)
    frame = training_frame(store, label_rows(engine).head(20))
    pred = loaded.predict(frame[feature_columns(frame, service_features(store, FEATURE_SERVICE))].astype(float))[
        "rating"
    ]
    assert pred.between(1, 5).all() and pred.nunique() > 1
    # the ranking travels inside the model: the blend by history segment and the graph it reads
    ranking = loaded.unwrap_python_model()
    assert ranking.short_history == 3 and set(ranking.blend) == {"short", "long"}
    assert set(ranking.blend_for(1)) == {"transitions", "item_item", "text", "popularity"}
    assert ranking.graph is not None and ranking.graph.transitions.nnz > 0
    assert any("rolling" in line and "[" in line for line in out.ranking_lines)  # printed with intervals


def test_bilingual_fine_tune_reports_each_language_against_its_own_baseline(tracked, tiny_bert):
    """English (3 classes) and Chinese (positive/negative, never asked to be neutral)
    in one fine-tune; each language's test split against its own baseline."""
    from mlflow import MlflowClient

    from training.common import TimeSplit
    from training.sentiment import FineTuneConfig, run_sentiment_training

    settings, engine = tracked
    cfg = FineTuneConfig(
        model=str(tiny_bert),
        max_steps=6,
        batch_size=16,
        eval_every=3,
        chinese=300,
        val_limit=100,
        min_class_examples=0,
        register="fine-tuned",
    )
    out = run_sentiment_training(engine, cfg, TimeSplit(*SPLIT_DATES), progress=False)
    run = MlflowClient().get_run(out.run_id)
    expected = {"test_macro_f1", "zh_test_macro_f1", "zh_test_macro_f1_gain_over_baseline", "zh_val_macro_f1"}
    assert expected | {"en_val_macro_f1"} <= set(run.data.metrics)
    assert 0 <= run.data.metrics["zh_test_macro_f1"] <= 1 and 0.5 < out.baseline_metrics["zh_test_macro_f1"] <= 1
    assert 290 <= int(run.data.params["chinese_train_reviews"]) <= 310  # sampled evenly over the 10 categories
