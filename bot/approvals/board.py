"""The approval service's `Board` on Slack: cards, their metadata, reminders, escalations, DMs and App Home.

Failures here never undo a decision: the platform is the truth, and a card that could not be
updated is set right by the next click or sync (each compares what the card shows with the request).
Every post and update goes through the Poster (bot.slack.poster): paced per channel across
processes, and never posted twice after an answer is lost.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import render as render
from bot.approvals.home import HomeData
from bot.approvals.requests import CardRef, FoundCard
from bot.approvals.service import HISTORY_PAGES
from bot.approvals.store import ApprovalRequest
from bot.core.directory import Directory, DirectoryError
from bot.render import Message
from bot.slack.poster import Poster, PostUnknown, slack_error

log = logging.getLogger(__name__)


def card_of(message: dict[str, Any], channel: str) -> FoundCard | None:
    """The request a channel message is the card of, read from its metadata."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != render.METADATA_EVENT:
        return None
    payload = metadata.get("event_payload") or {}
    request_id, enrolment_id = str(payload.get("request_id") or ""), str(payload.get("enrolment_id") or "")
    if not request_id or not enrolment_id or not message.get("ts"):
        return None
    return FoundCard(request_id, enrolment_id, str(payload.get("state") or ""), channel, str(message["ts"]))


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or exc)


class SlackBoard:
    def __init__(self, slack: AsyncWebClient, poster: Poster, channel: str | None, directory: Directory,
                 platform: str) -> None:
        self.slack = slack  # reads: history, Home
        self.poster = poster  # posts and updates
        self.channel = channel
        self.directory = directory
        self.platform = platform

    @property
    def can_post(self) -> bool:
        return bool(self.channel)

    async def post_card(self, request: ApprovalRequest) -> CardRef | None:
        assert self.channel
        message = render.card_message(request, platform=self.platform)
        try:
            posted = await self.poster.post(self.channel, message, metadata=render.card_metadata(request))
        except SlackApiError as exc:
            log.warning("could not post an approval card to %s (%s): invite the bot to the channel, and check "
                        "COURSEBOT_APPROVALS_CHANNEL", self.channel, _error(exc))
            return None
        return CardRef(posted.channel, posted.ts)

    async def post_summary(self, count: int) -> None:
        """Before a run of many new cards: one line that says how many follow."""
        assert self.channel
        try:
            await self.poster.post(self.channel, render.cards_follow_message(count))
        except (SlackApiError, PostUnknown) as exc:
            log.warning("could not post the summary of %d new requests to %s (%s)", count, self.channel,
                        slack_error(exc))

    async def update_card(self, request: ApprovalRequest, where: CardRef | None = None) -> bool:
        target = where or CardRef(request.card_channel, request.card_ts)
        if not target.channel or not target.ts:
            return False
        message = render.card_message(request, platform=self.platform)
        try:
            await self.poster.update(target.channel, target.ts, message, metadata=render.card_metadata(request))
        except Exception as exc:
            reason = _error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("could not update the card of request %s (%s); the next sync or click retries",
                        request.id, reason)
            return False
        return True

    async def find_cards(self, wanted: set[str], *, exhaustive: bool) -> dict[str, FoundCard]:
        """Cards in the approvals channel by enrolment id (newest card wins), read from the history."""
        if not self.channel:
            return {}
        found: dict[str, FoundCard] = {}
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await self.slack.conversations_history(channel=self.channel, limit=200, cursor=cursor,
                                                                  include_all_metadata=True)
            except SlackApiError as exc:
                log.warning("could not read the history of %s to find approval cards (%s): the bot needs "
                            "channels:history (groups:history for a private channel)", self.channel, _error(exc))
                break
            for message in response.get("messages") or []:
                card = card_of(message, self.channel)
                if card is not None:
                    found.setdefault(card.enrolment_id, card)
            if not exhaustive and wanted <= found.keys():
                break
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found

    async def find_card(self, where: CardRef, metadata: dict[str, Any] | None) -> FoundCard | None:
        if metadata:
            card = card_of({"metadata": metadata, "ts": where.ts}, where.channel)
            if card is not None:
                return card
        try:
            response = await self.slack.conversations_history(channel=where.channel, latest=where.ts,
                                                              oldest=where.ts, inclusive=True, limit=1,
                                                              include_all_metadata=True)
        except SlackApiError as exc:
            log.warning("could not read the clicked card in %s (%s)", where.channel, _error(exc))
            return None
        for message in response.get("messages") or []:
            if message.get("ts") == where.ts:
                return card_of(message, where.channel)
        return None

    async def remind(self, channel: str, due: list[tuple[ApprovalRequest, timedelta]]) -> bool:
        """One message into `channel` listing the requests that fell due, with links to their cards."""
        return await self._round(channel, render.reminder_message(due), render.REMINDER_EVENT, "reminder")

    async def escalate(self, due: list[tuple[ApprovalRequest, timedelta]], managers: list[str],
                       after: timedelta) -> bool:
        """One message into the approvals channel that names the requests and mentions every manager."""
        if not self.channel:
            return False
        return await self._round(self.channel, render.escalation_message(due, managers, after),
                                 render.ESCALATION_EVENT, "escalation")

    async def _round(self, channel: str, message: Message, event: str, what: str) -> bool:
        metadata = {"event_type": event, "event_payload": {"round": secrets.token_hex(8)}}
        try:
            await self.poster.post(channel, message, metadata=metadata)
        except SlackApiError as exc:
            log.warning("could not post the %s to %s (%s); the next sync tries again", what, channel,
                        slack_error(exc))
            return False
        except PostUnknown as exc:  # it may be there: not posted again, so never twice
            log.warning("the %s to %s may not have arrived: %s", what, channel, exc)
        return True

    async def tell_member(self, request: ApprovalRequest) -> None:
        """A direct message to the member, when their platform email is a Slack user's."""
        if not request.member_email:
            return
        try:
            user = await self.directory.user_by_email(request.member_email)
            if not user:
                return
            await self.poster.post(user, render.member_message(request))
        except DirectoryError as exc:
            log.info("could not look up the member of request %s in Slack: %s", request.id, exc.message)
        except (SlackApiError, PostUnknown) as exc:
            log.warning("could not tell the member of request %s (%s)", request.id, slack_error(exc))

    async def publish_home(self, user_id: str, home: HomeData | None) -> None:
        try:
            await self.slack.views_publish(user_id=user_id, view=render.home_view(home, now=time.time()))
        except SlackApiError as exc:
            log.warning("could not publish App Home for %s (%s)", user_id, _error(exc))
