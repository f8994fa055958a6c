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
from collections.abc import Callable, Iterator
from typing import Any

CONN_KWARGS = ("feast.infra.utils.postgres.connection_utils", "_get_conn_kwargs")
REDIS_KEY = ("feast.infra.online_stores.helpers", "_redis_key")
PG_TABLE_ID = ("feast.infra.online_stores.postgres_online_store.postgres", "_table_id")
# the COPY-writing online store (portrait/featurestore/online_stores.py) repeats Feast's connection handling
PG_CONNINFO = ("feast.infra.utils.postgres.connection_utils", "_get_conninfo")
NAIVE_UTC = ("feast.infra.online_stores.helpers", "_to_naive_utc")
SYMBOLS = (CONN_KWARGS, REDIS_KEY, PG_TABLE_ID, PG_CONNINFO, NAIVE_UTC)


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
    return found


def check() -> None:
    """Resolve every symbol Portrait uses; raises on the first one missing."""
    for symbol in SYMBOLS:
        resolve(symbol)


def redis_key(project: str, entity_key, serialization_version: int) -> bytes:
    return resolve(REDIS_KEY)(project, entity_key, entity_key_serialization_version=serialization_version)


def postgres_online_table(project: str, feature_view) -> str:
    return resolve(PG_TABLE_ID)(project, feature_view)


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
