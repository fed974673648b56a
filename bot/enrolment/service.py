"""Enrolment changes and look-ups: what `/course enrol|approve|block|unblock|status|courses|link` do.

Each change runs under a Redis lock for its course+member, reads the current state first,
and writes only if something must change, so a repeated command changes nothing and
says so. Every change, refusal and platform error goes to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum

from redis.exceptions import LockError

from bot.core import keys
from bot.core.errors import NotAllowed, UserFacingError
from bot.core.grammar import Ref, RefKind
from bot.core.models import AccessState, CompletedLesson, Course, Enrolment, EnrolmentCounts, Lesson, Member
from bot.core.permissions import Permissions
from bot.core.store import Redis, audit
from bot.enrolment.resolve import Resolver
from bot.platforms.base import Capability, CoursePlatform, PlatformError
from bot.slack.directory import Directory

ALREADY = {
    AccessState.APPROVED: "already enrolled and approved",
    AccessState.PENDING: "already enrolled, waiting for approval,",
    AccessState.BLOCKED: "enrolled but blocked",
}


class Action(StrEnum):
    ENROL = "enrol"
    APPROVE = "approve"
    BLOCK = "block"
    UNBLOCK = "unblock"


@dataclass(frozen=True)
class ChangeResult:
    action: Action
    course: Course
    member: Member
    enrolment: Enrolment
    changed: bool
    note: str = ""


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
        self, platform: CoursePlatform, redis: Redis, directory: Directory, permissions: Permissions
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.directory = directory
        self.permissions = permissions
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
                     *, pending: bool = False) -> ChangeResult:
        """Resolve, check, lock, look, and write at most once."""
        target = f"{course_query} / {member_ref}"
        try:
            await self._require_manager(actor, action.value, target)
            self._require_capability(action)
            course = await self.resolve.course(course_query)
            member = await self.resolve.member(member_ref)
            if action is Action.APPROVE:
                await self._refuse_self_approval(actor, member)
            lock = self.redis.lock(keys.ENROLMENT_LOCK(course.id, member.id), timeout=keys.ENROLMENT_LOCK.ttl,
                                   blocking_timeout=20)
            if not await lock.acquire():
                raise UserFacingError(
                    "Someone else is changing {member}'s enrolment in {course} right now. Try again in a moment.",
                    member=member.label, course=course.title,
                )
            try:
                result = await self._apply(action, course, member, pending=pending)
            finally:
                with contextlib.suppress(LockError):  # expired while the platform was slow: nothing to undo
                    await lock.release()
        except NotAllowed:
            raise
        except (UserFacingError, PlatformError) as exc:
            await audit(self.redis, actor=actor, action=action.value, target=target, outcome="error",
                        detail=str(exc))
            raise
        outcome = "changed" if result.changed else "unchanged"
        await audit(self.redis, actor=actor, action=action.value,
                    target=f"course {course.id} / member {member.id}", outcome=outcome, detail=result.note)
        return result

    async def _apply(self, action: Action, course: Course, member: Member, *, pending: bool) -> ChangeResult:
        platform = self.platform
        enrolment = await platform.find_enrolment(course.id, member.id)

        def result(e: Enrolment, changed: bool, note: str = "") -> ChangeResult:
            return ChangeResult(action, course, member, e, changed, note)

        if action is Action.ENROL:
            if enrolment is not None:
                return result(enrolment, False, ALREADY[enrolment.state])
            created = await platform.create_enrolment(course.id, member.id, approved=not pending)
            return result(created, True)
        if enrolment is None:
            raise UserFacingError(
                "{member} is not enrolled in {course}, so there is nothing to " + action.value
                + ". Enrol them first: `/course enrol`.",
                member=member.label, course=course.title,
            )
        if action is Action.APPROVE:
            if enrolment.state is AccessState.APPROVED:
                return result(enrolment, False, "already approved")
            note = "the block was lifted" if enrolment.blocked else ""
            return result(await platform.set_access(enrolment.id, approved=True, blocked=False), True, note)
        if action is Action.BLOCK:
            if enrolment.blocked:
                return result(enrolment, False, "already blocked")
            return result(await platform.set_access(enrolment.id, blocked=True), True)
        if not enrolment.blocked:
            return result(enrolment, False, "was not blocked")
        return result(await platform.set_access(enrolment.id, blocked=False), True)

    async def link(self, actor: str, user: Ref, target: Ref) -> LinkResult:
        await self._require_manager(actor, "link", f"{user} -> {target}")
        member = await self.resolve.member(target)
        value = member.email.lower() if target.kind is RefKind.EMAIL else member.id
        previous = await self.redis.get(keys.LINK(user.value))
        await self.redis.set(keys.LINK(user.value), value)
        await audit(self.redis, actor=actor, action="link", target=f"<@{user.value}>", outcome="changed",
                    detail=f"member {member.id}")
        return LinkResult(user.value, member, str(previous) if previous else None)

    # ---- checks -----------------------------------------------------------------------

    async def _require_manager(self, actor: str, action: str, target: str) -> None:
        if await self.permissions.is_manager(actor):
            return
        await audit(self.redis, actor=actor, action=action, target=target, outcome="refused",
                    detail="not a manager")
        raise NotAllowed(self.permissions.refusal())

    def _require_capability(self, action: Action) -> None:
        needed = {Action.ENROL: Capability.ENROL, Action.APPROVE: Capability.APPROVAL,
                  Action.BLOCK: Capability.BLOCK, Action.UNBLOCK: Capability.BLOCK}[action]
        if not self.platform.supports(needed):
            raise UserFacingError(
                f"{self.platform.display_name} has no way to {action.value} through its API, so nothing was "
                "changed. Do it in its admin panel instead."
            )

    async def _refuse_self_approval(self, actor: str, member: Member) -> None:
        email = await self.directory.email_of(actor)
        if email and member.email and email.lower() == member.email.lower():
            raise UserFacingError("That is your own enrolment: another manager has to approve it.")
