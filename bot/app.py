"""The Bolt app and the ASGI web app that serves it (`POST /slack/events`, `GET /healthz`)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import handlers
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def build_bolt(rt: Runtime) -> AsyncApp:
    rt.settings.require("slack_signing_secret")
    assert rt.settings.slack_signing_secret is not None
    app = AsyncApp(
        client=rt.slack,
        signing_secret=rt.settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a listener: %s", type(error).__name__, exc_info=error)

    handlers.register(app, rt)
    return app


def build_web(rt: Runtime, bolt: AsyncApp | None = None) -> Starlette:
    handler = AsyncSlackRequestHandler(bolt or build_bolt(rt))

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        try:
            await rt.redis.ping()
        except Exception as exc:
            return JSONResponse({"ok": False, "store": type(exc).__name__}, status_code=503)
        store = "embedded" if rt.settings.embedded_store else "redis"
        return JSONResponse({"ok": True, "store": store, "platform": rt.platform.name})

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz)])
