"""Background work of the approval cards: the periodic sync, and the "Approve all" job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.approvals import render as render
from bot.render import Message

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

_said: set[str] = set()


def _once(message: str, *args: object) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message, *args)


async def approval_sync(rt: Runtime) -> None:
    if not rt.approvals.available:
        _once("approval sync off: %s has no approval step", rt.platform.display_name)
        return
    if not rt.settings.coursebot_approvals_channel:
        _once("COURSEBOT_APPROVALS_CHANNEL is not set: waiting enrolments are listed by /course pending and on "
              "the Home tab, but no cards are posted")
    report = await rt.approvals.sync()
    if report.changed or report.posted or report.reminded or report.escalated or report.auto_approved:
        log.info("approval sync: %d new, %d found again, %d decided elsewhere, %d cards posted, %d reminded, "
                 "%d escalated, %d approved by rules", report.new, report.adopted, report.closed, report.posted,
                 report.reminded, report.escalated, report.auto_approved)


async def approve_all(rt: Runtime, kwargs: dict[str, Any]) -> None:
    actor = str(kwargs["actor"])
    ids = [str(i) for i in kwargs.get("request_ids") or []]
    report = await rt.approvals.approve_all(ids, actor)
    await tell(rt, actor, str(kwargs.get("response_url") or ""),
               render.batch_report(report, platform=rt.platform.display_name))


async def tell(rt: Runtime, user: str, response_url: str, message: Message) -> None:
    """Privately, through the click's response_url while it is valid, else by direct message (every page)."""
    try:
        await rt.replies.private(user, response_url, message)
    except Exception:
        log.warning("could not tell %s the result of a background approval", user, exc_info=True)
