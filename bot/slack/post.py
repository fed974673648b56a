"""Posting a rendered message to a channel: its pages, the first in the channel, the rest in its thread.

`Message.pages()` keeps each page within Slack's limits; a long message (or the full lists the
digest names) goes on in the thread of the first page, so the channel gets one message.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.render import Message

log = logging.getLogger(__name__)


async def post_message(slack: AsyncWebClient, channel: str, message: Message, *, thread_ts: str | None = None,
                       **extra: Any) -> AsyncSlackResponse:
    """Post `message`; `extra` (metadata, unfurl flags) goes with the first page only. Returns its response.

    A follow-up page that Slack refuses is logged and the others still go: the first page, which
    says how many more follow, is what counts."""
    pages = message.pages("thread")
    first = await slack.chat_postMessage(channel=channel, thread_ts=thread_ts, **pages[0], **extra)
    await post_follow_ups(slack, str(first["channel"]), thread_ts or str(first["ts"]), pages[1:])
    return first


async def post_follow_ups(slack: AsyncWebClient, channel: str, thread_ts: str, pages: list[dict[str, Any]]) -> int:
    """Post `pages` into a thread, in order; returns how many Slack took."""
    posted = 0
    for page in pages:
        try:
            await slack.chat_postMessage(channel=channel, thread_ts=thread_ts, unfurl_links=False,
                                         unfurl_media=False, **page)
            posted += 1
        except SlackApiError as exc:
            log.warning("could not post page %d of %d into thread %s of %s (%s)", posted + 1, len(pages), thread_ts,
                        channel, exc.response.get("error"))
    return posted
