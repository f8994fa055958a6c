"""Getting an engine starts nothing: the embedded server is started only where a
composition root asks for it (database.ensure_running)."""

from __future__ import annotations

import pytest

from portrait.settings import Settings, SettingsError
from portrait.store import database


def test_engine_on_a_stopped_local_profile_starts_no_server(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(database, "up", lambda settings: started.append(settings))
    settings = Settings(state_dir=tmp_path / "state", database_url=None)
    with pytest.raises(SettingsError, match="portrait db up"):  # says what to do, starts nothing
        database.engine(settings)
    assert started == [] and not (tmp_path / "state").exists()

    database.ensure_running(settings)  # the explicit call does start it
    assert started == [settings]


def test_engine_on_an_external_server_only_names_it():
    engine = database.engine(Settings(database_url="postgresql://u@db.invalid:5432/shop"))
    assert engine.url.host == "db.invalid" and engine.url.drivername == database.DRIVER
