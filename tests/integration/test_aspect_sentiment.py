"""`portrait train aspects` against real MLflow: an aspect-labelled CSV trains the
aspect-conditioned model, it is registered only beside the clause rule's figures,
promoted through the gate, served with (text, aspect) pairs, and once it is the
champion the feature build labels every English aspect mention with it."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

GOOD, BAD, FLAT = ["great", "superb", "excellent"], ["awful", "terrible", "broken"], ["black", "included", "small"]
ASPECTS = ["screen", "battery", "keyboard", "fan", "speaker"]


def aspect_csv(path, n: int = 360):
    """Two aspects per sentence, each with its own polarity: only the aspect says which one is asked."""
    rng = random.Random(0)
    rows = ["text,aspect,polarity"]
    for i in range(n):
        a, b = rng.sample(ASPECTS, 2)
        pa, pb = rng.choice(["positive", "negative", "neutral"]), rng.choice(["positive", "negative", "neutral"])
        word = {"positive": GOOD, "negative": BAD, "neutral": FLAT}
        text = f"The {a} is {rng.choice(word[pa])} but the {b} is {rng.choice(word[pb])}"
        rows.append(f"{text},{a if i % 2 else b},{pa if i % 2 else pb}")
    rows.append("The lid is fine,hinge,positive")  # set aside: the aspect is not in the text
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def registry_without_aspect_model(tracked):
    """The profile's registry outlives a test: the aspect model is deleted after this one,
    or every later build in the session would label aspects with it."""
    from mlflow import MlflowClient

    from registry.models import ASPECT_SENTIMENT

    yield tracked
    MlflowClient().delete_registered_model(ASPECT_SENTIMENT)


def test_aspect_model_registers_beside_the_rule_serves_pairs_and_labels_the_build(
    registry_without_aspect_model, tiny_bert, tmp_path
):
    from mlflow import MlflowClient

    from portrait.features.build import RatingsSentiment, build_features
    from portrait.features.tags import aspect_mentions
    from registry import models
    from training.sentiment import FineTuneConfig
    from training.sentiment.aspects import read_aspect_set, run_aspect_training

    settings, engine = registry_without_aspect_model
    labelled = read_aspect_set(aspect_csv(tmp_path / "aspects.csv"))
    assert labelled.set_aside == [(362, "aspect 'hinge' is not in the text")]
    cfg = FineTuneConfig(
        model=str(tiny_bert), epochs=10, lr=1e-3, batch_size=16, max_length=32, patience=100, min_class_examples=5
    )
    out = run_aspect_training(labelled, None, cfg)
    assert out.rule.startswith("majority class")
    assert out.sizes["validation"] + out.sizes["test"] + out.sizes["train"] == 360
    # the measured premise: a learnable set beats the majority class on validation, so it is registered
    assert out.val["val_macro_f1"] > out.val["rule_val_macro_f1"] and out.version == 1
    version = MlflowClient().get_model_version(models.ASPECT_SENTIMENT, "1")
    assert version.tags["language"] == "en" and version.tags["baseline"] == "clause rule"
    assert "chosen over the clause rule" in version.description and "| clause rule |" in version.description
    # the sentence labeler before: ratings, or a review-sentiment champion an earlier test promoted
    sentence_source = models.champion_labeler(settings, RatingsSentiment()).source
    models.promote(models.ASPECT_SENTIMENT, 1)  # beats its rule on test too, or the gate refuses

    loaded, _ = models.load(models.ASPECT_SENTIMENT)
    pairs = pd.DataFrame({"text": ["The screen is great but the fan is awful"] * 2, "aspect": ["screen", "fan"]})
    got = loaded.predict(pairs)
    assert list(got.columns) == ["label", "prob_negative", "prob_neutral", "prob_positive"] and len(got) == 2
    with pytest.raises(Exception, match="aspect"):
        loaded.unwrap_python_model().predict(None, pairs[["text"]])

    labeler = models.champion_labeler(settings, RatingsSentiment())
    assert labeler.source == f"{sentence_source}+model:aspect-sentiment/1"
    reviews = pd.DataFrame({"rating": [5], "text": ["The strings sound great but the tuner broke."]})
    expected = loaded.predict(
        pd.DataFrame({"text": ["The strings sound great", "the tuner broke"], "aspect": ["string", "tuner"]})
    )
    assert aspect_mentions(reviews, labeler) == [[("string", expected["label"][0]), ("tuner", expected["label"][1])]]

    # a new labeler source rebuilds every user's text profile with it
    result = build_features(engine, encoder_path=str(tiny_bert), sentiment=labeler, progress=False)
    assert result.users_rebuilt > 0
    with engine.connect() as conn:
        sources = conn.execute(sa.text("SELECT DISTINCT sentiment_source FROM user_text_profile")).scalars().all()
    assert labeler.source in sources
