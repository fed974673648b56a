"""Answering one person privately: through the request's response URL when it is Slack's, else by DM.

A response URL arrives inside the (signed) request, but the bot posts only to URLs on
`hooks.slack.com`, or on the same host and port as SLACK_API_URL (a staging or test Slack):
anything else is answered by direct message instead (contract, "response URLs").
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.render import Message

log = logging.getLogger(__name__)

SLACK_HOOKS = "hooks.slack.com"


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "").lower(), parts.port or default


class Replies:
    def __init__(self, slack: AsyncWebClient, slack_api_url: str) -> None:
        self.slack = slack
        self.api_host = _host_port(slack_api_url)

    def allowed(self, response_url: str) -> bool:
        """Only Slack's own hooks, or the Slack this bot talks to (same host and port)."""
        parts = urlsplit(response_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if parts.scheme == "https" and parts.hostname.lower() == SLACK_HOOKS:
            return True
        return _host_port(response_url) == self.api_host

    async def private(self, user: str, response_url: str, message: Message, *, replace: bool = False) -> None:
        """Tell `user` only: through the response URL when allowed and it works, else by direct message."""
        if response_url and self.allowed(response_url):
            if await self.respond(response_url, message, replace=replace):
                return
        elif response_url:
            log.warning("ignored a response URL outside Slack (%s); answering by direct message",
                        urlsplit(response_url).hostname)
        await self.direct(user, message)

    async def respond(self, response_url: str, message: Message, *, replace: bool = False,
                      ephemeral: bool = True) -> bool:
        """Post to an (allowed) response URL; False when it was refused or failed."""
        if not self.allowed(response_url):
            return False
        payload: dict[str, Any] = {**message.as_kwargs(), "replace_original": replace}
        if ephemeral:
            payload["response_type"] = "ephemeral"
        try:
            sent = await AsyncWebhookClient(response_url).send_dict(payload)
        except Exception as exc:
            log.info("response URL failed (%s)", type(exc).__name__)
            return False
        if sent.status_code != 200:
            log.info("response URL answered %s", sent.status_code)
            return False
        return True

    async def direct(self, user: str, message: Message) -> None:
        try:
            opened = await self.slack.conversations_open(users=user)
            await self.slack.chat_postMessage(channel=str(opened["channel"]["id"]), **message.as_kwargs())
        except SlackApiError as exc:
            log.warning("could not answer %s privately (%s)", user, exc.response.get("error"))
