"""The Bolt app and the ASGI web app that serves it (`POST /slack/events`, `GET /healthz`, `GET /metrics`).

In Socket Mode (bot.socket_mode) the same Bolt app takes Slack's requests from a WebSocket
instead, and the web app keeps only `/healthz` and `/metrics`: `POST /slack/events` answers 404 there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core import metrics
from bot.health import Health, read_gauges
from bot.runtime import Runtime
from bot.slack.inbound import Rejected, admit
from bot.worker import start_periodic
from handlers import wiring

log = logging.getLogger(__name__)


def build_bolt(rt: Runtime) -> AsyncApp:
    # Socket Mode requests are not signed (Bolt skips the check for them), so the secret is
    # needed only when Slack posts to /slack/events, which build_web then serves.
    if not rt.settings.socket_mode:
        rt.settings.require("slack_signing_secret")
    secret = rt.settings.slack_signing_secret
    app = AsyncApp(
        # Bolt's own logger: it copies the root's level onto it, so not "coursebot" (ours). Without a
        # name Bolt reads the whole call stack for one (inspect.stack: slow when the stack is deep).
        name="coursebot-bolt",
        client=rt.slack,
        signing_secret=secret.get_secret_value() if secret else "",
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    wiring.register(app, rt)
    return app


def build_web(rt: Runtime, bolt: AsyncApp | None = None, *, run_periodic_tasks: bool = True,
              slack_events: bool = True) -> Starlette:
    """`slack_events=False` (Socket Mode) leaves `POST /slack/events` out: 404, never an unsigned request."""
    handler = AsyncSlackRequestHandler(bolt or build_bolt(rt))
    if slack_events:
        rt.settings.require("slack_signing_secret")
    secret = rt.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value()) if slack_events and secret else None

    async def events(request: Request) -> Response:
        assert verifier is not None
        try:
            await admit(request, verifier)
        except Rejected as exc:
            return exc.response()
        try:
            return await handler.handle(request)
        except Exception as exc:  # Bolt could not make sense of a signed request: say so, once
            log.warning("could not handle a signed request to /slack/events (%s)", type(exc).__name__)
            return PlainTextResponse("bad request", status_code=400)

    health = Health(rt)

    async def healthz(request: Request) -> Response:
        status, body = await health.report()
        return JSONResponse(body, status_code=status)

    async def metrics_page(request: Request) -> Response:
        await read_gauges(rt)
        return Response(metrics.exposition(shared=True), media_type=metrics.CONTENT_TYPE)

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

    routes = [Route("/slack/events", events, methods=["POST"])] if slack_events else []
    return Starlette(routes=[*routes, Route("/healthz", healthz), Route("/metrics", metrics_page)], lifespan=lifespan)
