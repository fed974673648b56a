"""`/course`: parse in the ack (a malformed command is answered at once), then run after it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import render
from bot.core.grammar import Invocation, ParseError, parse, visible_commands
from bot.core.store import audit
from bot.enrolment.service import Action, MemberStatus
from bot.platforms.base import Capability, PlatformError
from bot.runtime import Runtime

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Context:
    """Who ran the command, and where: what a runner may need besides the invocation."""

    user: str
    channel: str
    trigger_id: str = ""
    response_url: str = ""


# A runner returns the reply, or None when it answered some other way (it opened a modal).
Runner = Callable[[Runtime, Invocation, Context], Awaitable["render.Message | None"]]
RUNNERS: dict[str, Runner] = {}


def runs(name: str) -> Callable[[Runner], Runner]:
    """Register the runner of a declared subcommand (see bot.commands.COMMANDS)."""

    def register(runner: Runner) -> Runner:
        RUNNERS[name] = runner
        return runner

    return register


@runs("help")
async def _help(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    is_manager = await rt.permissions.is_manager(ctx.user)
    notes = []
    if not rt.permissions.configured:
        notes.append(rt.permissions.refusal())
    if not rt.platform.supports(Capability.APPROVAL):
        notes.append(f"{rt.platform.display_name} has no approval step, so approve and block are not available.")
    specs = [spec for spec in visible_commands(is_manager=is_manager, capabilities=rt.platform.capabilities)
             if spec.name in RUNNERS]
    return render.help_message(specs, platform=rt.platform.display_name, is_manager=is_manager, notes=notes)


@runs("courses")
async def _courses(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    return render.courses_message(await rt.enrolments.courses(), platform=rt.platform.display_name)


@runs("status")
async def _status(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    assert inv.course is not None
    status = await rt.enrolments.status(inv.course, inv.member)
    if isinstance(status, MemberStatus):
        return render.member_status_message(status)
    return render.course_status_message(status)


def _change(action: Action) -> Runner:
    async def run(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
        assert inv.course is not None and inv.member is not None
        result = await rt.enrolments.change(ctx.user, action, inv.course, inv.member,
                                            pending="pending" in inv.flags)
        return render.change_message(result, actor=ctx.user)

    return run


for _action in Action:
    runs(_action.value)(_change(_action))


@runs("link")
async def _link(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message:
    assert inv.member is not None
    return render.link_message(await rt.enrolments.link(ctx.user, inv.member, inv.targets[0]))


async def run_command(rt: Runtime, inv: Invocation, ctx: Context) -> render.Message | None:
    """Check permission centrally, run, and turn every failure into a message."""
    user = ctx.user
    try:
        if inv.spec.manager_only and not await rt.permissions.is_manager(user):
            await audit(rt.redis, actor=user, action=inv.name, target=inv.text[:200], outcome="refused",
                        detail="not a manager")
            return render.refusal_message(rt.permissions.refusal())
        if inv.spec.capability and not rt.platform.supports(inv.spec.capability):
            refusal = rt.platform.unsupported(inv.spec.capability.what).message
            return render.simple(f":information_source: {render.esc(refusal)}")
        runner = RUNNERS.get(inv.name)
        if runner is None:
            return render.simple(f":information_source: `/course {inv.name}` is not available in this version.")
        return await runner(rt, inv, ctx)
    except Exception as exc:
        if isinstance(exc, PlatformError):
            log.warning("platform error on %s: %s", inv.name, exc.message)
            await audit(rt.redis, actor=user, action=inv.name, target=inv.text[:200], outcome="platform error",
                        detail=exc.message)
        elif not isinstance(exc, render.EXPECTED_ERRORS):
            log.exception("command %s failed", inv.name)
        return render.error_message(exc)


def register(app: AsyncApp, rt: Runtime) -> None:
    @app.command("/course")
    async def course(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        try:
            inv = parse(command.get("text") or "")
        except ParseError as exc:
            await ack(**render.parse_error_message(exc).as_kwargs(), response_type="ephemeral")
            return
        await ack()
        ctx = Context(user=command["user_id"], channel=command.get("channel_id", ""),
                      trigger_id=command.get("trigger_id", ""), response_url=command.get("response_url", ""))
        message = await run_command(rt, inv, ctx)
        if message is not None:
            await respond(**message.as_kwargs(), response_type="ephemeral")
