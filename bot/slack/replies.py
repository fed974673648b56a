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
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.render import Message
from bot.slack.poster import Poster, PostUnknown

log = logging.getLogger(__name__)

SLACK_HOOKS = "hooks.slack.com"


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "").lower(), parts.port or default


class Replies:
    def __init__(self, poster: Poster, slack_api_url: str) -> None:
        self.poster = poster
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
        """Tell `user` only: through the response URL when allowed and it works, else by direct message.

        Every page of the message goes (`Message.pages`): what the response URL did not take goes by DM."""
        pages = message.pages("below")
        if response_url and self.allowed(response_url):
            sent = await self._respond_pages(response_url, pages, replace=replace, ephemeral=True)
            if sent == len(pages):
                return
            pages = pages[sent:]
        elif response_url:
            log.warning("ignored a response URL outside Slack (%s); answering by direct message",
                        urlsplit(response_url).hostname)
        await self._direct_pages(user, pages)

    async def respond(self, response_url: str, message: Message, *, replace: bool = False,
                      ephemeral: bool = True) -> bool:
        """Post to an (allowed) response URL, every page; False when the first was refused or failed."""
        if not self.allowed(response_url):
            return False
        pages = message.pages("below")
        sent = await self._respond_pages(response_url, pages, replace=replace, ephemeral=ephemeral)
        if 0 < sent < len(pages):
            log.info("response URL took %d of %d pages; the rest is not sent", sent, len(pages))
        return sent > 0

    async def _respond_pages(self, response_url: str, pages: list[dict[str, Any]], *, replace: bool,
                             ephemeral: bool) -> int:
        """How many of `pages` the response URL took, in order (the first may replace the original)."""
        for index, page in enumerate(pages):
            payload: dict[str, Any] = {**page, "replace_original": replace and index == 0}
            if ephemeral:
                payload["response_type"] = "ephemeral"
            elif index:
                payload["response_type"] = "in_channel"
            if not await self._send(response_url, payload):
                return index
        return len(pages)

    async def _send(self, response_url: str, payload: dict[str, Any]) -> bool:
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
        await self._direct_pages(user, message.pages("below"))

    async def _direct_pages(self, user: str, pages: list[dict[str, Any]]) -> None:
        """Pages by direct message, one after the other, at that conversation's pace (bot.slack.poster)."""
        try:
            for page in pages:
                await self.poster.post_page(user, page)
        except SlackApiError as exc:
            log.warning("could not answer %s privately (%s)", user, exc.response.get("error"))
        except PostUnknown as exc:
            log.warning("could not answer %s privately: %s", user, exc)
