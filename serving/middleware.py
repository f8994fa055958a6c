"""ASGI middleware of the Portrait service: the API key on every route but
health checks and the docs, and error bodies that say what went wrong (a 503
carries its reason, which BentoML would hide; a 4xx is one {"error": ...} object)."""

from __future__ import annotations

import json
from typing import Any

from serving.errors import request_notes


class ApiKeyMiddleware:
    OPEN = ("/livez", "/readyz", "/healthz", "/docs.json", "/docs", "/static_content")

    def __init__(self, app) -> None:
        self.app = app
        self.keys: set[str] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/" or scope["path"].startswith(self.OPEN):
            return await self.app(scope, receive, send)
        if self.keys is None:
            from portrait.settings import api_keys, get_settings

            self.keys = api_keys(get_settings())
        key = dict(scope.get("headers") or []).get(b"x-api-key", b"").decode("latin-1")
        if key not in self.keys:
            return await send_json(send, 401, {"error": "missing or wrong API key: send it in the X-API-Key header"})
        notes: dict = {}
        token = request_notes.set(notes)
        try:
            await self.app(scope, receive, ErrorBodies(send, notes))
        finally:
            request_notes.reset(token)


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


async def send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
