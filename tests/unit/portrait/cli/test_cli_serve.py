"""`portrait serve` says where the keys are kept and never prints one."""

from __future__ import annotations

import os

from click.testing import CliRunner

from portrait.cli import app as cli


def test_serve_never_prints_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTRAIT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("PORTRAIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("PORTRAIT_API_KEYS", raising=False)
    monkeypatch.delenv("PORTRAIT_ADMIN_KEYS", raising=False)
    cli.get_settings.cache_clear()
    started = []
    monkeypatch.setattr(os, "execv", lambda path, args: started.append(args))
    monkeypatch.setattr(os, "chdir", lambda path: None)
    try:
        result = CliRunner().invoke(cli.main, ["serve", "--port", "3999"])
    finally:
        cli.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    keys = [(tmp_path / name).read_text().strip() for name in ("api_key", "admin_key")]
    assert all(len(k) >= 32 for k in keys) and keys[0] != keys[1]
    assert not any(k in result.output for k in keys)
    assert str(tmp_path / "api_key") in result.output
    from serving.launch import SERVICE

    assert started and started[0][1:3] == ["-m", "serving.launch"] and SERVICE == "serving.service:Portrait"
