"""`/course help|courses|status|enrol|approve|block|unblock|link`: the runners of the enrolment commands."""

from __future__ import annotations

from collections.abc import Collection

from bot import render
from bot.approvals.decisions import Action
from bot.core.capabilities import Capability
from bot.core.grammar import Invocation, visible_commands
from bot.enrolment import render as view
from bot.enrolment.service import MemberStatus
from bot.runtime import Runtime
from handlers.commands import Context, Runner


def help_runner(available: Collection[str]) -> Runner:
    """`/course help`: the commands this person may run on this platform (and that this bot has)."""

    async def run(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
        is_manager = await rt.permissions.is_manager(ctx.user)
        is_approver = not is_manager and await rt.permissions.may_see_requests(ctx.user)
        notes = []
        if not rt.permissions.configured:
            notes.append(rt.permissions.refusal())
        if not rt.platform.supports(Capability.APPROVAL):
            notes.append(f"{rt.platform.display_name} has no approval step, so approve and block are not "
                         "available.")
        specs = [spec for spec in visible_commands(is_manager=is_manager, is_approver=is_approver,
                                                   capabilities=rt.platform.capabilities)
                 if spec.name in available]
        if is_approver:
            notes.append("As a course approver you decide the enrolments of your courses: from their cards, "
                         "`/course pending`, the Home tab, or `/course approve|block|unblock`.")
        return render.help_message(specs, platform=rt.platform.display_name, is_manager=is_manager, notes=notes)

    return run


async def courses(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    return view.courses_message(await rt.enrolments.courses(), platform=rt.platform.display_name)


async def status(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    assert inv.course is not None
    found = await rt.enrolments.status(inv.course, inv.member)
    if isinstance(found, MemberStatus):
        # Members' emails only for managers and the course's approvers (contract).
        insider = await rt.permissions.may_decide(ctx.user, found.course.id)
        return view.member_status_message(found, show_email=insider, hints=insider)
    return view.course_status_message(found)


def change_runner(action: Action) -> Runner:
    async def run(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
        assert inv.course is not None and inv.member is not None
        result = await rt.enrolments.change(ctx.user, action, inv.course, inv.member, pending="pending" in inv.flags)
        return view.change_message(result, actor=ctx.user)

    return run


async def link(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    assert inv.member is not None
    return view.link_message(await rt.enrolments.link(ctx.user, inv.member, inv.targets[0]))
