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


def test_feasts_postgres_store_still_has_the_members_the_copy_store_relies_on():
    feast_private.check()  # every symbol by name and signature, and the store's members


def test_a_changed_signature_or_a_missing_store_member_fails_by_name():
    class Moved:
        _conn = None

        def _get_conn(self, config):  # autocommit gone
            return None

        def _check_table_has_value_num(self, cur, table_name, config):
            return False

    with pytest.raises(feast_private.FeastPrivateSymbolMissing, match=r"_get_conn now takes"):
        feast_private.check_postgres_store(Moved)

    class NoPool:
        _conn = None

        def _get_conn(self, config, autocommit=False):
            return None

        def _check_table_has_value_num(self, cur, table_name, config):
            return False

    with pytest.raises(feast_private.FeastPrivateSymbolMissing, match=r"_conn_pool is gone"):
        feast_private.check_postgres_store(NoPool)


@pytest.mark.parametrize("versioning", [False, True])
def test_forget_and_the_copy_store_name_the_online_table_as_feast_does(versioning):
    """With feature-view versioning on, Feast's PostgreSQL store writes to
    <project>_<view>_v<N>; the COPY writes and forget's deletes use that same name."""
    import types

    from feast import Entity, FeatureView, Field
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.types import Float32

    from portrait.featurestore import online_stores
    from portrait.ops import forget

    user = Entity(name="user_id", join_keys=["user_id"])
    view = FeatureView(name="user_behavior", entities=[user], schema=[Field(name="x", dtype=Float32)])
    view.current_version_number = 2
    config = types.SimpleNamespace(
        project="portrait", registry=types.SimpleNamespace(enable_online_feature_view_versioning=versioning)
    )
    want = compute_table_id("portrait", view, versioning)
    assert want == ("portrait_user_behavior_v2" if versioning else "portrait_user_behavior")
    assert feast_private.postgres_online_table(config, view) == want
    # the one function both callers use (no second computation of the name to drift)
    assert online_stores.postgres_online_table is feast_private.postgres_online_table
    assert forget.postgres_online_table is feast_private.postgres_online_table
