"""The gate in front of every Portrait route (ASGI middleware), one mechanism per
promise:

- who: the API key (X-API-Key) and its role: storefront keys call the API,
  admin keys (PORTRAIT_ADMIN_KEYS) also /admin/*; health checks and docs are open;
- how much: per-key rate (token bucket) and requests in flight, 429 beyond; a body
  over PORTRAIT_MAX_BODY_BYTES gets 413 before it is read (Content-Length) or as
  soon as it passes the limit (chunked);
- what: a body must be JSON whose every string is free of NUL and lone surrogates,
  else 400 naming the field; the body is never logged;
- isolation: the model-bound routes (/sentiment, /reviews) queue here for a few
  slots, holding no worker thread, so they cannot starve the feature routes;
- what is recorded: one access line and Prometheus series per request, labelled by
  route (a fixed set), never by path, id or body;
- error bodies that say what went wrong (a 503 carries its reason, which BentoML
  would hide; a 4xx is one {"error": ...} object)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from portrait.settings import admin_keys, api_keys
from serving.errors import request_notes

access_log = logging.getLogger("portrait.access")

STOREFRONT, ADMIN = "storefront", "admin"
ROUTES = {
    "/sentiment": STOREFRONT,
    "/rating": STOREFRONT,
    "/recommend": STOREFRONT,
    "/profile": STOREFRONT,
    "/reviews": STOREFRONT,
    "/metrics": STOREFRONT,
    "/admin/reload": ADMIN,
}
HEAVY = ("/sentiment", "/reviews")
OPEN = ("/", "/livez", "/readyz", "/healthz", "/docs.json", "/docs")
OPEN_PREFIX = "/static_content/"
HEALTH = ("/livez", "/readyz", "/healthz")


def api_key(headers: dict[bytes, bytes]) -> str:
    """The key of X-API-Key, else of `Authorization: Bearer` (what a Prometheus scrape
    config's `authorization` sends)."""
    key = headers.get(b"x-api-key", b"").decode("latin-1")
    if not key:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    return key


def route_of(path: str) -> str:
    """The route a path belongs to: the label of logs and metrics (a fixed set)."""
    if path in ROUTES or path in OPEN:
        return path
    return "/static_content" if path.startswith(OPEN_PREFIX) else "unmatched"


class Rejected(Exception):
    def __init__(self, status: int, reason: str, headers: list | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or []


# Bounds on a body's JSON, far above what any route takes (64 texts, 100 item ids),
# checked before anything walks it: the walk is then bounded too.
MAX_JSON_VALUES = 10_000
MAX_JSON_DEPTH = 16
MAX_KEY_CHARS = 128
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def json_shape_problem(value: Any) -> str | None:
    """Why a parsed body is beyond the bounds (values, depth, key length), or None.
    Iterative, and stops at the first value past MAX_JSON_VALUES."""
    stack, count = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            return f"body holds more than {MAX_JSON_VALUES:,} JSON values"
        if depth > MAX_JSON_DEPTH:
            return f"body nests deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(node, dict):
            if any(len(k) > MAX_KEY_CHARS for k in node):
                return f"body has a key longer than {MAX_KEY_CHARS} characters"
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if _SURROGATE_RE.search(value):
        return "contains an invalid code point (a lone UTF-16 surrogate)"
    return None


def invalid_text(value: Any) -> str | None:
    """The first string (or key) holding NUL or a lone surrogate, named by its path.
    Paths are built only for the string reported (call json_shape_problem first:
    this walk assumes a bounded body)."""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            problem = _bad_string(node)
            if problem:
                return f"{_path_name(path)} {problem}"
        elif isinstance(node, dict):
            for k, v in reversed(node.items()):
                problem = _bad_string(k)
                if problem:
                    return f"{_path_name(path)} key {problem}"
                stack.append((v, (*path, k)))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(node))))
    return None


def _path_name(path: tuple) -> str:
    """("texts", 3) -> texts[3]; () -> body (as the error messages always said)."""
    if not path:
        return "body"
    name = str(path[0]) if isinstance(path[0], str) else f"body[{path[0]}]"
    for part in path[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


@dataclass
class KeyBudget:
    """Token bucket and in-flight count of one key."""

    tokens: float
    stamp: float = field(default_factory=time.monotonic)
    in_flight: int = 0


class Limits:
    def __init__(self, settings) -> None:

        self.admin = admin_keys(settings)
        self.storefront = api_keys(settings) - self.admin
        self.rate, self.burst = settings.rate_limit, settings.rate_burst
        self.key_concurrency = settings.key_concurrency
        self.max_body = settings.max_body_bytes
        self.body_timeout = settings.body_timeout_s
        self.heavy = asyncio.Semaphore(settings.heavy_concurrency)
        self.budgets: dict[str, KeyBudget] = {}

    def role(self, key: str) -> str | None:
        return ADMIN if key in self.admin else STOREFRONT if key in self.storefront else None

    def admit(self, key: str) -> KeyBudget:
        budget = self.budgets.setdefault(key, KeyBudget(tokens=float(self.burst)))
        now = time.monotonic()
        budget.tokens = min(float(self.burst), budget.tokens + (now - budget.stamp) * self.rate)
        budget.stamp = now
        if budget.tokens < 1:
            wait = max(1, round((1 - budget.tokens) / self.rate))
            raise Rejected(
                429, f"rate limit of {self.rate:g} requests/s per key exceeded", [(b"retry-after", str(wait).encode())]
            )
        if budget.in_flight >= self.key_concurrency:
            raise Rejected(429, f"more than {self.key_concurrency} requests in flight for this key")
        budget.tokens -= 1
        return budget


class Gate:
    def __init__(self, app, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits  # from the settings at the first request, unless given

    def _setup(self) -> Limits:
        if self.limits is None:
            from portrait.settings import get_settings

            self.limits = Limits(get_settings())
            # once, in the worker: INFO lines reach BentoML's root handler (the service
            # log); its logging set-up disables loggers that existed before it ran
            access_log.disabled = False
            access_log.setLevel(logging.INFO)
            quiet_client_errors()
        return self.limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, route = time.perf_counter(), route_of(scope["path"])
        status = {"code": 0}

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        key_id = "-"
        try:
            limits = self._setup()
            if route in OPEN or route == "/static_content":
                return await self.app(scope, receive, counted_send)
            if route == "unmatched":
                raise Rejected(404, "no such route; see / for the API")
            key = api_key(dict(scope.get("headers") or []))
            role = limits.role(key)
            if role is None:
                raise Rejected(401, "missing or wrong API key: send it in the X-API-Key header")
            key_id = hashlib.sha256(key.encode()).hexdigest()[:8]  # names the key in logs, reveals nothing
            if ROUTES[route] == ADMIN and role != ADMIN:
                raise Rejected(403, f"{route} needs an admin key (PORTRAIT_ADMIN_KEYS)")
            if route == "/metrics":
                return await _metrics(counted_send)
            budget = limits.admit(key)
            budget.in_flight += 1
            try:
                body = await self._body(scope, receive, limits.max_body, limits.body_timeout)
                replay = _replay(body, receive)
                notes: dict = {}
                token = request_notes.set(notes)
                try:
                    if route in HEAVY:
                        async with limits.heavy:
                            await self.app(scope, replay, ErrorBodies(counted_send, notes))
                    else:
                        await self.app(scope, replay, ErrorBodies(counted_send, notes))
                finally:
                    request_notes.reset(token)
            finally:
                budget.in_flight -= 1
        except Rejected as err:
            status["code"] = err.status
            await send_json(send, err.status, {"error": err.reason}, err.headers)
        finally:
            self._record(scope["method"], route, status["code"], time.perf_counter() - started, key_id)

    async def _body(self, scope, receive, limit: int, timeout: float) -> bytes:
        """The whole body, bounded; for POST, checked to be clean JSON."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Rejected(413, f"request body over the {limit:,}-byte limit (PORTRAIT_MAX_BODY_BYTES)")
        chunks, size = [], 0
        deadline = time.monotonic() + timeout
        while True:
            message = await _receive_by(receive, deadline)
            if message["type"] == "http.disconnect":
                raise Rejected(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Rejected(413, f"request body over the {limit:,}-byte limit (PORTRAIT_MAX_BODY_BYTES)")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if scope["method"] == "POST":
            try:
                parsed = json.loads(body) if body.strip() else {}
            except (ValueError, RecursionError) as err:
                where = f" at position {err.pos}" if isinstance(err, json.JSONDecodeError) else ""
                raise Rejected(400, f"request body is not valid JSON{where}") from None
            problem = json_shape_problem(parsed) or invalid_text(parsed)
            if problem:
                raise Rejected(400, problem)
        return body

    def _record(self, method: str, route: str, status: int, seconds: float, key_id: str) -> None:
        if route in HEALTH:
            return  # probes every few seconds: noise in the log and the metrics
        access_log.info("%s %s %s %.1fms key=%s", method, route, status, seconds * 1000, key_id)
        try:
            request_seconds().labels(route=route, method=method, status=str(status)).observe(seconds)
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            access_log.debug("cannot record metrics", exc_info=True)


class ClientErrorFilter(logging.Filter):
    """BentoML logs every failed request with its traceback, and a validation error's
    text quotes the request's values (a user id sent in the wrong field, say). A
    client error's details go to the client only: the log keeps one line, its type."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        if err is not None and _is_client_error(err):
            record.msg = f"{record.getMessage()}: client error {type(err).__name__} (details in the response only)"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def _is_client_error(err: BaseException) -> bool:
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    return isinstance(err, ValidationError) or (isinstance(err, BentoMLException) and int(err.error_code) < 500)


@functools.cache
def quiet_client_errors() -> None:
    """Put ClientErrorFilter on every handler BentoML's logging set-up installed (once per process)."""
    for logger in (logging.getLogger(), logging.getLogger("bentoml")):
        for handler in logger.handlers:
            handler.addFilter(ClientErrorFilter())


@functools.cache
def request_seconds():
    """The request histogram (prometheus_client: BentoML's multiprocess directory
    collects it from every worker for /metrics)."""
    from prometheus_client import Histogram

    return Histogram(
        "portrait_request_duration_seconds",
        "Portrait API requests by route (never by path or id), method and status",
        ["route", "method", "status"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )


async def _metrics(send) -> None:
    """Prometheus exposition: under `bentoml serve` every worker's series (the
    multiprocess directory BentoML sets up), else this process's registry."""
    import os

    import prometheus_client
    from prometheus_client import multiprocess

    registry = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    body = prometheus_client.generate_latest(registry)
    headers = [(b"content-type", prometheus_client.CONTENT_TYPE_LATEST.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _receive_by(receive, deadline: float) -> dict:
    """The next ASGI message, or 408 when the body is not in by the deadline (a client
    trickling its body must not hold its key's in-flight slot)."""
    try:
        return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise Rejected(408, "request body not received in time (PORTRAIT_BODY_TIMEOUT_S)") from None


def _replay(body: bytes, receive):
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class ErrorBodies:
    """Wraps `send`: rewrites the body of error responses (see the module docstring)."""

    def __init__(self, send, notes: dict) -> None:
        self.send, self.notes = send, notes
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message  # held until the body is known
            return
        if self.start is None:
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        status, body = self.start["status"], b"".join(self.chunks)
        if status == 503 and self.notes.get("reason"):
            return await send_json(self.send, 503, {"error": self.notes["reason"]})
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict):
            return await send_json(self.send, status, parsed[0])
        await self.send(self.start)
        await self.send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
