"""The copy of the approval rules in the approvals channel, which survives a Redis flush.

Each change posts one short message there ("@mia changed the quorum of Founders Circle: 1 → 2")
whose Slack message metadata (`event_type: coursebot_rules`) holds the whole rule book as JSON.
After Redis loses its data, `load` reads the channel's history, newest first, and returns the
first copy it finds among the bot's own messages. Changes are made one at a time (a Redis lock),
so the newest copy is the latest book.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import rules_render
from bot.approvals.rules import CourseRules, RuleChange, RulesCopyError
from bot.slack.poster import Poster, PostUnknown

log = logging.getLogger(__name__)

EVENT = "coursebot_rules"
VERSION = 1
HISTORY_PAGES = 25  # of 200 messages: the copy is found if it is among the channel's last 5,000 messages


class SlackRulesCopy:
    def __init__(self, slack: AsyncWebClient, poster: Poster, channel: str | None) -> None:
        self.slack = slack  # reads the history
        self.poster = poster  # posts, at the channel's pace
        self.channel = channel

    async def save(self, book: dict[str, CourseRules], change: RuleChange | None) -> bool:
        if not self.channel:
            return False
        rules = {cid: r.model_dump(mode="json", exclude_defaults=True) for cid, r in book.items()}
        metadata = {"event_type": EVENT,
                    "event_payload": {"version": VERSION, "rules": json.dumps(rules, separators=(",", ":"))}}
        message = rules_render.copy_message(book, change)
        try:
            await self.poster.post(self.channel, message, metadata=metadata)
        except SlackApiError as exc:
            log.warning("could not post the copy of the approval rules to %s (%s)", self.channel,
                        exc.response.get("error"))
            return False
        except PostUnknown as exc:  # posted again later: the newest copy is the one read back
            log.warning("the copy of the approval rules may not have reached %s: %s", self.channel, exc)
            return False
        return True

    async def load(self) -> dict[str, CourseRules] | None:
        if not self.channel:
            return None
        try:  # only the bot's own messages count: another app could post the same metadata
            me = str((await self.slack.auth_test()).get("user_id") or "")
        except SlackApiError as exc:
            raise RulesCopyError(str(exc.response.get("error") or exc)) from None
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await self.slack.conversations_history(channel=self.channel, limit=200, cursor=cursor,
                                                                  include_all_metadata=True)
            except SlackApiError as exc:
                raise RulesCopyError(str(exc.response.get("error") or exc)) from None
            for message in response.get("messages") or []:
                if message.get("user") != me:
                    continue
                found = _book_of(message)
                if found is not None:
                    return found
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None


def _book_of(message: dict[str, Any]) -> dict[str, CourseRules] | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != EVENT:
        return None
    payload = metadata.get("event_payload") or {}
    try:
        raw = json.loads(str(payload.get("rules") or "{}"))
        return {str(cid): CourseRules.model_validate({**value, "course_id": cid}) for cid, value in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("an unreadable copy of the approval rules in the channel (ts %s) was skipped: %s",
                    message.get("ts"), type(exc).__name__)
        return None
