"""Approval clicks (cards, `/course pending`, App Home), the Block dialog, and `/course pending`.

Every click is acknowledged first; the decision itself is `rt.approvals.decide`, the one
exactly-once path, whichever surface the button was on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import render
from bot.approvals import render as cards
from bot.approvals.service import CardRef, DecisionResult, Outcome
from bot.approvals.store import Decision
from bot.core.grammar import Invocation
from bot.core.pacing import Budget
from bot.core.store import audit
from bot.platforms.base import PlatformError
from bot.runtime import Runtime
from handlers.commands import Context, runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Click:
    """Who clicked which request where, read from a block_actions payload."""

    user: str
    value: str
    surface: str  # "card", "list" (an ephemeral /course pending reply) or "home"
    origin: CardRef | None
    metadata: dict[str, Any] | None
    response_url: str
    trigger_id: str
    list_course: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        surface, origin, metadata, course = "card", None, None, None
        if container.get("type") == "view":
            surface = "home"
        elif container.get("is_ephemeral"):
            surface = "list"
            parts = str(action.get("block_id") or "").split(":")
            course = parts[1] if len(parts) == 3 and parts[0] == "approval-list" and parts[1] else None
        elif container.get("channel_id") and container.get("message_ts"):
            origin = CardRef(str(container["channel_id"]), str(container["message_ts"]))
            metadata = (body.get("message") or {}).get("metadata")
        return cls(user=str(body["user"]["id"]), value=str(action.get("value") or ""), surface=surface,
                   origin=origin, metadata=metadata, response_url=str(body.get("response_url") or ""),
                   trigger_id=str(body.get("trigger_id") or ""), list_course=course)


async def reply(rt: Runtime, user: str, response_url: str, message: render.Message, *,
                replace: bool = False) -> None:
    """A private answer: through the response_url when there is one, else a direct message."""
    if response_url:
        try:
            sent = await AsyncWebhookClient(response_url).send(**message.as_kwargs(), response_type="ephemeral",
                                                               replace_original=replace)
            if sent.status_code == 200:
                return
            log.info("response_url answered %s; sending a direct message instead", sent.status_code)
        except Exception as exc:
            log.info("response_url failed (%s); sending a direct message instead", type(exc).__name__)
    try:
        opened = await rt.slack.conversations_open(users=user)
        await rt.slack.chat_postMessage(channel=str(opened["channel"]["id"]), **message.as_kwargs())
    except SlackApiError as exc:
        log.warning("could not answer %s privately (%s)", user, exc.response.get("error"))


async def pending_list(rt: Runtime, course_id: str | None, *, note: str = "") -> render.Message:
    requests = await rt.approvals.waiting(course_id)
    course = None
    if course_id is not None:
        cached = (await rt.approvals.store.courses()).get(course_id)
        course = cached.title if cached else next((r.course_title for r in requests), f"course {course_id}")
    batch_id = await rt.approvals.store.save_batch([r.id for r in requests]) if len(requests) > 1 else None
    return cards.pending_message(requests, course=course, batch_id=batch_id, platform=rt.platform.display_name,
                                 last_synced=await rt.approvals.store.last_synced(), now=time.time(), note=note,
                                 course_id=course_id)


async def answer(rt: Runtime, click: Click, result: DecisionResult) -> None:
    """Tell the clicker what happened, on the surface they clicked."""
    platform = rt.platform.display_name
    if click.surface == "list" and result.outcome in (Outcome.DONE, Outcome.ALREADY) and result.request:
        note = cards.outcome_line(result.request, platform)
        if result.outcome is Outcome.ALREADY:
            note = "Nothing to change: " + note
        await reply(rt, click.user, click.response_url,
                    await pending_list(rt, click.list_course, note=note), replace=True)
        return
    if result.outcome is Outcome.DONE and click.surface in ("card", "home"):
        return  # the card (or Home) now shows it, to everyone
    if result.outcome is Outcome.ALREADY and click.surface == "home":
        await rt.approvals.opened_home(click.user)  # Home was behind: show what is true now
        return
    if result.outcome is Outcome.FAILED and click.surface == "card":
        return  # the card says so, with Retry
    message = cards.decision_reply(result, platform=platform)
    if message is not None:
        await reply(rt, click.user, click.response_url, message)


async def decide(rt: Runtime, click: Click, decision: Decision, *, reason: str = "") -> None:
    try:
        result = await rt.approvals.decide(click.value, decision, click.user, reason=reason, via=click.surface,
                                           origin=click.origin, origin_metadata=click.metadata)
    except PlatformError as exc:  # reading the enrolment failed before any claim was made
        await reply(rt, click.user, click.response_url, render.platform_error_message(exc))
        return
    await answer(rt, click, result)


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.action(cards.APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await decide(rt, Click.of(body), Decision.APPROVE)

    @app.action(cards.RETRY)
    async def retry(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        request = await rt.approvals.store.get(click.value)
        if request is not None and request.state.open and not request.failed_action:
            await reply(rt, click.user, click.response_url, render.simple("Nothing to retry: the request is "
                                                                          "waiting; use Approve or Block."))
            return
        failed = request.failed_action if request is not None else ""
        decision = Decision(failed) if failed in {d.value for d in Decision} else Decision.APPROVE
        await decide(rt, click, decision, reason=request.reason if request is not None else "")

    @app.action(cards.BLOCK)
    async def block(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        if not await rt.permissions.is_manager(click.user):
            await audit(rt.redis, actor=click.user, action="block", target=f"request {click.value[:64]}",
                        outcome="refused", detail="not a manager")
            await reply(rt, click.user, click.response_url, render.refusal_message(rt.permissions.refusal()))
            return
        request = await rt.approvals.store.get(click.value)
        if request is None and click.origin is not None:
            request = await rt.approvals.recover(click.origin, click.metadata)
        if request is None or not request.state.open:
            await decide(rt, click, Decision.BLOCK)  # nothing to confirm: it sets the card right and says so
            return
        metadata = {"r": request.id, "via": click.surface, "u": click.response_url}
        if click.origin is not None:
            metadata |= {"c": click.origin.channel, "t": click.origin.ts}
        if click.list_course:
            metadata["k"] = click.list_course
        try:
            await rt.slack.views_open(trigger_id=click.trigger_id, view=cards.block_dialog(request, metadata))
        except SlackApiError as exc:
            log.warning("could not open the Block dialog (%s)", exc.response.get("error"))
            await reply(rt, click.user, click.response_url, render.simple(
                ":warning: Slack did not open the Block dialog in time; nothing was changed. Press Block again."))

    @app.view(cards.BLOCK_VIEW)
    async def block_confirmed(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        meta = json.loads(view.get("private_metadata") or "{}")
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(cards.REASON_BLOCK) or {}).get(cards.REASON_BLOCK) or {}).get("value") or "")
        origin = CardRef(str(meta["c"]), str(meta["t"])) if meta.get("c") and meta.get("t") else None
        click = Click(user=str(body["user"]["id"]), value=str(meta.get("r") or ""),
                      surface=str(meta.get("via") or "card"), origin=origin, metadata=None,
                      response_url=str(meta.get("u") or ""), trigger_id="", list_course=meta.get("k"))
        await decide(rt, click, Decision.BLOCK, reason=reason.strip()[:500])

    @app.action(cards.APPROVE_ALL)
    async def approve_all(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        if not await rt.permissions.is_manager(click.user):
            await audit(rt.redis, actor=click.user, action="approve all", target="pending list", outcome="refused",
                        detail="not a manager")
            await reply(rt, click.user, click.response_url, render.refusal_message(rt.permissions.refusal()))
            return
        ids = await rt.approvals.store.take_batch(click.value)
        if ids is None:
            await reply(rt, click.user, click.response_url, render.simple(
                "This list was already used or is out of date; nothing was changed. Run `/course pending` again."))
            return
        await rt.jobs.enqueue("approval_approve_all", key=f"approve-all:{click.value}", actor=click.user,
                              request_ids=ids, response_url=click.response_url)
        budget = getattr(rt.platform, "writes", None)
        per_second = budget.per_second() if isinstance(budget, Budget) else None
        await reply(rt, click.user, click.response_url,
                    cards.batch_started(len(ids), per_second, rt.platform.display_name), replace=True)


@runs("pending")
async def _pending(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    course_id = (await rt.enrolments.resolve.course(inv.course)).id if inv.course else None
    last = await rt.approvals.store.last_synced()
    note = ""
    if last is None or time.time() - last > 3 * rt.settings.coursebot_sync_seconds:
        # No worker seems to be syncing (or this is the shell): read the platform now.
        try:
            await rt.approvals.sync()
        except PlatformError as exc:
            note = f":warning: {render.esc(exc.message)} This is what was known before."
    return await pending_list(rt, course_id, note=note)
