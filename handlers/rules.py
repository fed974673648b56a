"""`/course approvers|autoapprove|quorum|rules`: the runners of the approval-rule commands (managers only,
as the grammar declares). The rules themselves are bot.approvals.rules; after a change, waiting
requests and their cards follow at once (`ApprovalService.apply_rules`), and the sync applies the
auto-approve rules."""

from __future__ import annotations

import time

from bot import render
from bot.approvals import rules_render
from bot.approvals.rules import AutoRule, CourseRules
from bot.core.errors import SlackUser, UserFacingError
from bot.core.grammar import Invocation, Ref, RefKind
from bot.core.models import Course
from bot.runtime import Runtime
from handlers.commands import Context


async def approvers(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course approvers <course> [@user…|@user-group…|none]`."""
    assert inv.course is not None
    course = await rt.enrolments.resolve.course(inv.course)
    if not inv.targets and inv.mode != "none":
        return rules_render.show_approvers_message(await rt.rules.course(course.id), course.title)
    await _check_exist(rt, inv.targets)
    handles = {r.value: r.label.lstrip("@") for r in inv.targets if r.kind is RefKind.USERGROUP and r.label}
    change = await rt.rules.set_approvers(ctx.user, course.id, course.title, [r.value for r in inv.targets], handles)
    updated = await rt.approvals.apply_rules(course.id) if change.changed else 0
    return rules_render.change_message(change, title=course.title, waiting=updated,
                                       channel=rt.settings.coursebot_approvals_channel)


async def autoapprove(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course autoapprove <course|all> domain <domain> | group @user-group | off [--preview]`."""
    course = await rt.enrolments.resolve.course(inv.course) if inv.course is not None else None
    scope, title = (course.id, course.title) if course else (None, "")
    channel = rt.settings.coursebot_approvals_channel
    if inv.mode == "off":
        change = await rt.rules.clear_auto(ctx.user, scope, title)
        return rules_render.change_message(change, title=title, waiting=0, channel=channel)
    rule = AutoRule(kind="group" if inv.mode == "group" else "domain", value=inv.value, by=ctx.user,
                    handle=inv.targets[0].label.lstrip("@") if inv.targets else "")
    if rule.kind == "group":
        await _check_exist(rt, inv.targets)
    waiting = [r for r in await rt.approvals.waiting() if scope is None or r.course_id == scope]
    found = await rt.rules.preview(waiting, scope, rule)
    if "preview" in inv.flags:
        current = await rt.rules.course(scope) if scope else CourseRules(course_id="*")
        last = await rt.approvals.store.last_synced()
        stale = last is None or time.time() - last > 3 * rt.settings.coursebot_sync_seconds
        note = ("The platform was not read recently (is `coursebot worker` running?), so requests may wait that "
                "this count does not know of yet; `/course pending` reads it now.") if stale else ""
        return rules_render.preview_message(rule, current, title, found, len(waiting), note=note)
    change = await rt.rules.add_auto(ctx.user, scope, title, rule)
    return rules_render.change_message(change, title=title, waiting=0, matching=len(found), channel=channel)


async def quorum(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course quorum <course> <1|2|3>`."""
    assert inv.course is not None
    course: Course = await rt.enrolments.resolve.course(inv.course)
    change = await rt.rules.set_quorum(ctx.user, course.id, course.title, int(inv.value))
    updated = await rt.approvals.apply_rules(course.id) if change.changed else 0
    return rules_render.change_message(change, title=course.title, waiting=updated,
                                       channel=rt.settings.coursebot_approvals_channel)


async def rules(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    """`/course rules`."""
    titles = {cid: c.title for cid, c in (await rt.approvals.store.courses()).items()}
    return rules_render.rules_message(await rt.rules.book(), titles, platform=rt.platform.display_name)


async def _check_exist(rt: Runtime, refs: tuple[Ref, ...]) -> None:
    """Every @user is a person Slack knows (not a bot) and every @user-group can be listed; else nothing changes."""
    users = [r.value for r in refs if r.kind is RefKind.USER]
    if users:
        people = await rt.directory.people(users)
        unknown = [u for u in users if u not in people or people[u].deleted]
        if unknown:
            raise UserFacingError("Slack does not know {user} (or they were deactivated), so nothing was changed.",
                                  user=SlackUser(unknown[0]))
        bots = [u for u in users if people[u].is_bot]
        if bots:
            raise UserFacingError("{user} is a bot and cannot decide requests; nothing was changed.",
                                  user=SlackUser(bots[0]))
    for group in (r for r in refs if r.kind is RefKind.USERGROUP):
        await rt.directory.usergroup_members(group.value)  # DirectoryError: Slack's reason, nothing changed
