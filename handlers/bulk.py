"""`/course invite`, its form, and the buttons of bulk jobs (Start / Cancel before it runs, Cancel while it runs).

`plan_and_start` is the whole Slack side of a bulk job, for any kind registered in
bot.bulk.service: resolve and plan, then either ask (confirmation with Start / Cancel) or
start at once (post the progress message in the manager's DMs and queue the job).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot import render
from bot.bulk import render as bulk_render
from bot.bulk.kinds import KINDS
from bot.bulk.service import JobRecord, JobStatus
from bot.core.errors import UserFacingError
from bot.core.grammar import COMMANDS, Invocation, Ref, RefKind, parse_ref
from bot.enrolment.resolve import match_courses
from bot.platforms.base import PlatformError
from bot.runtime import Runtime
from bot.slack.directory import DirectoryError
from handlers.commands import Context, run_command, runs

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
    await start_job(rt, record)
    return bulk_render.started_message(plan, dm=True)


async def start_job(rt: Runtime, record: JobRecord) -> None:
    """Post the progress message in the DMs of whoever started it, then queue the job."""
    snapshot = await rt.bulk.snapshot(record.id)
    assert snapshot is not None
    snapshot.record.status, snapshot.record.confirmed_by = JobStatus.QUEUED, record.confirmed_by
    posted = await rt.slack.chat_postMessage(channel=record.confirmed_by or record.actor,
                                             **bulk_render.progress_message(snapshot).as_kwargs())
    await rt.bulk.start(record, channel=str(posted["channel"]), ts=str(posted["ts"]))


@runs("invite")
async def _invite(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
    if inv.course and inv.targets:
        return await plan_and_start(rt, ctx.user, "invite", inv.course, inv.targets)
    if not ctx.trigger_id:
        return render.simple(f"Usage: `/course {render.esc(inv.spec.usage)}`")
    await open_form(rt, ctx, inv.course)
    return None


async def open_form(rt: Runtime, ctx: Context, course_query: str | None) -> None:
    """Open the form at once (a trigger_id lasts 3 s), then fill in the courses."""
    opened = await rt.slack.views_open(trigger_id=ctx.trigger_id, view=bulk_render.loading_modal(ctx.channel))
    courses = await rt.platform.list_courses()
    matches = match_courses(courses, course_query) if course_query else []
    chosen = matches[0].id if len(matches) == 1 else None
    await rt.slack.views_update(view_id=opened["view"]["id"],
                                view=bulk_render.invite_modal(courses, course_id=chosen, channel=ctx.channel))


_SPLIT = re.compile(r"[\s,;]+")


def read_form(values: dict[str, Any]) -> tuple[str, list[Ref], dict[str, str]]:
    """The course and the people picked in the form, or the errors to show beside its fields."""

    def value(block: str) -> dict[str, Any]:
        return dict((values.get(block) or {}).get(block) or {})

    course = str((value("course").get("selected_option") or {}).get("value") or "")
    refs = [Ref(RefKind.USER, u) for u in value("people").get("selected_users") or []]
    refs += [Ref(RefKind.CHANNEL, c) for c in value("channels").get("selected_conversations") or []]
    errors: dict[str, str] = {}
    bad: list[str] = []
    for token in _SPLIT.split(str(value("emails").get("value") or "")):
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
    return course, list(dict.fromkeys(refs)), errors


async def _dm(rt: Runtime, user: str, message: render.Message) -> None:
    try:
        await rt.slack.chat_postMessage(channel=user, **message.as_kwargs())
    except SlackApiError as exc:
        log.warning("could not message %s (%s)", user, exc.response.get("error"))


def _error_message(exc: Exception) -> render.Message:
    if not isinstance(exc, render.EXPECTED_ERRORS):
        log.error("bulk job button failed", exc_info=exc)
    return render.error_message(exc)


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.view(bulk_render.MODAL_CALLBACK)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        course, refs, errors = read_form(view.get("state", {}).get("values", {}))
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = str(body["user"]["id"])
        channel = str(json.loads(view.get("private_metadata") or "{}").get("channel") or "")
        inv = Invocation(COMMANDS["invite"], course=course, targets=tuple(refs), text=f"invite (form) {course}")
        message = await run_command(rt, inv, Context(user=user, channel=channel))
        if message is not None:
            await _dm(rt, user, message)

    @app.action(bulk_render.START_ACTION)
    async def start(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user, job_id = str(body["user"]["id"]), str(body["actions"][0]["value"])
        try:
            record = await rt.bulk.claim(user, job_id)
            await start_job(rt, record)
        except (UserFacingError, DirectoryError, PlatformError) as exc:
            await respond(**_error_message(exc).as_kwargs(), response_type="ephemeral", replace_original=False)
            return
        labels = KINDS[record.kind].labels
        await respond(**bulk_render.confirmed_message(record, labels).as_kwargs(), replace_original=True)

    @app.action(bulk_render.DISCARD_ACTION)
    async def discard(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user, job_id = str(body["user"]["id"]), str(body["actions"][0]["value"])
        try:
            record = await rt.bulk.cancel(user, job_id)
        except UserFacingError as exc:
            await respond(**_error_message(exc).as_kwargs(), response_type="ephemeral", replace_original=False)
            return
        if record.confirmed_by:  # someone started it first: it is running, and now cancelling
            await respond(**bulk_render.claimed_message(record, "It had already started; it stops now and "
                                                                "the report says who was done.").as_kwargs(),
                          response_type="ephemeral", replace_original=False)
            return
        await respond(**bulk_render.discarded_message(record, user).as_kwargs(), replace_original=True)

    @app.action(bulk_render.CANCEL_ACTION)
    async def cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user, job_id = str(body["user"]["id"]), str(body["actions"][0]["value"])
        try:
            record = await rt.bulk.cancel(user, job_id)
        except UserFacingError as exc:
            await respond(**_error_message(exc).as_kwargs(), response_type="ephemeral", replace_original=False)
            return
        if record.status.finished:
            await respond(text="That job has already finished.", response_type="ephemeral", replace_original=False)
            return
        snapshot = await rt.bulk.snapshot(job_id)
        if snapshot is not None:
            await respond(**bulk_render.progress_message(snapshot).as_kwargs(), replace_original=True)
