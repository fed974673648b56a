"""The Bolt app and the ASGI web app that serves it (`POST /slack/events`, `GET /healthz`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import handlers
from bot.runtime import Runtime
from bot.worker import start_periodic

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


def build_web(rt: Runtime, bolt: AsyncApp | None = None, *, run_periodic_tasks: bool = True) -> Starlette:
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # With the embedded store no worker can share this process's state, so the web
        # process runs the periodic tasks itself.
        stop = asyncio.Event()
        tasks = start_periodic(rt, stop) if rt.settings.embedded_store and run_periodic_tasks else []
        yield
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz)],
                     lifespan=lifespan)
