"""How failures become HTTP answers: a dependency that is down is a 503 whose
reason reaches the client; outages are recognised by exception type."""

from __future__ import annotations

import re
from contextvars import ContextVar
from http import HTTPStatus

from bentoml.exceptions import BentoMLException, ServiceUnavailable

# Per-request notes shared between the middleware and the endpoint's worker thread
# (the thread runs in a copy of the context, which holds the same dict).
request_notes: ContextVar[dict] = ContextVar("portrait_request_notes")


class Conflict(BentoMLException):
    """The request repeats something already stored (a second review of an item)."""

    error_code = HTTPStatus.CONFLICT


class Gone(BentoMLException):
    """The user was erased (`portrait forget`): nothing of theirs is stored again."""

    error_code = HTTPStatus.GONE


def outage_types() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a dependency (database, online store, a model
    service) cannot be reached, whatever their message says."""
    import aiohttp
    import httpx
    import psycopg
    import psycopg2
    import redis
    import sqlalchemy

    return (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        httpx.TransportError,
        aiohttp.ClientConnectionError,  # BentoML's client to a dependency service (the sentiment worker)
        ConnectionError,
        TimeoutError,
    )


def is_outage(err: BaseException) -> bool:
    """Whether err, or an exception it was raised from, is an outage."""
    types = outage_types()
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, types) or (
            isinstance(current, BentoMLException) and current.error_code == HTTPStatus.SERVICE_UNAVAILABLE
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_stale_connection(err: BaseException) -> bool:
    """A connection to a dependency lost under the request (typically a pooled
    keep-alive connection the server had already closed: "Server disconnected",
    "Can not write request body"). The request may be sent again where the call
    is idempotent, as classifying a text is."""
    import aiohttp

    current: BaseException | None = err
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            return True
        current = current.__cause__ or current.__context__
    return False


# What a 503's reason must not reveal: where the dependency lives (socket paths, file
# paths, addresses, ports). The log keeps the whole error.
_WHERE = (
    (re.compile(r"(?:on socket|at|server|host)\s+\"[^\"]*\""), lambda m: m.group().split(" ")[0] + " <hidden>"),
    (re.compile(r"(?<![\w.])/(?:[^\s\"':,]+/)+[^\s\"':,]*"), lambda m: "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9a-fA-F:]+\](?::\d+)?"), lambda m: "<host>"),
    (re.compile(r"\bport \d+"), lambda m: "port <hidden>"),
)


def hide_locations(reason: str) -> str:
    """The reason with paths, addresses and ports replaced: what is down, not where."""
    for pattern, replacement in _WHERE:
        reason = pattern.sub(replacement, reason)
    return reason


def down(reason: str) -> ServiceUnavailable:
    """A 503 whose reason reaches the client (BentoML hides 5xx messages; the
    middleware puts this one back), without where the dependency lives."""
    reason = hide_locations(reason)
    notes = request_notes.get(None)
    if notes is not None:
        notes["reason"] = reason
    return ServiceUnavailable(reason)


def describe(err: BaseException) -> str:
    """The error in one short line: the driver's own error where SQLAlchemy wraps
    one (SQLAlchemy's text adds the statement and its parameters)."""
    inner = getattr(err, "orig", None) or err
    return f"{type(inner).__name__}: {str(inner).strip()}"[:300]
