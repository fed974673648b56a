"""The one interface every course platform adapter implements.

Adapters know nothing of Slack: they take and return `bot.models` objects and raise the
errors below, whose messages are written for a community manager to read.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from bot.models import CompletedLesson, Course, Enrolment, EnrolmentCounts, Lesson, Member


class Capability(StrEnum):
    ENROL = "enrol"
    APPROVAL = "approval"  # enrolments can wait for an approve/block decision
    BLOCK = "block"
    BULK_INVITE = "bulk_invite"
    LESSONS = "lessons"
    COMPLETIONS = "completions"
    CREATE_COURSE = "create_course"
    LINK_BY_ID = "link_by_id"


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


class NotSupported(PlatformError):
    """The platform's API has no way to do this."""


class NotFound(PlatformError):
    pass


class CoursePlatform(abc.ABC):
    """Async access to one tenant of a course platform."""

    name: str = "platform"
    display_name: str = "the platform"
    capabilities: frozenset[Capability] = frozenset()

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def unsupported(self, what: str) -> NotSupported:
        return NotSupported(f"{self.display_name} has no API for {what}, so the bot cannot do it there.")

    # Courses
    @abc.abstractmethod
    async def list_courses(self) -> list[Course]: ...

    async def get_course(self, course_id: str) -> Course | None:
        return next((c for c in await self.list_courses() if c.id == course_id), None)

    @abc.abstractmethod
    async def count_enrolments(self, course_id: str) -> EnrolmentCounts: ...

    # Members
    @abc.abstractmethod
    async def find_members_by_email(self, emails: Iterable[str]) -> dict[str, Member]:
        """Exact, case-insensitive matches, keyed by the lower-cased email."""

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
        self, enrolment_id: str, *, approved: bool | None = None, blocked: bool | None = None
    ) -> Enrolment:
        """Change approval/blocking; everything else about the enrolment stays as it was."""

    # Lessons
    async def list_lessons(self, course_id: str) -> list[Lesson]:
        raise self.unsupported("lessons")

    async def list_completed_lessons(
        self, *, enrolment_id: str | None = None, since: datetime | None = None
    ) -> list[CompletedLesson]:
        raise self.unsupported("completed lessons")

    async def aclose(self) -> None:
        return None
