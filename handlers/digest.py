"""`/course digest` (a private preview of today's digest) and the digest's Approve / Block buttons."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import LockError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot import render
from bot.approvals import render as cards
from bot.approvals.service import Outcome
from bot.approvals.store import Decision
from bot.core.errors import UserFacingError
from bot.core.grammar import Invocation, Ref, RefKind
from bot.core.store import audit
from bot.digest import keys as digest_keys
from bot.digest import render as render_digest
from bot.digest.sender import schedule, service
from bot.digest.service import utcnow
from bot.enrolment.service import Action
from bot.platforms.base import PlatformError
from bot.runtime import Runtime
from bot.slack.directory import DirectoryError
from handlers.commands import Context, runs

log = logging.getLogger(__name__)

ACTIONS = {render_digest.APPROVE_ACTION: Action.APPROVE, render_digest.BLOCK_ACTION: Action.BLOCK}


@runs("digest")
async def _preview(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    channel = rt.settings.coursebot_digest_channel
    digest = await service(rt).build(utcnow(), channel=channel)
    return render_digest.digest_message(digest, preview=True, channel=channel, schedule=schedule(rt))


async def decide(rt: Runtime, user: str, action: Action,
                 value: dict[str, str]) -> tuple[render.Message, render.Block | None]:
    """Apply one digest click at most once; returns the clicker's reply and the card's new block (or None)."""
    enrolment_id, course_id, member_id = value["e"], value["c"], value["m"]
    if rt.approvals.available:
        request_id = await rt.approvals.store.request_of(enrolment_id)
        if request_id:
            return await decide_request(rt, user, action, request_id)
    if not await rt.permissions.is_manager(user):
        await audit(rt.redis, actor=user, action=action.value, target=f"enrolment {enrolment_id}",
                    outcome="refused", detail="not a manager (digest button)")
        return render.refusal_message(rt.permissions.refusal()), None
    claim_key = digest_keys.DIGEST_DECISION(enrolment_id)
    now = datetime.now(UTC)
    claim = json.dumps({"user": user, "action": action.value, "at": now.timestamp()})
    if not await rt.redis.set(claim_key, claim, nx=True, ex=digest_keys.DIGEST_DECISION.ttl):
        earlier = json.loads(await rt.redis.get(claim_key) or "{}")
        if not earlier:  # released between our SET and GET: someone's attempt failed; let this click retry
            return render.simple(":hourglass_flowing_sand: Someone else just tried this one. Try again."), None
        done = "approved" if earlier.get("action") == "approve" else "blocked"
        at = datetime.fromtimestamp(float(earlier.get("at", 0)), UTC)
        text = f"Nothing changed: this request was already {done} by {render.mention(earlier.get('user', ''))}."
        return render.simple(text), render_digest.decided_block(earlier.get("action", ""), earlier.get("user", ""), at)
    try:
        result = await rt.enrolments.change(user, action, course_id, Ref(RefKind.ID, member_id))
    except (UserFacingError, PlatformError, DirectoryError) as exc:
        await rt.redis.delete(claim_key)  # nothing was decided: the next click may try again
        if isinstance(exc, UserFacingError):
            return render.user_error_message(exc), None
        if isinstance(exc, PlatformError):
            return render.platform_error_message(exc), None
        return render.simple(f":warning: {render.esc(exc.message)}"), None
    if not result.changed:  # decided elsewhere already: show what is, not a decision nobody made here
        return render.change_message(result, actor=user), render_digest.state_block(result.enrolment.state)
    return render.change_message(result, actor=user), render_digest.decided_block(action.value, user, now)


async def decide_request(rt: Runtime, user: str, action: Action,
                         request_id: str) -> tuple[render.Message, render.Block | None]:
    """The approval request's own exactly-once path: its claim, its card, the member's message."""
    platform = rt.platform.display_name
    try:
        result = await rt.approvals.decide(request_id, Decision(action.value), user, via="digest")
    except PlatformError as exc:
        return render.platform_error_message(exc), None
    reply = cards.decision_reply(result, platform=platform) or render.simple("Done.")
    request = result.request
    if request is None or request.state.open or result.outcome in (Outcome.NOT_ALLOWED, Outcome.OWN):
        return reply, None
    return reply, render.context(cards.outcome_line(request, platform))


async def update_card(rt: Runtime, channel: str, ts: str, enrolment_id: str, outcome: render.Block,
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
            await rt.slack.chat_update(channel=channel, ts=ts, text=str(message.get("text") or "Course digest"),
                                       blocks=blocks)
    except SlackApiError as exc:
        log.warning("digest: could not update the digest message (%s)", exc.response.get("error"))
    finally:
        with contextlib.suppress(LockError):
            await lock.release()


def register(app: AsyncApp, rt: Runtime) -> None:
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = body["user"]["id"]
        try:
            value = json.loads(action.get("value") or "{}")
            enrolment_id = str(value["e"])
        except (ValueError, KeyError, TypeError):
            await respond(**render.simple(":warning: That button is out of date.").as_kwargs(),
                          response_type="ephemeral", replace_original=False)
            return
        reply, outcome = await decide(rt, user, ACTIONS[action["action_id"]], value)
        await respond(**reply.as_kwargs(), response_type="ephemeral", replace_original=False)
        container = body.get("container") or {}
        if outcome is not None and not container.get("is_ephemeral") and container.get("message_ts"):
            await update_card(rt, str(container.get("channel_id")), str(container["message_ts"]), enrolment_id,
                              outcome, body.get("message") or {})

    for action_id in ACTIONS:
        app.action(action_id)(on_click)
