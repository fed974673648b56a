"""Approval clicks (cards, `/course pending`, App Home), the Block dialog, Approve all, and `/course pending`.

Every click is acknowledged first; the decision itself is `rt.decisions.decide`, the one
decision path, whichever surface the button was on. The gate (managers and approvers) is the
edge's (handlers.middleware); the decision path checks the course itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import render
from bot.approvals import render as cards
from bot.approvals.decisions import Action, Change, DecisionResult, Outcome, Via
from bot.approvals.render import RequestButton
from bot.approvals.requests import CardRef
from bot.background import APPROVE_ALL
from bot.core.grammar import Invocation
from bot.core.pacing import Budget
from bot.platforms.base import PlatformError
from bot.runtime import Runtime
from handlers.commands import Context
from handlers.payloads import AppHomeOpened, BlockAction, ViewSubmission

log = logging.getLogger(__name__)

VIA = {"card": Via.CARD, "list": Via.LIST, "home": Via.HOME}


async def pending_list(rt: Runtime, user: str, course_id: str | None, *, note: render.Mrkdwn = render.EMPTY,
                       with_rest: bool = True) -> render.Message:
    """The waiting requests this person may decide: all for a manager, their courses' for an approver."""
    requests = await rt.approvals.waiting(course_id)
    courses = await rt.permissions.decidable_courses(user)
    if courses is not None:
        requests = [r for r in requests if r.course_id in courses]
    course = None
    if course_id:
        cached = (await rt.approvals.store.courses()).get(course_id)
        course = cached.title if cached else next((r.course_title for r in requests), f"course {course_id}")
    batch_id = await rt.approvals.store.save_batch([r.id for r in requests]) if len(requests) > 1 else None
    return cards.pending_message(requests, course=course, batch_id=batch_id, platform=rt.platform.display_name,
                                 last_synced=await rt.approvals.store.last_synced(), now=time.time(), note=note,
                                 course_id=course_id, with_rest=with_rest)


async def pending(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course pending [course]`."""
    course_id = (await rt.enrolments.resolve.course(inv.course)).id if inv.course else None
    last = await rt.approvals.store.last_synced()
    note = render.EMPTY
    if last is None or time.time() - last > 3 * rt.settings.coursebot_sync_seconds:
        # No worker seems to be syncing (or this is the shell): read the platform now.
        try:
            await sync_until_recorded(rt)
        except PlatformError as exc:
            note = render.md(":warning: {} This is what was known before.", render.sentence(exc.message))
    return await pending_list(rt, ctx.user, course_id, note=note)


_syncing: set[asyncio.Task[object]] = set()


async def sync_until_recorded(rt: Runtime) -> None:
    """Run a sync, but return once it has recorded the waiting requests: its cards go out at
    Slack's pace (a minute for 60 new ones), which the answer does not wait for."""
    recorded = asyncio.Event()
    task: asyncio.Task[object] = asyncio.create_task(rt.approvals.sync(recorded=recorded))
    waiter = asyncio.create_task(recorded.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # a platform failure is the caller's to tell
        return
    _syncing.add(task)
    task.add_done_callback(_synced)


def _synced(task: asyncio.Task[object]) -> None:
    _syncing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("the approval sync started by /course pending failed: %s", task.exception())


class ApprovalListeners:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def approve(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        await self._decide(click, Action.APPROVE)

    async def retry(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        button = RequestButton.read(click.action.value)
        request = await self.rt.approvals.store.get(button.r)
        if request is not None and request.state.open and not request.failed_action:
            await self.rt.replies.private(click.user_id, click.response_url, render.simple(render.md(
                "Nothing to retry: the request is waiting; use Approve or Block.")))
            return
        failed = request.failed_action if request is not None else ""
        action = Action.BLOCK if failed == Action.BLOCK.value else Action.APPROVE
        await self._decide(click, action, reason=request.reason if request is not None else "")

    async def block(self, ack: AsyncAck, click: BlockAction) -> None:
        """Block… opens a dialog for the reason; a request decided already is set right instead."""
        await ack()
        button = RequestButton.read(click.action.value)
        request = await self.rt.approvals.store.get(button.r)
        metadata = click.message.metadata if click.message else None
        if request is None and click.card is not None:
            request = await self.rt.approvals.book.recover(click.card, metadata)
        if request is None or not request.state.open:
            await self._decide(click, Action.BLOCK)  # nothing to confirm: it sets the card right and says so
            return
        if not await self.rt.permissions.may_decide(click.user_id, request.course_id):
            await self._decide(click, Action.BLOCK)  # refused, audited and answered by the decision path
            return
        dialog = cards.BlockDialog(r=request.id, via=click.surface, u=click.response_url, k=button.k,
                                   c=click.card.channel if click.card else None,
                                   t=click.card.ts if click.card else None)
        try:
            await self.rt.slack.views_open(trigger_id=click.trigger_id, view=cards.block_dialog(request, dialog))
        except SlackApiError as exc:
            log.warning("could not open the Block dialog (%s)", exc.response.get("error"))
            await self.rt.replies.private(click.user_id, click.response_url, render.simple(render.md(
                ":warning: Slack did not open the Block dialog in time; nothing was changed. Press Block again.")))

    async def block_confirmed(self, ack: AsyncAck, submission: ViewSubmission) -> None:
        await ack()
        dialog = cards.BlockDialog.read(submission.view.private_metadata)
        reason = submission.view.field(cards.REASON_BLOCK, cards.REASON_BLOCK).text
        origin = CardRef(dialog.c, dialog.t) if dialog.c and dialog.t else None
        change = Change(submission.user_id, Action.BLOCK, VIA.get(dialog.via, Via.CARD), request_id=dialog.r,
                        reason=reason.strip()[:500], origin=origin)
        result = await self.rt.decisions.decide(change)
        await self._answer(submission.user_id, dialog.via, dialog.u, dialog.k, result)

    async def approve_all(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        rt = self.rt
        ids = await rt.approvals.store.take_batch(click.action.value)
        if ids is None:
            await rt.replies.private(click.user_id, click.response_url, render.simple(render.md(
                "This list was already used or is out of date; nothing was changed. Run `/course pending` again.")))
            return
        await rt.jobs.enqueue(APPROVE_ALL, key=f"approve-all:{click.action.value}", actor=click.user_id,
                              request_ids=ids, response_url=click.response_url)
        budget = rt.platform.rate_budget()
        per_second = budget.per_second() if isinstance(budget, Budget) else None
        await rt.replies.private(click.user_id, click.response_url,
                                 cards.batch_started(len(ids), per_second, rt.platform.display_name), replace=True)

    async def home_opened(self, event: AppHomeOpened) -> None:
        if event.tab == "home":
            await self.rt.approvals.opened_home(event.user)

    # ---- the decision and the answer ---------------------------------------------------------------

    async def _decide(self, click: BlockAction, action: Action, *, reason: str = "") -> None:
        button = RequestButton.read(click.action.value)
        metadata = click.message.metadata if click.message else None
        change = Change(click.user_id, action, VIA[click.surface], request_id=button.r, reason=reason,
                        origin=click.card, origin_metadata=metadata)
        result = await self.rt.decisions.decide(change)
        await self._answer(click.user_id, click.surface, click.response_url, button.k, result)

    async def _answer(self, user: str, surface: str, response_url: str, list_course: str | None,
                      result: DecisionResult) -> None:
        """Tell the clicker what happened, on the surface they clicked."""
        rt = self.rt
        platform = rt.platform.display_name
        if surface == "list" and result.outcome in (Outcome.DONE, Outcome.ALREADY) and result.request:
            note = cards.outcome_line(result.request, platform)
            if result.outcome is Outcome.ALREADY:
                note = render.md("Nothing to change: {}", note)
            redrawn = await pending_list(rt, user, list_course or None, note=note, with_rest=False)
            await rt.replies.private(user, response_url, redrawn, replace=True)
            return
        if result.outcome is Outcome.DONE and surface in ("card", "home"):
            return  # the card (or Home) now shows it, to everyone
        if result.outcome is Outcome.ALREADY and surface == "home":
            await rt.approvals.opened_home(user)  # Home was behind: show what is true now
            return
        if result.outcome is Outcome.FAILED and surface == "card":
            return  # the card says so, with Retry
        message = cards.decision_reply(result, platform=platform)
        if message is not None:
            await rt.replies.private(user, response_url, message)
