"""The `complete` kind of bulk job: one lesson marked completed for many members.

`/course complete <course> <lesson> <people…>`."""

from __future__ import annotations

from collections.abc import Sequence

from bot.bulk.step import BulkStep, StepLabels
from bot.bulk.targets import BulkItem
from bot.core.models import Course, Enrolment
from bot.platforms.base import CoursePlatform, PlatformError


class CompleteLessonStep(BulkStep):
    """Mark `params["lesson_id"]` completed on each member's enrolment.

    Reads once per run: the course's enrolments and the lesson's completions (two lists, whatever
    the number of people); then one paced write per member who needs one."""

    labels = StepLabels(verb="Mark a lesson complete for", doing="Marking a lesson complete for",
                        done="completed", already="already completed", target="in")

    def __init__(self, platform: CoursePlatform, course: Course, params: dict[str, str]) -> None:
        super().__init__(platform, course, params)
        self.lesson_id = params["lesson_id"]
        self.lesson_title = params.get("lesson_title", "")
        self.enrolments: dict[str, Enrolment] = {}  # member id -> their enrolment in the course
        self.completed: set[str] = set()  # enrolment ids that have the lesson

    async def prepare(self, items: Sequence[BulkItem]) -> None:
        enrolments = await self.platform.list_enrolments(course_id=self.course.id)
        self.enrolments = {}
        for enrolment in sorted(enrolments, key=lambda e: (int(e.id), "") if e.id.isdigit() else (0, e.id)):
            self.enrolments.setdefault(enrolment.member_id, enrolment)  # the oldest, as find_enrolment picks
        self.completed = {c.enrolment_id for c in await self.platform.list_lesson_completions(self.lesson_id)}

    async def check(self, item: BulkItem, *, fresh: bool) -> bool:
        if not fresh:
            enrolment = self.enrolments.get(item.member_id)
            return enrolment is not None and enrolment.id in self.completed
        found = await self.platform.find_enrolment(self.course.id, item.member_id)
        if found is None:
            return False
        self.enrolments[item.member_id] = found
        done = await self.platform.list_completed_lessons(enrolment_id=found.id)
        return any(c.lesson_id == self.lesson_id for c in done)

    async def apply(self, item: BulkItem) -> None:
        enrolment = self.enrolments.get(item.member_id) or await self.platform.find_enrolment(
            self.course.id, item.member_id)
        if enrolment is None:
            raise PlatformError(f"Not enrolled in {self.course.title}, so the lesson cannot be marked. Enrol them "
                                "first (/course enrol or /course invite), then run this again.")
        await self.platform.create_completed_lesson(enrolment.id, self.lesson_id)
        self.completed.add(enrolment.id)

