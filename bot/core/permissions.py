"""Who may do what: managers (COURSEBOT_MANAGERS), each course's approvers, and nobody on their own enrolment.

Every check of the bot goes through here: the Slack edge asks `is_manager` (or `may_see_requests`
for the approval surfaces) before a listener runs, and the one decision path asks `may_decide`
for the course at hand and `is_self` for the member at hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from bot.core import keys
from bot.core.directory import Directory, DirectoryError
from bot.core.store import Redis

log = logging.getLogger(__name__)

NO_MANAGERS_HINT = (
    "No managers are configured yet, so nobody can make changes. Set COURSEBOT_MANAGERS to Slack user IDs "
    "(U…) and/or user-group IDs (S…), comma-separated, and restart the bot."
)


class ApproverRules(Protocol):
    """Per-course approvers (bot.approvals.rules): user ids and user-group ids."""

    async def approvers_of(self, course_id: str) -> list[str]: ...
    async def all_approvers(self) -> list[str]: ...
    async def approvers_by_course(self) -> dict[str, list[str]]: ...


class Permissions:
    def __init__(self, managers: list[str], directory: Directory, redis: Redis) -> None:
        self.users = frozenset(m for m in managers if not m.startswith("S"))
        self.groups = tuple(m for m in managers if m.startswith("S"))
        self.directory = directory
        self.redis = redis
        self.rules: ApproverRules | None = None

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)

    async def is_manager(self, user_id: str) -> bool:
        return await self._among(user_id, [*self.users, *self.groups])

    async def is_approver(self, user_id: str, course_id: str) -> bool:
        if self.rules is None:
            return False
        return await self._among(user_id, await self.rules.approvers_of(course_id))

    async def may_decide(self, user_id: str, course_id: str) -> bool:
        """Approve, block or unblock this course's enrolments: managers, and the course's approvers."""
        return await self.is_manager(user_id) or await self.is_approver(user_id, course_id)

    async def may_see_requests(self, user_id: str) -> bool:
        """The approval surfaces (cards, `/course pending`, Home): managers and any course's approvers."""
        if await self.is_manager(user_id):
            return True
        return self.rules is not None and await self._among(user_id, await self.rules.all_approvers())

    async def decidable_courses(self, user_id: str) -> set[str] | None:
        """The courses whose requests this person may decide: None for a manager (every course)."""
        if await self.is_manager(user_id):
            return None
        if self.rules is None:
            return set()
        return {course_id for course_id, ids in (await self.rules.approvers_by_course()).items()
                if await self._among(user_id, ids)}

    async def _among(self, user_id: str, ids: Iterable[str]) -> bool:
        for entry in ids:
            if not entry.startswith("S"):
                if entry == user_id:
                    return True
                continue
            try:
                if user_id in await self.directory.usergroup_members(entry):
                    return True
            except DirectoryError as exc:
                log.warning("could not read user group %s: %s", entry, exc.message)
        return False

    async def identity(self, user_id: str) -> set[str]:
        """Who a Slack user is on the platform: their Slack email and what `/course link` recorded."""
        found: set[str] = set()
        linked = await self.redis.get(keys.LINK(user_id))
        if linked:
            found.add(str(linked).strip().lower())
        try:
            email = await self.directory.email_of(user_id)
        except DirectoryError as exc:
            log.warning("could not read the email of %s: %s", user_id, exc.message)
            email = None
        if email:
            found.add(email.lower())
        return found

    async def is_self(self, user_id: str, member_id: str, member_email: str) -> bool:
        """Is this member the Slack user? By Slack email or by a link record, whichever way it was made."""
        mine = await self.identity(user_id)
        theirs = {member_id.strip().lower(), member_email.strip().lower()} - {""}
        return bool(mine & theirs)

    def refusal(self) -> str:
        if not self.configured:
            return NO_MANAGERS_HINT
        return (
            "Only course managers can do that, so nothing was changed. "
            "Ask a manager, or an admin to add you to COURSEBOT_MANAGERS."
        )

    def decision_refusal(self) -> str:
        if not self.configured:
            return NO_MANAGERS_HINT
        return ("Only course managers and this course's approvers can decide its enrolments, so nothing was "
                "changed.")
