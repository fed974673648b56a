"""The `invite` kind of bulk job: enrol (approved) everyone not yet in the course."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.bulk.step import BulkStep, StepLabels
from bot.bulk.targets import BulkItem
from bot.core.models import Course
from bot.platforms.base import CoursePlatform, PlatformError


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
        results = await self.platform.invite_members(self.course.id, list(by_member), checked=True)
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
