"""The bot's Slack Web API client: slack_sdk's AsyncWebClient that also counts failed calls.

Every Web API call of the bot goes through `api_call`, so one override counts each failure
in `coursebot_slack_api_errors_total` by method and Slack's error code (after slack_sdk's own
retries). Listeners should use this client (`Runtime.slack`), not the per-request copy Bolt
passes as `client`, which is a plain AsyncWebClient and counts nothing.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core import metrics
from bot.core.config import Settings
from bot.slack.retries import safe_retry_handlers


class CountingWebClient(AsyncWebClient):
    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.observe_slack_error(api_method, error_code(exc))
            raise
        except (aiohttp.ClientError, TimeoutError):
            metrics.observe_slack_error(api_method, "connection_error")
            raise


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (`invalid_auth`, `channel_not_found`, …), or `http_<status>` when the body had none."""
    response = exc.response
    error = response.get("error") if response is not None and isinstance(response.data, dict) else None
    return str(error) if error else f"http_{getattr(response, 'status_code', 'unknown')}"


def make_slack_client(settings: Settings, *, retry: bool = True, timeout: int = 30) -> CountingWebClient:
    """The bot's client. `retry=False` (start-up checks, doctor): no retry handlers, so the
    caller decides about retries and slack_sdk logs no retry lines. Otherwise slack_sdk re-sends
    only what may safely arrive twice (bot.slack.retries: never a post whose answer was lost)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    handlers: list[AsyncRetryHandler] = safe_retry_handlers() if retry else []
    return CountingWebClient(token=token, base_url=settings.slack_api_url, timeout=timeout, retry_handlers=handlers)
