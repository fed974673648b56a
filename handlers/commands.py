"""`/course`: parse inside the ack (a malformed command is answered at once), then run after it.

Which subcommand runs what is the table given in handlers/wiring.py; who may run it is declared
once in the grammar (bot.core.grammar) and checked here through the edge's gate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from slack_bolt.async_app import AsyncAck

from bot import render
from bot.core.audit import audit
from bot.core.grammar import ALIASES, COMMANDS, Invocation, ParseError, parse
from bot.platforms.base import PlatformError
from bot.runtime import Runtime
from handlers.middleware import Edge, Gate, note
from handlers.payloads import SlashCommand

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Who ran the command, and where: what a runner may need besides the invocation."""

    user: str
    channel: str
    trigger_id: str = ""
    response_url: str = ""
    team: str = ""


# A runner returns the reply, or None when it answered some other way (it opened a form).
Runner = Callable[[Runtime, Invocation, Context], Awaitable[render.Message | None]]


class CourseCommand:
    def __init__(self, rt: Runtime, edge: Edge, runners: Mapping[str, Runner]) -> None:
        self.rt = rt
        self.edge = edge
        self.runners = runners

    async def __call__(self, ack: AsyncAck, cmd: SlashCommand) -> None:
        try:
            inv = parse(cmd.text)
        except ParseError as exc:
            note(name=exc.spec.name if exc.spec else _command_word(cmd.text), outcome="invalid")
            await ack(**render.parse_error_message(exc).as_kwargs(), response_type="ephemeral")
            return
        note(name=inv.name)
        await ack()
        ctx = Context(user=cmd.user_id, channel=cmd.channel_id, trigger_id=cmd.trigger_id,
                      response_url=cmd.response_url, team=cmd.team_id)
        message = await self.run(inv, ctx)
        if message is not None:
            await self.rt.replies.private(ctx.user, ctx.response_url, message)

    async def run(self, inv: Invocation, ctx: Context) -> render.Message | None:
        """Gate, check the platform can, run; an expected failure becomes its message."""
        rt = self.rt
        gate = Gate.DECIDERS if inv.spec.deciders else Gate.MANAGERS  # deciders: the decision path checks the course
        if inv.spec.manager_only and not await self.edge.allowed(gate, ctx.user, action=inv.name, target=inv.text):
            note(outcome="refused")
            return self.edge.refusal(gate)
        if inv.spec.capability and not rt.platform.supports(inv.spec.capability):
            refusal = (inv.spec.unsupported.format(platform=rt.platform.display_name) if inv.spec.unsupported
                       else rt.platform.unsupported(inv.spec.capability.what).message)
            return render.simple(render.md(":information_source: {}", render.sentence(refusal)))
        runner = self.runners.get(inv.name)
        if runner is None:
            return render.simple(render.md(":information_source: {} is not available in this version.",
                                           render.code(f"/course {inv.name}")))
        try:
            return await runner(rt, inv, ctx)
        except render.EXPECTED_ERRORS as exc:
            if isinstance(exc, PlatformError):
                log.warning("platform error on %s: %s", inv.name, exc.message)
                await audit(rt.redis, actor=ctx.user, action=inv.name, target=inv.text[:200],
                            outcome="platform error", detail=exc.message)
            return render.error_message(exc)


def _command_word(text: str) -> str:
    """The subcommand a malformed command meant, for the metrics (a known name, else "unknown")."""
    word = (text.split() or [""])[0].lower()
    word = ALIASES.get(word, word)
    return word if word in COMMANDS else "unknown"
