"""What `/course enrol|approve|block|unblock|status|courses|link` do.

A change resolves the course and the member the manager named, then hands the decision to the
one decision path (bot.approvals.decisions), which checks who may decide, claims the enrolment,
reads it once and writes at most once. A repeated command changes nothing and says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.approvals.decisions import Action, Change, DecisionResult, DecisionService, Subject, Via
from bot.core import keys
from bot.core.audit import audit
from bot.core.capabilities import Capability
from bot.core.directory import Directory
from bot.core.errors import UserFacingError
from bot.core.grammar import Ref, RefKind
from bot.core.models import CompletedLesson, Course, Enrolment, EnrolmentCounts, Lesson, Member
from bot.core.permissions import Permissions
from bot.core.store import Redis
from bot.enrolment.resolve import Resolver
from bot.platforms.base import CoursePlatform

A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class CourseRow:
    course: Course
    counts: EnrolmentCounts


@dataclass(frozen=True)
class CourseStatus:
    course: Course
    counts: EnrolmentCounts
    lessons: int | None


@dataclass(frozen=True)
class MemberStatus:
    course: Course
    member: Member
    enrolment: Enrolment | None
    lessons: list[Lesson] = field(default_factory=list)
    completed: list[CompletedLesson] = field(default_factory=list)


@dataclass(frozen=True)
class LinkResult:
    user_id: str
    member: Member
    previous: str | None


async def _none() -> None:
    return None


async def together(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both at once; if either fails, the first one's failure is raised (as if run in order),
    and only after both have ended, so no read is left running unseen."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


class EnrolmentService:
    def __init__(
        self, platform: CoursePlatform, redis: Redis, directory: Directory, permissions: Permissions,
        decisions: DecisionService,
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.directory = directory
        self.permissions = permissions
        self.decisions = decisions
        self.resolve = Resolver(platform, directory, redis)

    # ---- reads ------------------------------------------------------------------------

    async def courses(self) -> list[CourseRow]:
        courses = await self.platform.list_courses()
        counts = await self.platform.count_enrolments_by_course([c.id for c in courses])
        return [CourseRow(c, counts.get(c.id, EnrolmentCounts())) for c in courses]

    async def status(self, course_query: str, member_ref: Ref | None) -> CourseStatus | MemberStatus:
        """Reads that do not wait for each other go together: the counts with the lessons; the
        course with the member, then the enrolment with the lessons, then its completions."""
        lessons_read = self.platform.supports(Capability.LESSONS)
        if member_ref is None:
            course = await self.resolve.course(course_query)
            counts, lessons = await together(self.platform.count_enrolments(course.id),
                                             self._lessons(course.id) if lessons_read else _none())
            return CourseStatus(course, counts, len(lessons) if lessons is not None else None)
        course, member = await together(self.resolve.course(course_query), self.resolve.member(member_ref))
        enrolment, lessons = await together(self.platform.find_enrolment(course.id, member.id),
                                            self._lessons(course.id) if lessons_read else _none())
        if enrolment is None or lessons is None:
            return MemberStatus(course, member, enrolment)
        completed = await self.platform.list_completed_lessons(enrolment_id=enrolment.id)
        return MemberStatus(course, member, enrolment, lessons, completed)

    async def _lessons(self, course_id: str) -> list[Lesson] | None:
        return await self.platform.list_lessons(course_id)

    # ---- changes ----------------------------------------------------------------------

    async def change(self, actor: str, action: Action, course_query: str, member_ref: Ref,
                     *, pending: bool = False, via: Via = Via.COMMAND) -> DecisionResult:
        """Resolve what the manager named, then decide through the one decision path."""
        self._require_capability(action)
        course, member = await together(self.resolve.course(course_query), self.resolve.member(member_ref))
        subject = Subject(course.id, member.id, course.title, member.full_name, member.email)
        return await self.decisions.decide(Change(actor, action, via, subject=subject, pending=pending))

    async def link(self, actor: str, user: Ref, target: Ref) -> LinkResult:
        member = await self.resolve.member(target)
        value = member.email.lower() if target.kind is RefKind.EMAIL else member.id
        previous = await self.redis.get(keys.LINK(user.value))
        await self.redis.set(keys.LINK(user.value), value)
        await audit(self.redis, actor=actor, action="link", target=f"<@{user.value}>", outcome="changed",
                    detail=f"member {member.id}")
        return LinkResult(user.value, member, str(previous) if previous else None)

    def _require_capability(self, action: Action) -> None:
        if not self.platform.supports(action.capability):
            raise UserFacingError(
                f"{self.platform.display_name} has no way to {action.value} through its API, so nothing was "
                "changed. Do it in its admin panel instead."
            )
