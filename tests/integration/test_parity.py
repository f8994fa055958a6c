"""Offline/online parity of the rating model's inputs: for (user, item, time t)
rows, the inputs Feast's point-in-time join gives at t (the training path, its
on-demand view included) equal those serving builds from the online store after
materializing up to t (portrait.features.rating_inputs), and the logged model predicts
the same ratings from both. Both profiles, both online stores."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers.featurestore import feature_store

pytestmark = pytest.mark.integration
AS_OF = datetime(2013, 3, 1, 12, 0, 7, tzinfo=timezone.utc)
SPLIT_DATES = (datetime(2012, 1, 1, tzinfo=timezone.utc), datetime(2013, 1, 1, tzinfo=timezone.utc))


def _sample(engine, n_users: int = 8, n_items: int = 6) -> tuple[list[str], list[str]]:
    """Users and items with feature rows before AS_OF (so the online store holds their as-of values)."""
    with engine.connect() as conn:
        users = (
            conn.execute(
                sa.text(
                    "SELECT DISTINCT user_id FROM user_text_profile WHERE event_timestamp < :t ORDER BY user_id LIMIT :n"
                ),
                {"t": AS_OF, "n": n_users},
            )
            .scalars()
            .all()
        )
        items = (
            conn.execute(
                sa.text(
                    "SELECT DISTINCT item_id FROM item_text_profile WHERE event_timestamp < :t ORDER BY item_id LIMIT :n"
                ),
                {"t": AS_OF, "n": n_items},
            )
            .scalars()
            .all()
        )
    return list(users), list(items)


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_historical_and_online_rating_inputs_are_equal_and_predict_alike(built, online):
    from portrait.features.rating_inputs import RATING_SERVICE
    from portrait.featurestore import repo as featurestore
    from registry import models, tracking
    from serving.online import OnlineReader
    from training.common import TimeSplit
    from training.rating import RatingConfig, run_rating_training

    settings, engine, _ = built
    settings, store = feature_store(settings, online)
    store.materialize(start_date=datetime(1970, 1, 1, tzinfo=timezone.utc), end_date=AS_OF)
    users, items = _sample(engine)
    assert len(users) >= 3 and len(items) >= 3
    pairs = pd.DataFrame([(u, i) for u in users for i in items], columns=["user_id", "item_id"])
    entity_df = pairs.assign(event_timestamp=AS_OF, request_unix=int(AS_OF.timestamp()))
    historical = featurestore.historical_features(store, entity_df, store.get_feature_service(RATING_SERVICE))
    historical = historical.set_index(["user_id", "item_id"]).loc[list(zip(pairs.user_id, pairs.item_id))]

    reader = OnlineReader(store)
    online_rows = [reader.rating_inputs(reader.user(u), items, AS_OF.timestamp()) for u in users]
    online_frame = pd.concat(online_rows, ignore_index=True)
    features = reader.rating_features
    offline_frame = historical[features].apply(pd.to_numeric, errors="coerce").astype(float).reset_index(drop=True)
    assert list(online_frame.columns) == features and {"affinity", "days_since_last_activity"} <= set(features)
    assert offline_frame["affinity"].notna().any() and offline_frame["rating_mean"].notna().any()
    np.testing.assert_allclose(online_frame.to_numpy(), offline_frame.to_numpy(), rtol=1e-6, atol=1e-6)

    # the logged pyfunc predicts the same ratings from the training path's inputs and the online ones
    tracking.configure(settings)
    out = run_rating_training(engine, store, RatingConfig(epochs=2, mf_epochs=1), TimeSplit(*SPLIT_DATES))
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{models.RATING}/{out.version}")
    inputs = model.metadata.get_input_schema().input_names()
    np.testing.assert_allclose(
        model.predict(online_frame[inputs])["rating"].to_numpy(),
        model.predict(offline_frame[inputs])["rating"].to_numpy(),
        rtol=1e-6,
    )
