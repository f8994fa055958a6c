"""Feast's private symbols, all behind portrait.featurestore.feast_private: every one still
resolves on the pinned Feast, and a moved one fails with its name."""

import pytest

from portrait.featurestore import feast_private
from tests.helpers.data import REPO


@pytest.mark.parametrize("symbol", feast_private.SYMBOLS, ids=lambda s: s[1])
def test_every_private_symbol_portrait_uses_resolves(symbol):
    assert callable(feast_private.resolve(symbol))


def test_a_moved_symbol_fails_loudly_with_its_name():
    with pytest.raises(feast_private.FeastPrivateSymbolMissing, match=r"connection_utils\._gone_in_a_new_feast"):
        feast_private.resolve(("feast.infra.utils.postgres.connection_utils", "_gone_in_a_new_feast"))


def test_no_other_module_imports_a_private_feast_symbol():
    import ast

    root = REPO
    offenders = []
    for package in ("portrait", "training", "registry", "serving", "bench"):
        for path in (root / package).rglob("*.py"):  # every room, not only the top
            if path.name == "feast_private.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("feast"):
                    offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []
