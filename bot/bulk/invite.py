"""The `invite` kind of bulk job: enrol (approved) everyone not yet in the course.

Where the platform emails the people it invites (MeltingSpot), the job's params say whether it
should (`email`: "true"/"false", from `--no-email` or the form's checkbox; absent: the platform's
default, MELTINGSPOT_INVITE_EMAIL) and who invites (`invited_by`: the planning manager's own member,
found once by their Slack email when the job is planned; absent when nobody matches).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from bot.bulk.step import BulkStep, StepLabels
from bot.bulk.targets import BulkItem
from bot.core.directory import Directory, DirectoryError
from bot.core.errors import UserFacingError
from bot.core.models import Course
from bot.platforms.base import CoursePlatform, InviteOptions, PlatformError

log = logging.getLogger(__name__)


def email_params(platform: CoursePlatform, send_email: bool | None) -> dict[str, str]:
    """The invite job's `email` param for a choice made by the manager (None: no choice made).

    Turning the email off where the platform's API sends none is refused, so that a manager
    never believes the flag did something: nothing is started."""
    if send_email is None:
        return {}
    if platform.invitation_email is None:
        raise UserFacingError(
            "{platform} sends no invitation email through its API, so `--no-email` would change nothing there. "
            "Nothing was started: run the command again without it.", platform=platform.display_name)
    return {"email": "true" if send_email else "false"}


def _in_course(status: str | None) -> bool:
    return (status or "").lower() != "unenrolled"


class InviteStep(BulkStep):
    """Enrol (approved) everyone not yet in the course. Reads: the course's enrolments once per run."""

    labels = StepLabels(verb="Invite", doing="Inviting", done="invited", already="already enrolled")

    def __init__(self, platform: CoursePlatform, course: Course, params: dict[str, str]) -> None:
        super().__init__(platform, course, params)
        self.enrolled: set[str] = set()

    @property
    def batch_size(self) -> int:
        return max(1, self.platform.bulk_invite_size)

    def cost(self, count: int) -> int:
        return count if self.batch_size == 1 else math.ceil(count / self.batch_size)

    @property
    def options(self) -> InviteOptions:
        email = self.params.get("email")
        return InviteOptions(send_email=None if email is None else email == "true",
                             invited_by=self.params.get("invited_by") or None)

    async def complete_params(self, actor: str, directory: Directory) -> None:
        if self.platform.invitation_email is None or "invited_by" in self.params:
            return
        try:
            email = await directory.email_of(actor)
            found = await self.platform.find_members_by_email([email], create_missing=False) if email else {}
        except (DirectoryError, PlatformError) as exc:
            log.info("invite: the inviting manager's member was not found (%s); inviting without one",
                     exc.message)
            return
        member = found.get(email.lower()) if email else None
        if member is not None:
            self.params["invited_by"] = member.id

    async def prepare(self, items: Sequence[BulkItem]) -> None:
        enrolments = await self.platform.list_enrolments(course_id=self.course.id)
        self.enrolled = {e.member_id for e in enrolments if _in_course(e.status)}

    async def check(self, item: BulkItem, *, fresh: bool) -> bool:
        if not fresh:
            return item.member_id in self.enrolled
        enrolment = await self.platform.find_enrolment(self.course.id, item.member_id)
        return enrolment is not None and _in_course(enrolment.status)

    async def apply(self, item: BulkItem) -> None:
        await self.platform.enrol_absent(self.course.id, item.member_id)
        self.enrolled.add(item.member_id)

    async def apply_many(self, items: Sequence[BulkItem]) -> dict[str, str | None]:
        by_member = {item.member_id: item for item in items}
        results = await self.platform.invite_members(self.course.id, list(by_member), checked=True,
                                                     options=self.options)
        outcome: dict[str, str | None] = {}
        for member_id, item in by_member.items():
            result = results.get(member_id)
            if isinstance(result, PlatformError):
                outcome[item.key] = result.message
            elif result is None:
                outcome[item.key] = f"{self.platform.display_name} did not say what happened to this member."
            else:
                outcome[item.key] = None
                self.enrolled.add(member_id)
        return outcome
