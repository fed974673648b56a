"""`/course digest` (a private preview of today's digest) and the digest's Approve / Block buttons.

A digest button decides through the one decision path (bot.approvals.decisions), like a card:
then the digest message shows who decided, in place of its buttons.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from redis.exceptions import LockError
from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import render
from bot.approvals import render as cards
from bot.approvals.decisions import Action, Change, DecisionResult, Outcome, Subject, Via
from bot.core.grammar import Invocation
from bot.digest import keys as digest_keys
from bot.digest import render as render_digest
from bot.digest.sender import schedule, service
from bot.digest.service import utcnow
from bot.enrolment import render as enrolment_render
from bot.render.ids import ActionId
from bot.runtime import Runtime
from handlers.commands import Context
from handlers.payloads import BlockAction

log = logging.getLogger(__name__)

ACTIONS = {ActionId.DIGEST_APPROVE: Action.APPROVE, ActionId.DIGEST_BLOCK: Action.BLOCK}


async def preview(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course digest`."""
    channel = rt.settings.coursebot_digest_channel
    digest = await service(rt).build(utcnow(), channel=channel)
    return render_digest.digest_message(digest, preview=True, channel_id=channel, schedule=schedule(rt))


class DigestListeners:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def click(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        rt = self.rt
        button = render_digest.DigestButton.read(click.action.value)
        if button is None:
            await rt.replies.private(click.user_id, click.response_url,
                                     render.simple(render.md(":warning: That button is out of date.")))
            return
        action = ACTIONS[ActionId(click.action.action_id)]
        request_id = await rt.approvals.store.request_of(button.e)
        if request_id:
            change = Change(click.user_id, action, Via.DIGEST, request_id=request_id)
        else:
            change = Change(click.user_id, action, Via.DIGEST,
                            subject=Subject(course_id=button.c, member_id=button.m, enrolment_id=button.e))
        result = await rt.decisions.decide(change)
        await rt.replies.private(click.user_id, click.response_url, self._reply(result, click.user_id))
        outcome = self._outcome_block(result)
        if outcome is not None and click.card is not None:
            await update_message(rt, click.card.channel, click.card.ts, button.e, outcome,
                                 click.message.model_dump() if click.message else {})

    def _reply(self, result: DecisionResult, user: str) -> render.Message:
        if result.request is not None:
            reply = cards.decision_reply(result, platform=self.rt.platform.display_name)
            return reply or render.simple(render.md("Done."))
        return enrolment_render.change_message(result, actor=user)

    def _outcome_block(self, result: DecisionResult) -> render.Block | None:
        request = result.request
        if result.outcome not in (Outcome.DONE, Outcome.ALREADY):
            return None
        if request is not None and not request.state.open:  # the same line as the card's
            return render.context(cards.outcome_line(request, self.rt.platform.display_name, cards.LIST_NAME))
        if result.outcome is Outcome.DONE and result.record is not None:
            return render_digest.decided_block(result.action.value, result.record.actor, result.record.at)
        if result.enrolment is not None:
            return render_digest.state_block(result.enrolment.state)
        return None


async def update_message(rt: Runtime, channel: str, ts: str, enrolment_id: str, outcome: render.Block,
                         fallback: dict[str, Any]) -> None:
    """Replace the request's buttons in the posted digest with its outcome (one writer at a time)."""
    lock = rt.redis.lock(digest_keys.DIGEST_CARD_LOCK(ts), timeout=digest_keys.DIGEST_CARD_LOCK.ttl,
                         blocking_timeout=15)
    if not await lock.acquire():
        return
    try:
        message = fallback
        with contextlib.suppress(SlackApiError):
            latest = await rt.slack.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
            found = [m for m in latest.get("messages") or [] if m.get("ts") == ts]
            if found:
                message = found[0]
        blocks = render_digest.replace_decided(list(message.get("blocks") or []), enrolment_id, outcome)
        if blocks is not None:
            # The message as Slack has it, with one block replaced: sent back as it is.
            await rt.poster.update_page(channel, ts, {"text": str(message.get("text") or "Course digest"),
                                                      "blocks": blocks})
    except SlackApiError as exc:
        log.warning("digest: could not update the digest message (%s)", exc.response.get("error"))
    finally:
        with contextlib.suppress(LockError):
            await lock.release()
