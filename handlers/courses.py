"""`/course new` (its form, type-ahead menus and submission), `/course lessons`, `/course complete|uncomplete`,
and the "Enrol them" / "Mark … complete" buttons of their replies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import render
from bot.approvals.decisions import Action, Via
from bot.core.errors import UserFacingError
from bot.core.grammar import Invocation, Ref, RefKind
from bot.courses import render as view
from bot.courses.service import (
    CourseForm,
    CourseService,
    CreationInProgress,
    LessonAmbiguous,
    LessonNotFound,
    NotEnrolled,
    check_form,
)
from bot.platforms.base import CreationUnclear, PlatformError, ValidationFailed
from bot.runtime import Runtime
from handlers.bulk import plan_and_start
from handlers.commands import Context, Runner
from handlers.payloads import BlockAction, BlockSuggestion, View, ViewSubmission

log = logging.getLogger(__name__)

ACK_BUDGET = 2.5  # seconds a view submission may take before Slack gives up on the ack (3 s)
SUGGEST_BUDGET = 2.0  # the same for a type-ahead menu's options


class FormMetadata(BaseModel):
    """The form's private_metadata: where `/course new` was typed, to answer there."""

    v: int = 1
    channel: str = ""


def courses(rt: Runtime) -> CourseService:
    return CourseService(rt.platform, rt.redis, rt.enrolments.resolve, rt.permissions)


# ---- /course new ----------------------------------------------------------------------------

async def new(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
    # The trigger id lasts 3 s: open a loading form at once, fill it in when the platform has answered.
    metadata = FormMetadata(channel=ctx.channel).model_dump_json()
    try:
        opened = await rt.slack.views_open(trigger_id=ctx.trigger_id, view=view.loading_modal(metadata))
    except SlackApiError as exc:
        return render.simple(render.md(":warning: Slack did not open the form ({}). Try `/course new` again.",
                                       render.code(str(exc.response.get("error")))))
    view_id = str(opened["view"]["id"])
    try:
        choices = await courses(rt).form_choices()
    except PlatformError as exc:
        await rt.slack.views_update(view_id=view_id, view=view.problem_modal(exc.message))
        return None
    if not choices.locations:
        await rt.slack.views_update(view_id=view_id, view=view.problem_modal(
            f"{rt.platform.display_name} shows no location to run a course at, so no course can be created here."))
        return None
    await rt.slack.views_update(view_id=view_id, view=view.course_form(
        choices, platform=rt.platform.display_name, metadata=metadata))
    return None


def read_form(form: View) -> CourseForm:
    """The form's values, as submitted."""

    def text(block: str) -> str:
        return form.field(block, view.action(block)).text

    def choice(block: str) -> str | None:
        return form.field(block, view.action(block)).choice

    checked = {o.value for o in form.field(view.OPTIONS, view.action(view.OPTIONS)).selected_options}
    return CourseForm(
        title=text(view.TITLE), location_id=choice(view.LOCATION), host_id=choice(view.HOST),
        display_order=text(view.ORDER), visibility=choice(view.VISIBILITY), plan_id=choice(view.PLAN),
        summary=text(view.SUMMARY), description=text(view.DESCRIPTION), group_name=text(view.GROUP),
        show_on_home_page=view.HOME_OPTION in checked, active=view.ACTIVE_OPTION in checked,
    )


def _label(form: View, block: str) -> str:
    option = form.field(block, view.action(block)).selected_option
    return option.label if option else ""


def inline_errors(errors: dict[str, str], blocks: list[dict[str, Any]]) -> dict[str, str]:
    """Field errors keyed by the form's block ids; one the form has no place for goes under the title."""
    present = {str(b.get("block_id")) for b in blocks if b.get("type") == "input"}
    shown: dict[str, str] = {}
    for name, message in errors.items():
        block = view.FIELD_BLOCK.get(name, view.TITLE)
        if block not in present:
            block = view.VISIBILITY if name == "plan_id" and view.VISIBILITY in present else view.TITLE
        shown[block] = f"{shown[block]} {message}" if block in shown else message
    return {block: render.plain(message, 2000) for block, message in shown.items()}


async def announce(rt: Runtime, user: str, channel: str, message: render.Message) -> None:
    """Tell only `user`: in the channel where they typed the command, or else by direct message."""
    pages = message.pages("below")
    if channel:
        try:
            while pages:
                await rt.slack.chat_postEphemeral(channel=channel, user=user, **pages[0])
                pages.pop(0)
            return
        except SlackApiError as exc:
            log.info("could not answer %s in %s (%s); sending a direct message", user, channel,
                     exc.response.get("error"))
    for page in pages:
        await rt.poster.post_page(user, page)


async def _submitted(rt: Runtime, ack: AsyncAck, submission: ViewSubmission) -> None:
    started = time.monotonic()
    submitted = submission.view
    user = submission.user_id
    blocks = submitted.blocks
    try:
        metadata = FormMetadata.model_validate_json(submitted.private_metadata or "{}")
    except ValidationError:
        metadata = FormMetadata()
    checked = check_form(read_form(submitted))
    if isinstance(checked, dict):
        await ack(response_action="errors", errors=inline_errors(checked, blocks))
        return
    service = courses(rt)
    team = submission.team.id if submission.team else submitted.team_id
    creating = asyncio.create_task(service.create(user, checked, form_id=f"{team}:{submitted.id}"))
    budget = max(0.1, ACK_BUDGET - (time.monotonic() - started))
    done, _ = await asyncio.wait({creating}, timeout=budget)
    if not done:
        # The platform is slow (throttled): close the form on a "working" note and answer later.
        await ack(response_action="update", view=view.working_modal(checked.title))
        try:
            creation = await creating
        except CreationInProgress:
            return  # the submission that is creating it will announce it
        except CreationUnclear as exc:
            await announce(rt, user, metadata.channel, view.creation_unclear_message(checked.title, exc.message))
            return
        except (UserFacingError, PlatformError) as exc:
            reason = exc.text(str) if isinstance(exc, UserFacingError) else exc.message
            await announce(rt, user, metadata.channel, view.creation_failed_message(checked.title, reason))
            return
        except Exception:
            log.exception("creating a course failed")
            await announce(rt, user, metadata.channel, view.creation_failed_message(
                checked.title, "something went wrong on my side; the error is in the bot's log."))
            return
    else:
        try:
            creation = creating.result()
        except ValidationFailed as exc:
            await ack(response_action="errors", errors=inline_errors(exc.fields or {"": exc.message}, blocks))
            return
        except CreationInProgress:
            await ack(response_action="update", view=view.working_modal(checked.title))
            return
        except CreationUnclear as exc:  # not "nothing was created": nobody can tell yet
            await ack(response_action="errors", errors={view.TITLE: exc.message[:2000]})
            return
        except (UserFacingError, PlatformError) as exc:
            reason = exc.text(str) if isinstance(exc, UserFacingError) else exc.message
            problem = render.plain(f"{reason} Nothing was created.", 2000)
            await ack(response_action="errors", errors={view.TITLE: problem})
            return
        except Exception:
            log.exception("creating a course failed")
            await ack(response_action="errors", errors={
                view.TITLE: "Something went wrong on my side and nothing was created. The error is in the bot's log."})
            return
        await ack()
    if creation.created:
        plan = _label(submitted, view.PLAN) if checked.plan_id else ""
        await announce(rt, user, metadata.channel, view.created_message(
            creation.course, location=_label(submitted, view.LOCATION), host=_label(submitted, view.HOST), plan=plan,
            actor=user))


async def _options(rt: Runtime, ack: AsyncAck, suggestion: BlockSuggestion, kind: str) -> None:
    """A type-ahead menu of the form: hosts (members by name or email), locations or plans.

    Managers only (the edge's gate answers anyone else with no options)."""
    query = suggestion.value
    options: list[dict[str, Any]] = []
    try:
        service = courses(rt)
        async with asyncio.timeout(SUGGEST_BUDGET):
            if kind == view.HOST:
                options = [view.member_option(m) for m in await service.search_hosts(query)]
            elif kind == view.LOCATION:
                options = [view.location_option(loc) for loc in await service.locations_matching(query)]
            else:
                options = [view.plan_option(p, with_location=True) for p in await service.plans_matching(query)]
    except (TimeoutError, PlatformError) as exc:
        log.info("no %s options for %r: %s", kind, query, getattr(exc, "message", "timed out"))
    await ack(options=options[:100])


# ---- /course lessons, complete, uncomplete -----------------------------------------------------

async def lessons(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    assert inv.course is not None
    return view.lessons_message(await courses(rt).lessons(inv.course))


async def _progress_reply(work: Awaitable[render.Message]) -> render.Message:
    """The replies only this module knows how to show; everything else is `run_command`'s."""
    try:
        return await work
    except NotEnrolled as exc:
        return view.not_enrolled_message(exc)
    except (LessonAmbiguous, LessonNotFound) as exc:
        return view.lesson_error_message(exc)


def _completion(remove: bool) -> Runner:
    async def run(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
        assert inv.course is not None and inv.lesson is not None
        if inv.targets and not remove:
            return await _bulk_complete(rt, inv, ctx)
        assert inv.member is not None
        lesson, member, course = inv.lesson, inv.member, inv.course

        async def work() -> render.Message:
            result = await courses(rt).complete(ctx.user, course, member, lesson, remove=remove)
            return view.completion_message(result, actor=ctx.user)

        return await _progress_reply(work())

    return run


complete = _completion(remove=False)
uncomplete = _completion(remove=True)


async def _bulk_complete(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
    """`/course complete <course> <lesson> <people…>`: a bulk job of kind "complete" (bot.bulk.service)."""
    assert inv.course is not None and inv.lesson is not None
    service = courses(rt)
    course = await service.resolve.course(inv.course)
    try:
        lesson = await service.lesson(course, inv.lesson)
    except (LessonAmbiguous, LessonNotFound) as exc:
        return view.lesson_error_message(exc)
    return await plan_and_start(rt, ctx.user, "complete", course.id, inv.targets,
                                params={"lesson_id": lesson.id, "lesson_title": lesson.title})


# ---- the buttons ------------------------------------------------------------------------------

class OfferValue(BaseModel):
    course: str
    member: str
    lesson: str


async def _offer(rt: Runtime, click: BlockAction, *, enrol: bool) -> None:
    """"Enrol them" and "Mark … complete": managers only (the edge's gate); the offer stays for them."""
    user = click.user_id
    try:
        offer = OfferValue.model_validate_json(click.action.value)
    except ValidationError:
        stale = render.md(":warning: That button is out of date; run the command again.")
        await rt.replies.private(user, click.response_url, render.simple(stale))
        return
    member = Ref(RefKind.ID, offer.member)

    async def work() -> render.Message:
        if enrol:
            changed = await rt.enrolments.change(user, Action.ENROL, offer.course, member, via=Via.BUTTON)
            if changed.subject is None or changed.outcome.value not in ("done", "already"):
                return view.enrolled_offer_message(changed, offer.lesson, "", actor=user)
            course = await rt.enrolments.resolve.course(offer.course)
            lesson = await courses(rt).lesson(course, offer.lesson)
            return view.enrolled_offer_message(changed, lesson.id, lesson.title, actor=user)
        result = await courses(rt).complete(user, offer.course, member, offer.lesson)
        return view.completion_message(result, actor=user)

    try:
        message = await _progress_reply(work())
    except render.EXPECTED_ERRORS as exc:
        message = render.error_message(exc)
    if not await rt.replies.respond(click.response_url, message, replace=True):
        await rt.replies.direct(user, message)


class CourseListeners:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def form_submitted(self, ack: AsyncAck, submission: ViewSubmission) -> None:
        await _submitted(self.rt, ack, submission)

    def suggest(self, kind: str) -> Callable[[AsyncAck, BlockSuggestion], Awaitable[None]]:
        async def run(ack: AsyncAck, suggestion: BlockSuggestion) -> None:
            await _options(self.rt, ack, suggestion, kind)

        return run

    async def enrol_offer(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        await _offer(self.rt, click, enrol=True)

    async def complete_offer(self, ack: AsyncAck, click: BlockAction) -> None:
        await ack()
        await _offer(self.rt, click, enrol=False)
