"""The Slack edge, once for every listener: typed payloads, who may act, and what happens on failure.

`Edge` registers each listener with Bolt wrapped in the same steps:
1. the payload is parsed into its model (handlers.payloads); one that does not fit is acknowledged,
   logged in one line and goes no further;
2. the gate: managers only, or managers and approvers for the approval buttons. A refusal is
   audited and answered privately here, for every surface, including clicks on cards that
   were decided long ago;
3. the listener runs; any exception it raises (a Redis outage, a Slack error, a platform that
   answers garbage) becomes one log line with its traceback and one plain private answer. The
   request stays acknowledged: nothing escapes to Bolt after `ack()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from bot import render
from bot.core import metrics
from bot.core.audit import audit
from bot.runtime import Runtime
from handlers.payloads import AppHomeOpened, BlockAction, BlockSuggestion, SlashCommand, ViewSubmission

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)


@dataclass
class Trace:
    """What one request was and how it went, for the metrics (a listener may name it better)."""

    name: str
    outcome: str = "ok"  # ok, refused, invalid, error


TRACE: ContextVar[Trace] = ContextVar("trace")


def note(*, name: str | None = None, outcome: str | None = None) -> None:
    """Let the metrics know what this request turned out to be (e.g. the /course subcommand)."""
    trace = TRACE.get(None)
    if trace is None:
        return
    if name is not None:
        trace.name = name
    if outcome is not None:
        trace.outcome = outcome


class TimedAck(AsyncAck):
    """Bolt's ack, noting how long after the listener started it was called."""

    def __init__(self, inner: AsyncAck) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.inner = inner
        self.started = time.monotonic()
        self.seconds: float | None = None

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await self.inner(*args, **kwargs)
        self.response = self.inner.response
        if self.seconds is None:
            self.seconds = time.monotonic() - self.started
        return response


class Gate(StrEnum):
    ANYONE = "anyone"
    MANAGERS = "managers"
    DECIDERS = "deciders"  # managers and course approvers; the decision path checks the course itself


def failure_message(exc: BaseException) -> render.Message:
    """What the person who asked reads when their request failed; one mapping for every surface."""
    if isinstance(exc, RedisError):
        return render.simple(render.md(":x: The bot's store (Redis) did not answer, so nothing was changed. Try again "
                                       "in a minute; if it lasts, ask an admin to run `coursebot doctor`."))
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error") or "error")
        return render.simple(render.md(":x: Slack refused one of my calls ({}), so I could not finish. "
                                       "Try again in a moment.", render.code(error)))
    if isinstance(exc, Exception):
        return render.error_message(exc)
    return render.internal_error_message()


class Edge:
    def __init__(self, app: AsyncApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        app.error(self._unhandled)

    # ---- who may act ---------------------------------------------------------------------------

    async def allowed(self, gate: Gate, user: str, *, action: str, target: str = "") -> bool:
        """Is `user` let through this gate? A refusal is audited here, once."""
        permissions = self.rt.permissions
        if gate is Gate.ANYONE:
            return True
        ok = await (permissions.is_manager(user) if gate is Gate.MANAGERS else permissions.may_see_requests(user))
        if not ok:
            await audit(self.rt.redis, actor=user, action=action, target=target[:200], outcome="refused",
                        detail="not a manager" if gate is Gate.MANAGERS else "not a manager or approver")
        return ok

    def refusal_text(self, gate: Gate) -> str:
        permissions = self.rt.permissions
        return permissions.refusal() if gate is Gate.MANAGERS else permissions.decision_refusal()

    def refusal(self, gate: Gate) -> render.Message:
        return render.refusal_message(self.refusal_text(gate))

    # ---- failures --------------------------------------------------------------------------------

    async def fail(self, exc: BaseException, *, what: str, user: str, response_url: str = "") -> None:
        """One log line with the traceback, one private answer."""
        log.error("%s failed: %s", what, type(exc).__name__, exc_info=exc)
        if not user:
            return
        try:
            await self.rt.replies.private(user, response_url, failure_message(exc))
        except Exception as again:  # Slack or Redis down too: the log line is all we can do
            log.warning("could not tell %s that %s failed (%s)", user, what, type(again).__name__)

    async def _guarded(self, work: Awaitable[None], ack: AsyncAck, *, what: str, user: str,
                       response_url: str) -> None:
        try:
            await work
        except Exception as exc:
            note(outcome="error")
            if ack.response is None:
                await ack()
            await self.fail(exc, what=what, user=user, response_url=response_url)

    def _observed(self, kind: str, name: str, run: Callable[[TimedAck, dict[str, Any]], Awaitable[None]]
                  ) -> Callable[[AsyncAck, dict[str, Any]], Awaitable[None]]:
        """Count the request by name and outcome, and time its ack and its answer."""

        async def observed(ack: AsyncAck, body: dict[str, Any]) -> None:
            timed = TimedAck(ack)
            trace = Trace(name)
            token = TRACE.set(trace)
            try:
                await run(timed, body)
            finally:
                TRACE.reset(token)
                if kind == "command":
                    metrics.observe_command(trace.name, trace.outcome, timed.seconds)
                elif kind == "click":
                    metrics.observe_click(trace.name, trace.outcome, timed.seconds)
                elif timed.seconds is not None:
                    metrics.observe_ack(kind, timed.seconds)
                metrics.observe_answer(kind, time.monotonic() - timed.started)

        return observed

    async def _unhandled(self, error: Exception, body: dict[str, Any]) -> None:
        """Bolt's own error handler: only what failed outside a listener (its middleware) lands here."""
        user = str((body.get("user") or {}).get("id") or body.get("user_id") or "")
        await self.fail(error, what="a Slack request", user=user, response_url=str(body.get("response_url") or ""))

    # ---- registration ------------------------------------------------------------------------------

    def command(self, command_id: str, listener: Callable[[AsyncAck, SlashCommand], Awaitable[None]]) -> None:
        async def run(ack: AsyncAck, body: dict[str, Any]) -> None:
            cmd = await self._parse(SlashCommand, body, ack, what=command_id)
            if cmd is None:
                return
            await self._guarded(listener(ack, cmd), ack, what=f"{command_id} {cmd.text[:40]!r}", user=cmd.user_id,
                                response_url=cmd.response_url)

        self.app.command(command_id)(self._observed("command", command_id, run))

    def action(self, action_id: str, listener: Callable[[AsyncAck, BlockAction], Awaitable[None]], *,
               gate: Gate = Gate.ANYONE) -> None:
        async def run(ack: AsyncAck, body: dict[str, Any]) -> None:
            click = await self._parse(BlockAction, body, ack, what=action_id)
            if click is None:
                return
            if not await self.allowed(gate, click.user_id, action=action_id, target=click.action.value):
                note(outcome="refused")
                await ack()
                await self.rt.replies.private(click.user_id, click.response_url, self.refusal(gate))
                return
            await self._guarded(listener(ack, click), ack, what=action_id, user=click.user_id,
                                response_url=click.response_url)

        self.app.action(action_id)(self._observed("click", action_id, run))

    def view(self, view_id: str, listener: Callable[[AsyncAck, ViewSubmission], Awaitable[None]], *,
             gate: Gate = Gate.ANYONE) -> None:
        async def run(ack: AsyncAck, body: dict[str, Any]) -> None:
            submission = await self._parse(ViewSubmission, body, ack, what=view_id)
            if submission is None:
                return
            if not await self.allowed(gate, submission.user_id, action=view_id, target=submission.view.id):
                note(outcome="refused")
                inputs = [str(b.get("block_id")) for b in submission.view.blocks if b.get("type") == "input"]
                if inputs:  # said in the form itself, which stays open
                    await ack(response_action="errors", errors={inputs[0]: self.refusal_text(gate)})
                else:
                    await ack()
                    await self.rt.replies.direct(submission.user_id, self.refusal(gate))
                return
            await self._guarded(listener(ack, submission), ack, what=view_id, user=submission.user_id,
                                response_url="")

        self.app.view(view_id)(self._observed("view", view_id, run))

    def options(self, options_id: str, listener: Callable[[AsyncAck, BlockSuggestion], Awaitable[None]], *,
                gate: Gate = Gate.ANYONE) -> None:
        async def run(ack: AsyncAck, body: dict[str, Any]) -> None:
            suggestion = await self._parse(BlockSuggestion, body, ack, what=options_id)
            if suggestion is None:
                return
            if not await self.allowed(gate, suggestion.user_id, action=options_id):
                await ack(options=[])  # member names and emails are for managers only
                return
            await self._guarded(listener(ack, suggestion), ack, what=options_id, user="", response_url="")

        self.app.options(options_id)(self._observed("options", options_id, run))

    def home_opened(self, listener: Callable[[AppHomeOpened], Awaitable[None]]) -> None:
        async def run(event: dict[str, Any]) -> None:
            try:
                opened = AppHomeOpened.model_validate(event)
            except ValidationError:
                log.warning("ignored an app_home_opened event that does not fit")
                return
            try:
                await listener(opened)
            except Exception as exc:
                log.error("app_home_opened failed: %s", type(exc).__name__, exc_info=exc)

        self.app.event("app_home_opened")(run)

    async def _parse(self, model: type[P], body: dict[str, Any], ack: AsyncAck, *, what: str) -> P | None:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            note(outcome="invalid")
            await ack()
            log.warning("ignored a %s request that does not fit (%d problems, first: %s)", what,
                        exc.error_count(), exc.errors()[0].get("loc"))
            return None
