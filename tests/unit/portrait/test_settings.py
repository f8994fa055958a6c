import pytest

from portrait.settings import Settings, SettingsError, id_key


def test_local_profile_generates_the_key_once(tmp_path):
    s = Settings(state_dir=tmp_path, database_url=None, id_key=None)
    assert s.profile == "local"
    key = id_key(s)
    assert len(key) == 64 and id_key(s) == key
    assert (tmp_path / "id_key").stat().st_mode & 0o077 == 0


def test_external_profile_requires_the_key(tmp_path):
    s = Settings(state_dir=tmp_path, database_url="postgresql://x@h/db", id_key=None)
    assert s.profile == "external"
    with pytest.raises(SettingsError, match="PORTRAIT_ID_KEY"):
        id_key(s)
    key = "k" * 32
    assert id_key(Settings(state_dir=tmp_path, database_url="postgresql://x@h/db", id_key=key)) == key.encode()


def test_a_short_key_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="at least 32"):
        id_key(Settings(state_dir=tmp_path, database_url="postgresql://x@h/db", id_key="k"))


def test_environment_selects_the_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTRAIT_DATABASE_URL", "postgresql://u@db.example/portrait")
    monkeypatch.setenv("PORTRAIT_STATE_DIR", str(tmp_path))
    s = Settings()
    assert s.profile == "external" and s.state_dir == tmp_path


def test_the_state_directory_is_made_owner_only(tmp_path):
    from portrait.settings import private_state_dir

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "mlartifacts").mkdir(mode=0o755)
    (state / "report").mkdir(mode=0o775)
    state.chmod(0o755)  # as an older Portrait left it (mkdir's mode is masked by the umask)
    private_state_dir(Settings(state_dir=state, database_url=None))
    assert state.stat().st_mode & 0o066 == 0  # 0711 as root: the embedded server's user passes through
    for path in (state / "mlartifacts", state / "report"):
        assert path.stat().st_mode & 0o077 == 0, path
