"""slack_sdk retry handlers that never re-send a call Slack may already have carried out.

slack_sdk's connection-error and server-error handlers re-send the same request. For a read, or
for `chat.update` (which sets a message to what it is given), that is harmless. For
`chat.postMessage` it is not: after a reset connection or a 500, Slack may have posted the
message already, and a blind re-send posts it twice. So those handlers here re-send only
idempotent methods; the others fail to their caller, which knows what it sent and looks before
posting again (bot.slack.poster: by the message's metadata).

Two re-sends stay for every method, because nothing was carried out:
- a connection that could not be opened at all (`ClientConnectorError`: the request never left);
- HTTP 429 `ratelimited`, where Slack says it did nothing. Except for the two paced methods,
  `chat.postMessage` and `chat.update`: their 429 goes back to the Poster, which waits out
  `Retry-After` for every process at once (a hold in Redis) and then sends the message again.
"""

from __future__ import annotations

from aiohttp import ClientConnectorError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

# Methods whose repetition changes nothing more than the first call did.
IDEMPOTENT_WRITES = frozenset({
    "chat.update", "chat.delete", "views.publish", "views.update", "conversations.open",
    "files.getUploadURLExternal",
})
READ_SUFFIXES = (".info", ".list", ".history", ".replies", ".members", ".lookupByEmail", ".getPermalink",
                 ".test")
# Sent through bot.slack.poster, which handles their 429 itself (shared hold, then re-sent).
PACED = frozenset({"chat.postMessage", "chat.update"})


def method_of(request: HttpRequest) -> str:
    """`chat.postMessage` from `https://slack.com/api/chat.postMessage?...`."""
    return request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def idempotent(method: str) -> bool:
    return method in IDEMPOTENT_WRITES or method.endswith(READ_SUFFIXES)


class SafeConnectionErrorRetryHandler(AsyncConnectionErrorRetryHandler):
    """Re-sends after a broken connection only what may safely arrive twice."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if isinstance(error, ClientConnectorError):
            return True  # the connection never opened: nothing was sent
        if not idempotent(method_of(request)):
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class SafeServerErrorRetryHandler(AsyncServerErrorRetryHandler):
    """Re-sends after a 500/503 only what may safely arrive twice."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if not idempotent(method_of(request)):
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class UnpacedRateLimitErrorRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Waits out `Retry-After` and re-sends, except for the methods the Poster paces itself."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if method_of(request) in PACED:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


def safe_retry_handlers() -> list[AsyncRetryHandler]:
    """The bot client's retry handlers (see the module docstring)."""
    return [
        SafeConnectionErrorRetryHandler(max_retry_count=2),
        UnpacedRateLimitErrorRetryHandler(max_retry_count=3),
        SafeServerErrorRetryHandler(max_retry_count=2),
    ]
