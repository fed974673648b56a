"""What `/course enrol|approve|block|unblock|status|courses|link` do.

A change resolves the course and the member the manager named, then hands the decision to the
one decision path (bot.approvals.decisions), which checks who may decide, claims the enrolment,
reads it once and writes at most once. A repeated command changes nothing and says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
        limit = asyncio.Semaphore(4)

        async def row(course: Course) -> CourseRow:
            async with limit:
                return CourseRow(course, await self.platform.count_enrolments(course.id))

        return list(await asyncio.gather(*(row(c) for c in courses)))

    async def status(self, course_query: str, member_ref: Ref | None) -> CourseStatus | MemberStatus:
        course = await self.resolve.course(course_query)
        if member_ref is None:
            counts = await self.platform.count_enrolments(course.id)
            lesson_count = (
                len(await self.platform.list_lessons(course.id))
                if self.platform.supports(Capability.LESSONS) else None
            )
            return CourseStatus(course, counts, lesson_count)
        member = await self.resolve.member(member_ref)
        enrolment = await self.platform.find_enrolment(course.id, member.id)
        if enrolment is None or not self.platform.supports(Capability.LESSONS):
            return MemberStatus(course, member, enrolment)
        lessons = await self.platform.list_lessons(course.id)
        completed = await self.platform.list_completed_lessons(enrolment_id=enrolment.id)
        return MemberStatus(course, member, enrolment, lessons, completed)

    # ---- changes ----------------------------------------------------------------------

    async def change(self, actor: str, action: Action, course_query: str, member_ref: Ref,
                     *, pending: bool = False, via: Via = Via.COMMAND) -> DecisionResult:
        """Resolve what the manager named, then decide through the one decision path."""
        self._require_capability(action)
        course = await self.resolve.course(course_query)
        member = await self.resolve.member(member_ref)
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
