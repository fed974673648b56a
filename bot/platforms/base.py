"""The one interface every course platform adapter implements.

Adapters know nothing of Slack: they take and return `bot.models` objects and raise the
errors below, whose messages are written for a community manager to read.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.capabilities import Capability
from bot.core.models import (
    CompletedLesson,
    Course,
    CourseDraft,
    CreationAttempt,
    Enrolment,
    EnrolmentCounts,
    Lesson,
    Location,
    Member,
    PricePlan,
    Section,
)

if TYPE_CHECKING:
    from bot.core.pacing import Budget


class PlatformError(Exception):
    """Something the platform refused or could not do, said in a sentence for a manager."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class PlatformUnavailable(PlatformError):
    """The platform kept failing after retries (timeouts, 5xx, throttling)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class CreationUnclear(PlatformError):
    """A create's answer was lost, and the bot cannot tell whether the platform made it: it must not
    send it again; the manager is told to look before trying again."""


class NotSupported(PlatformError):
    """The platform's API has no way to do this."""


class NotFound(PlatformError):
    pass


class ValidationFailed(PlatformError):
    """The platform refused the input. `fields` maps the name of the input it blames (for a course,
    a `CourseDraft` field name; "" when it names none) to what is wrong with it."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


@dataclass(frozen=True)
class InviteOptions:
    """How one bulk invitation invites, where the platform lets the bot choose (MeltingSpot)."""

    send_email: bool | None = None  # None: the platform's default (`invitation_email`)
    invited_by: str | None = None  # the inviting manager's own member id on the platform, when known


class CoursePlatform(abc.ABC):
    """Async access to one tenant of a course platform."""

    name: str = "platform"
    display_name: str = "the platform"
    capabilities: frozenset[Capability] = frozenset()
    invitation_email: bool | None = None
    """Whether the platform emails the people the bot invites, by default. None: its API sends no
    invitation email at all, so `--no-email` and the invite form's checkbox do not apply."""
    cache_reads: bool = True
    """Whether slow-changing reads are worth caching (`bot.platforms.cache`); False for the in-memory sandbox."""
    single_course_read: bool = True
    """Whether `get_course` reads one course; False when it has to read the whole list."""

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    async def check_access(self) -> str:
        """Prove the credentials work with as little as possible (`coursebot doctor`, `/healthz`):
        what was proved, in a few words, or a PlatformError saying what is wrong."""
        courses = await self.list_courses()
        return f"read {len(courses)} courses"

    def unsupported(self, what: str) -> NotSupported:
        return NotSupported(f"{self.display_name} has no API for {what}, so the bot cannot do it there.")

    # Courses
    @abc.abstractmethod
    async def list_courses(self) -> list[Course]: ...

    async def get_course(self, course_id: str) -> Course | None:
        return next((c for c in await self.list_courses() if c.id == course_id), None)

    def looks_like_course_id(self, query: str) -> bool:
        """Whether what a manager typed has the shape of this platform's course ids, so that
        `get_course` is worth trying before the whole list."""
        return False

    async def drop_cached_courses(self) -> bool:
        """Forget a cached course list so the next read asks the platform; True if one was dropped.

        Called when a course a manager named is not in the list (it may be new). Adapters cache
        nothing, so the default drops nothing; the caching wrapper overrides it."""
        return False

    @abc.abstractmethod
    async def count_enrolments(self, course_id: str) -> EnrolmentCounts: ...

    async def count_enrolments_by_course(self, course_ids: Iterable[str]) -> dict[str, EnrolmentCounts]:
        """Counts for many courses (`/course courses`): one count per course, a few at a time,
        unless the adapter has a cheaper way."""
        limit = asyncio.Semaphore(4)

        async def one(course_id: str) -> EnrolmentCounts:
            async with limit:
                return await self.count_enrolments(course_id)

        ids = list(dict.fromkeys(course_ids))
        return dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))

    # Members
    @abc.abstractmethod
    async def find_members_by_email(self, emails: Iterable[str], *, create_missing: bool = True) -> dict[str, Member]:
        """Exact, case-insensitive matches, keyed by the lower-cased email. `create_missing=False`:
        only look, even where the adapter is set to add missing people (MELTINGSPOT_CREATE_MEMBERS)."""

    @abc.abstractmethod
    async def get_member(self, member_id: str) -> Member | None: ...

    async def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        found: dict[str, Member] = {}
        for member_id in dict.fromkeys(member_ids):
            member = await self.get_member(member_id)
            if member is not None:
                found[member_id] = member
        return found

    # Enrolments
    @abc.abstractmethod
    async def find_enrolment(self, course_id: str, member_id: str) -> Enrolment | None: ...

    @abc.abstractmethod
    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None: ...

    @abc.abstractmethod
    async def list_enrolments(
        self,
        *,
        course_id: str | None = None,
        pending_only: bool = False,
        updated_since: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[Enrolment]: ...

    @abc.abstractmethod
    async def create_enrolment(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment: ...

    @abc.abstractmethod
    async def set_access(
        self, enrolment: Enrolment, *, approved: bool | None = None, blocked: bool | None = None
    ) -> Enrolment:
        """Change approval/blocking of an enrolment the caller has just read; everything else stays as it was.

        One write: the adapter uses what the caller read (`enrolment.record` when it holds the full
        record) instead of reading again, and returns the enrolment as written."""

    # Bulk work (bot/bulk/service.py): many members, paced by the platform's shared budget
    bulk_invite_size: int = 1
    """How many members one invite request can carry (1: the platform enrols one at a time)."""

    def rate_budget(self) -> Budget | None:
        """The budget, shared by every bot process, that this platform's writes spend (None: unpaced)."""
        return None

    async def enrol_absent(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment:
        """Create an enrolment the caller has just seen is absent, without looking again first.

        Adapters that look before every create override this to skip that read; after an unclear
        failure they still look before trying again."""
        return await self.create_enrolment(course_id, member_id, approved=approved)

    async def invite_members(
        self, course_id: str, member_ids: list[str], *, checked: bool = False, options: InviteOptions | None = None
    ) -> dict[str, Enrolment | PlatformError]:
        """Enrol many members: every id maps to its enrolment or the platform's refusal.

        `checked`: the caller has just listed the course and sends only members not in it.
        `options`: the invitation email and the inviter, on platforms that have them (ignored here)."""
        results: dict[str, Enrolment | PlatformError] = {}
        for member_id in dict.fromkeys(member_ids):
            try:
                if checked:
                    results[member_id] = await self.enrol_absent(course_id, member_id)
                else:
                    results[member_id] = await self.create_enrolment(course_id, member_id)
            except PlatformError as exc:
                results[member_id] = exc
        return results

    # Lessons
    async def list_lessons(self, course_id: str) -> list[Lesson]:
        raise self.unsupported("lessons")

    async def list_completed_lessons(
        self, *, enrolment_id: str | None = None, since: datetime | None = None
    ) -> list[CompletedLesson]:
        raise self.unsupported("completed lessons")

    async def list_lesson_completions(self, lesson_id: str) -> list[CompletedLesson]:
        """Every completion of one lesson (adapters with a lesson filter override this whole-table read)."""
        return [c for c in await self.list_completed_lessons() if c.lesson_id == lesson_id]

    async def list_sections(self, course_id: str) -> list[Section]:
        raise self.unsupported("course sections")

    async def lessons_with_types(self, course_id: str) -> list[Lesson]:
        """`list_lessons`, with each lesson's unlock and completion types filled in where the list omits them."""
        return await self.list_lessons(course_id)

    async def create_completed_lesson(self, enrolment_id: str, lesson_id: str) -> CompletedLesson:
        """Record a completion for an enrolment (not a member); an existing record is returned as it is."""
        raise self.unsupported("recording completed lessons")

    async def delete_completed_lesson(self, completed_id: str) -> None:
        """Remove one completion record; one already gone counts as removed."""
        raise self.unsupported("removing completed lessons")

    # Course creation
    async def list_locations(self) -> list[Location]:
        raise self.unsupported("listing locations")

    async def list_price_plans(self) -> list[PricePlan]:
        raise self.unsupported("listing price plans")

    async def search_members(self, query: str, *, limit: int = 20) -> list[Member]:
        """Members whose name or email contains `query` (for pickers; not an exact match)."""
        raise self.unsupported("searching members by name")

    async def begin_course_creation(self, title: str) -> CreationAttempt:
        """Note how the platform looks before a course titled `title` is created (see `find_course_created_by`)."""
        raise self.unsupported("creating courses")

    async def find_course_created_by(self, request_key: str, attempt: CreationAttempt) -> Course | None:
        """The course a create begun as `attempt` made, or None when it certainly made none.

        Raises CreationUnclear when it cannot tell (several candidates). `request_key` may serve as
        a hint where the platform keeps it; correctness must not depend on it."""
        raise self.unsupported("creating courses")

    async def create_course(self, draft: CourseDraft, *, request_key: str,
                            attempt: CreationAttempt | None = None) -> Course:
        """Create a course at most once: after an unclear failure it looks (`find_course_created_by`)
        before it sends again, and raises CreationUnclear rather than risk a second course.

        `attempt`: from `begin_course_creation`, when the caller keeps it (to look again after a crash).
        Raises ValidationFailed, with `fields` named after `CourseDraft`, when the platform refuses the input."""
        raise self.unsupported("creating courses")

    # Date-ranged reads for the daily digest: their cost follows the day's changes, not the tenant.
    # The defaults work on any adapter; adapters with range filters or a whole-table list override them.
    async def list_enrolments_created(self, start: datetime, end: datetime | None = None) -> list[Enrolment]:
        """Enrolments created in [start, end)."""
        found = await self.list_enrolments(created_since=start)
        return [e for e in found
                if e.created_on is not None and e.created_on >= start and (end is None or e.created_on < end)]

    async def list_all_lessons(self) -> list[Lesson]:
        """Every lesson of every course."""
        lessons: list[Lesson] = []
        for course in await self.list_courses():
            lessons.extend(await self.list_lessons(course.id))
        return lessons

    async def completed_lesson_pages(self, since: datetime | None = None) -> AsyncIterator[list[CompletedLesson]]:
        """Every completed lesson (created since `since`), a page at a time, so a full read stays small."""
        yield await self.list_completed_lessons(since=since)

    async def aclose(self) -> None:
        return None
