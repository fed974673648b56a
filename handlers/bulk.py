"""`/course invite`, its form, and the buttons of bulk jobs (Start / Cancel before it runs, Cancel while it runs).

`plan_and_start` is the whole Slack side of a bulk job, for any kind in bot.bulk.kinds: resolve
and plan, then either ask (confirmation with Start / Cancel) or start at once (queue the job and
post its progress message in the manager's DMs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import render
from bot.bulk import render as bulk_render
from bot.bulk.invite import email_params
from bot.bulk.kinds import KINDS
from bot.bulk.service import JobRecord, JobStatus
from bot.core.grammar import COMMANDS, Invocation, Ref, RefKind, parse_ref
from bot.runtime import Runtime
from bot.slack.poster import PostUnknown, slack_error
from handlers.commands import Context, CourseCommand
from handlers.payloads import BlockAction, View, ViewSubmission

log = logging.getLogger(__name__)


async def plan_and_start(rt: Runtime, user: str, kind: str, course: str, targets: Sequence[Ref], *,
                         params: dict[str, str] | None = None) -> render.Message:
    """Plan a bulk job; start it now if it is small, else return the confirmation to show."""
    plan = await rt.bulk.plan(user, kind, course, targets, params=params)
    if not plan.startable:
        return bulk_render.nothing_to_do_message(plan)
    if plan.needs_confirmation:
        return bulk_render.confirm_message(plan)
    record = await rt.bulk.claim(user, plan.record.id)
    posted = await start_job(rt, record)
    return bulk_render.started_message(plan, dm=posted)


async def start_job(rt: Runtime, record: JobRecord) -> bool:
    """Queue the job, with its progress message in the DMs of whoever started it when Slack takes it.

    The job is queued whatever Slack says: a progress message that could not be posted now is
    posted by the job itself (bot.bulk.tasks), so a confirmed job never stays unstarted."""
    snapshot = await rt.bulk.snapshot(record.id)
    assert snapshot is not None
    owner = record.confirmed_by or record.actor
    snapshot.record.status, snapshot.record.confirmed_by = JobStatus.QUEUED, record.confirmed_by
    channel, ts = owner, None
    try:
        posted = await rt.poster.post(owner, bulk_render.progress_message(snapshot))
        channel, ts = posted.channel, posted.ts
    except (SlackApiError, PostUnknown) as exc:
        log.warning("bulk job %s: the progress message could not be posted (%s); the job posts it itself",
                    record.id, slack_error(exc))
    await rt.bulk.start(record, channel=channel, ts=ts)
    return ts is not None


async def invite(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
    """`/course invite [course] [people…] [--no-email]`: with people, plan (and maybe start); without, the form."""
    # "email" is never typed: the form sets it when its "Email each person" box is ticked.
    send_email = False if "no-email" in inv.flags else True if "email" in inv.flags else None
    params = email_params(rt.platform, send_email)
    if inv.course and inv.targets:
        return await plan_and_start(rt, ctx.user, "invite", inv.course, inv.targets, params=params)
    course_id = (await rt.enrolments.resolve.course(inv.course)).id if inv.course else None  # unknown: said now
    if not ctx.trigger_id:
        return render.simple(render.md("Usage: {}", render.code(f"/course {inv.spec.usage}")))
    opened = await rt.slack.views_open(trigger_id=ctx.trigger_id, view=bulk_render.loading_modal(ctx.channel))
    courses = await rt.platform.list_courses()
    box = rt.platform.invitation_email if send_email is None else send_email
    await rt.slack.views_update(view_id=opened["view"]["id"],
                                view=bulk_render.invite_modal(courses, course_id=course_id, channel=ctx.channel,
                                                              send_email=box, platform=rt.platform.display_name))
    return None


_SPLIT = re.compile(r"[\s,;]+")


def read_form(form: View) -> tuple[str, list[Ref], dict[str, str], bool | None]:
    """The course, the people picked in the form and whether to email them (None: the form has no
    such box), or the errors to show beside its fields."""
    course = form.field("course").choice or ""
    refs = [Ref(RefKind.USER, u) for u in form.field("people").selected_users]
    refs += [Ref(RefKind.CHANNEL, c) for c in form.field("channels").selected_conversations]
    errors: dict[str, str] = {}
    bad: list[str] = []
    for token in _SPLIT.split(form.field("emails").text):
        if not token:
            continue
        ref = parse_ref(token)
        if ref.kind is RefKind.EMAIL:
            refs.append(ref)
        else:
            bad.append(token)
    if bad:
        errors["emails"] = ("Not an email: " + ", ".join(bad[:5]))[:150]
    if not course:
        errors["course"] = "Pick a course."
    if not refs and not bad:
        errors["people"] = "Pick people or channels, or type emails."
    send_email = None if "email" not in form.values else any(
        o.value == bulk_render.EMAIL_OPTION for o in form.field("email").selected_options)
    return course, list(dict.fromkeys(refs)), errors, send_email


class BulkListeners:
    def __init__(self, rt: Runtime, course_command: CourseCommand) -> None:
        self.rt = rt
        self.course_command = course_command

    async def form_submitted(self, ack: AsyncAck, submission: ViewSubmission) -> None:
        course, refs, errors, send_email = read_form(submission.view)
        if errors:
            shown: dict[str, str] = {block: render.plain(text, 2000) for block, text in errors.items()}
            await ack(response_action="errors", errors=shown)
            return
        await ack()
        user = submission.user_id
        channel = str(submission.view.metadata().get("channel") or "")
        flags = frozenset() if send_email is None else frozenset({"email" if send_email else "no-email"})
        inv = Invocation(COMMANDS["invite"], course=course, targets=tuple(refs), flags=flags,
                         text=f"invite (form) {course}")
        message = await self.course_command.run(inv, Context(user=user, channel=channel))
        if message is not None:
            await self.rt.replies.direct(user, message)

    async def start(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        rt = self.rt
        try:
            record = await rt.bulk.claim(click.user_id, click.action.value)
        except render.EXPECTED_ERRORS as exc:
            await rt.replies.private(click.user_id, click.response_url, render.error_message(exc))
            return
        await start_job(rt, record)
        labels = KINDS[record.kind].labels
        await rt.replies.respond(click.response_url, bulk_render.confirmed_message(record, labels), replace=True,
                                 ephemeral=False)

    async def discard(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        rt = self.rt
        try:
            record = await rt.bulk.cancel(click.user_id, click.action.value)
        except render.EXPECTED_ERRORS as exc:
            await rt.replies.private(click.user_id, click.response_url, render.error_message(exc))
            return
        if record.status.finished and record.confirmed_by:
            await rt.replies.private(click.user_id, click.response_url,
                                     render.simple(render.md("That job has already finished; nothing was changed.")))
            return
        if record.confirmed_by:  # someone started it first: it is running, and now cancelling
            note = "It had already started; it stops now and the report says who was done."
            await rt.replies.private(click.user_id, click.response_url, bulk_render.claimed_message(record, note))
            return
        await rt.replies.respond(click.response_url, bulk_render.discarded_message(record, click.user_id),
                                 replace=True, ephemeral=False)

    async def cancel(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        rt = self.rt
        try:
            record = await rt.bulk.cancel(click.user_id, click.action.value)
        except render.EXPECTED_ERRORS as exc:
            await rt.replies.private(click.user_id, click.response_url, render.error_message(exc))
            return
        if record.status.finished:
            await rt.replies.private(click.user_id, click.response_url,
                                     render.simple(render.md("That job has already finished; nothing was changed.")))
            return
        snapshot = await rt.bulk.snapshot(click.action.value)
        if snapshot is not None:
            await rt.replies.respond(click.response_url, bulk_render.progress_message(snapshot), replace=True,
                                     ephemeral=False)
