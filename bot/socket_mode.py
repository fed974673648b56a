"""Socket Mode: Slack's requests arrive over a WebSocket the bot opens, so no public URL is needed.

With `SLACK_APP_TOKEN` set, `coursebot serve` asks `apps.connections.open` (under `SLACK_API_URL`,
with the app-level token) for a WebSocket URL and hands every envelope on it (slash commands,
clicks, view submissions, options, events) to the same Bolt app and listeners HTTP mode uses,
through Bolt's aiohttp Socket Mode handler. The web app (`/healthz`, and whatever else it serves)
keeps listening on `$PORT` in the same event loop; `POST /slack/events` is not served (404), since
without the signing secret nobody could tell Slack's requests from anyone else's.

The connection lives inside the web app's lifespan: it opens once the web app has started and
closes first at shutdown, so a SIGTERM (uvicorn's graceful shutdown) stops new envelopes before the
process ends. Reconnecting is slack_sdk's: a `disconnect` message makes it ask for a new URL and
connect again; a connection that closes, or stops answering pings, is replaced by its monitor,
which looks every `ping_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette

from bot.core.config import ConfigError, Settings, exit_on_config_error
from bot.serving import WebServer

log = logging.getLogger(__name__)

PING_SECONDS = 10.0  # Bolt's default: how often the connection is pinged and checked


def app_client(settings: Settings) -> AsyncWebClient:
    """A Web API client holding the app-level token, for `apps.connections.open` under SLACK_API_URL."""
    assert settings.slack_app_token is not None
    return AsyncWebClient(
        token=settings.slack_app_token.get_secret_value(),
        base_url=settings.slack_api_url,
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2),
                        AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


async def open_url(client: AsyncWebClient, app_token: str) -> str:
    """One `apps.connections.open`: the WebSocket URL, or a ConfigError naming what to fix."""
    try:
        response = await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
        raise ConfigError(
            f"SLACK_APP_TOKEN: Slack refused to open a Socket Mode connection ({error}). Use the app-level token "
            "(xapp-…) from Basic Information › App-Level Tokens, with the connections:write scope, and turn on "
            "Socket Mode for the app."
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ConfigError(
            f"SLACK_API_URL: could not reach Slack at {client.base_url} to open the Socket Mode connection "
            f"({type(exc).__name__})."
        ) from None
    url = response.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError("SLACK_API_URL: apps.connections.open answered without a WebSocket URL.")
    return url


class SocketModeServer:
    """`$PORT` (uvicorn) and the Socket Mode connection, in one event loop.

    `await serve()` checks the app token first (one `apps.connections.open`; its URL is the one
    the connection then uses), then serves until `stop()` or a signal.
    """

    def __init__(self, web: Starlette, bolt: AsyncApp, settings: Settings, *, port: int, host: str = "0.0.0.0",
                 ping_interval: float = PING_SECONDS, on_started: Callable[[], None] | None = None) -> None:
        if settings.slack_app_token is None:
            raise ConfigError("SLACK_APP_TOKEN is required for Socket Mode but not set")
        self.settings = settings
        self.bolt = bolt
        self.ping_interval = ping_interval
        self.handler: AsyncSocketModeHandler | None = None
        self._token = settings.slack_app_token.get_secret_value()
        self._client: AsyncWebClient | None = None
        self._first_url: str | None = None
        self._hold_connection(web)
        self.server = WebServer(web, host=host, port=port, on_started=on_started)

    async def serve(self) -> None:
        self._client = app_client(self.settings)
        self._first_url = await open_url(self._client, self._token)
        await self.server.serve()

    def stop(self) -> None:
        self.server.should_exit = True

    async def connected(self) -> bool:
        """Whether the WebSocket is open now (for health checks)."""
        return self.handler is not None and await self.handler.client.is_connected()

    def _hold_connection(self, web: Starlette) -> None:
        """Wrap the web app's lifespan: its start-up, then the connection; at the end, the reverse."""
        inner = web.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with inner(app):
                await self._connect()
                try:
                    yield
                finally:
                    await self._close()

        web.router.lifespan_context = lifespan

    async def _connect(self) -> None:
        if self._client is None:  # served without serve(): check the token here
            self._client = app_client(self.settings)
        handler = AsyncSocketModeHandler(self.bolt, app_token=self._token, web_client=self._client,
                                         ping_interval=self.ping_interval)
        # Use the URL the start-up check was given: apps.connections.open is Tier 1, so not twice in a row.
        handler.client.wss_uri = self._first_url or await open_url(self._client, self._token)
        self._first_url = None
        self.handler = handler
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Socket Mode connection to Slack open")

    async def _close(self) -> None:
        if self.handler is not None:
            with contextlib.suppress(Exception):
                await self.handler.close_async()  # type: ignore[no-untyped-call]
            log.info("Socket Mode connection to Slack closed")


def run(web: Starlette, bolt: AsyncApp, settings: Settings, *, port: int,
        on_started: Callable[[], None] | None = None) -> None:
    """`coursebot serve` in Socket Mode: returns when the server stops; a refused token exits with status 2."""
    server = SocketModeServer(web, bolt, settings, port=port, on_started=on_started)
    try:
        asyncio.run(server.serve())
    except ConfigError as exc:
        exit_on_config_error(exc)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has already shut down (as uvicorn.run does)
        pass
