"""The one place Portrait touches Feast's private symbols (pinned Feast 0.67).

Feast has no public API for these jobs; each use names the symbol here, so
a Feast upgrade that moves one fails in `check()` (run by the unit tests) with
the symbol's name, not deep inside forget or a training join:

- `_get_conn_kwargs`: how Feast's PostgreSQL offline store builds its connection
  arguments; wrapped to plan its point-in-time join with hash joins.
- `_redis_key`, `_table_id`: where the Redis and PostgreSQL online stores keep an
  entity's rows; `portrait forget` deletes them there.
- `_get_conninfo`, `_get_conn_kwargs`, `_to_naive_utc`: how the PostgreSQL online store
  connects and stores timestamps; Portrait's COPY-writing store connects the same way,
  through a thread-safe pool of its own.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

CONN_KWARGS = ("feast.infra.utils.postgres.connection_utils", "_get_conn_kwargs")
REDIS_KEY = ("feast.infra.online_stores.helpers", "_redis_key")
PG_TABLE_ID = ("feast.infra.online_stores.postgres_online_store.postgres", "_table_id")
# the COPY-writing online store (portrait/featurestore/online_stores.py) repeats Feast's connection handling
PG_CONNINFO = ("feast.infra.utils.postgres.connection_utils", "_get_conninfo")
NAIVE_UTC = ("feast.infra.online_stores.helpers", "_to_naive_utc")
SYMBOLS = (CONN_KWARGS, REDIS_KEY, PG_TABLE_ID, PG_CONNINFO, NAIVE_UTC)
# the parameters Portrait passes, in order: a symbol that keeps its name but changes
# what it takes fails here, not with a wrong table name or a TypeError in a request
SIGNATURES: dict[tuple[str, str], tuple[str, ...]] = {
    CONN_KWARGS: ("config",),
    REDIS_KEY: ("project", "entity_key", "entity_key_serialization_version"),
    PG_TABLE_ID: ("project", "table", "enable_versioning"),
    PG_CONNINFO: ("config",),
    NAIVE_UTC: ("ts",),
}
# Feast's PostgreSQL online store: the members the COPY-writing store overrides
# (_get_conn), calls (_check_table_has_value_num) or replaces (_conn, _conn_pool)
PG_STORE = ("feast.infra.online_stores.postgres_online_store.postgres", "PostgreSQLOnlineStore")
PG_STORE_METHODS: dict[str, tuple[str, ...]] = {
    "_get_conn": ("self", "config", "autocommit"),
    "_check_table_has_value_num": ("self", "cur", "table_name", "config"),
}
PG_STORE_ATTRIBUTES = ("_conn", "_conn_pool")


class FeastPrivateSymbolMissing(ImportError):
    """A Feast upgrade moved or removed a private symbol Portrait relies on."""


def resolve(symbol: tuple[str, str]) -> Callable[..., Any]:
    """The callable at module.name; FeastPrivateSymbolMissing naming it otherwise."""
    module_name, name = symbol
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise FeastPrivateSymbolMissing(
            f"Feast's private symbol {module_name}.{name} is gone ({type(err).__name__}: {err}); "
            f"portrait/featurestore/feast_private.py must follow the Feast upgrade"
        ) from None
    if not callable(found):
        raise FeastPrivateSymbolMissing(f"Feast's {module_name}.{name} is no longer callable")
    if symbol in SIGNATURES:
        _check_parameters(f"{module_name}.{name}", found, SIGNATURES[symbol])
    return found


def _check_parameters(where: str, found: Callable[..., Any], expected: tuple[str, ...]) -> None:
    got = tuple(inspect.signature(found).parameters)[: len(expected)]
    if got != expected:
        raise FeastPrivateSymbolMissing(
            f"Feast's private {where} now takes {got}, Portrait passes {expected}; "
            f"portrait/featurestore/feast_private.py must follow the Feast upgrade"
        )


def check_postgres_store(store_class: type | None = None) -> None:
    """The members of Feast's PostgreSQL online store the COPY-writing store relies on."""
    if store_class is None:
        store_class = getattr(importlib.import_module(PG_STORE[0]), PG_STORE[1])
    where = f"{PG_STORE[0]}.{PG_STORE[1]}"
    for name, expected in PG_STORE_METHODS.items():
        method = getattr(store_class, name, None)
        if not callable(method):
            raise FeastPrivateSymbolMissing(f"Feast's {where}.{name} is gone; portrait/featurestore/online_stores.py")
        _check_parameters(f"{where}.{name}", method, expected)
    for name in PG_STORE_ATTRIBUTES:
        if name not in getattr(store_class, "__annotations__", {}) and not hasattr(store_class, name):
            raise FeastPrivateSymbolMissing(f"Feast's {where}.{name} is gone; portrait/featurestore/online_stores.py")


def check() -> None:
    """Resolve every symbol and store member Portrait uses; raises on the first one missing."""
    for symbol in SYMBOLS:
        resolve(symbol)
    check_postgres_store()


def redis_key(project: str, entity_key, serialization_version: int) -> bytes:
    return resolve(REDIS_KEY)(project, entity_key, entity_key_serialization_version=serialization_version)


def postgres_online_table(config, feature_view) -> str:
    """The online table of a feature view exactly as Feast's PostgreSQL store names it
    (the registry's versioning flag included): the COPY writes and forget's deletes
    both go through here."""
    return resolve(PG_TABLE_ID)(config.project, feature_view, config.registry.enable_online_feature_view_versioning)


@contextlib.contextmanager
def offline_connection_options(extra: str) -> Iterator[None]:
    """Append `extra` (libpq options, e.g. "-c enable_nestloop=off") to every
    connection Feast's PostgreSQL offline store opens inside the block. Feast sets
    `options` itself (search_path), so PGOPTIONS cannot reach these connections."""
    module = importlib.import_module(CONN_KWARGS[0])
    stock = resolve(CONN_KWARGS)

    def with_extra(config):
        kwargs = stock(config)
        kwargs["options"] = f"{kwargs.get('options') or ''} {extra}".strip()
        return kwargs

    setattr(module, CONN_KWARGS[1], with_extra)
    try:
        yield
    finally:
        setattr(module, CONN_KWARGS[1], stock)
