"""The bot's own view of a course platform: what every adapter returns.

Platform ids are strings everywhere (Nexudus ints are stringified, MeltingSpot ids are UUIDs),
so services and Redis keys never care which platform they talk to.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Visibility(StrEnum):
    PUBLIC = "Public"
    HIDDEN = "Hidden"
    PRIVATE = "Private"
    PAID = "Paid"
    UNKNOWN = "Unknown"

    @property
    def needs_approval(self) -> bool:
        return self in (Visibility.PRIVATE, Visibility.PAID)


class AccessState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    BLOCKED = "blocked"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Course(_Model):
    id: str
    title: str
    visibility: Visibility = Visibility.UNKNOWN
    active: bool = True
    summary: str = ""
    admin_url: str | None = None


class Member(_Model):
    id: str
    email: str = ""
    full_name: str = ""
    company: str = ""
    teams: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.full_name or self.email or f"member {self.id}"


class Enrolment(_Model):
    id: str
    course_id: str
    member_id: str
    course_title: str = ""
    member_name: str = ""
    member_company: str = ""
    member_teams: tuple[str, ...] = ()
    approved: bool = False
    blocked: bool = False
    created_on: datetime | None = None
    updated_on: datetime | None = None
    last_access: datetime | None = None
    last_completed_lesson: str | None = None
    completion_rate: int | None = None
    status: str | None = Field(default=None, description="the platform's own status word, if it has one")
    record: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)
    """The platform's full record when it was read by id (a Nexudus update PUTs the whole object back);
    None when it came from a list, whose records are partial."""

    @property
    def state(self) -> AccessState:
        if self.blocked:
            return AccessState.BLOCKED
        return AccessState.APPROVED if self.approved else AccessState.PENDING


class Lesson(_Model):
    id: str
    course_id: str
    title: str
    display_order: int = 0
    section_id: str | None = None
    section_title: str | None = None
    section_order: int = 0
    unlock_type: str | None = None
    completion_type: str | None = None
    active: bool = True


class CompletedLesson(_Model):
    id: str
    enrolment_id: str
    lesson_id: str
    lesson_title: str = ""
    member_name: str = ""
    created_on: datetime | None = None


class EnrolmentCounts(_Model):
    total: int = 0
    approved: int = 0
    pending: int = 0
    blocked: int = 0


# ---- course creation ------------------------------------------------------------------------

class Location(_Model):
    """Where a course is run (a Nexudus "business")."""

    id: str
    name: str


class PricePlan(_Model):
    """What a member buys to join a paid course (a Nexudus "tariff")."""

    id: str
    name: str
    location_id: str | None = None
    location_name: str = ""
    price: float | None = None
    currency: str = ""
    visible: bool = True


class Section(_Model):
    id: str
    course_id: str
    title: str
    display_order: int = 0
    unlock_type: str | None = None
    active: bool = True


class CreationAttempt(_Model):
    """How the platform looked just before a course was sent to it: enough to recognise, later, the
    course that create made, by title and creation time alone (no mark on the course needed)."""

    title: str
    since: datetime  # the platform's own clock just before the create, less an allowance for skew
    existing: list[str] = []  # ids of the courses that already had exactly this title then


class CourseDraft(_Model):
    """A course to create, already checked by the service (a plan is set exactly when it is Paid)."""

    title: str
    location_id: str
    host_id: str
    display_order: int = 0
    visibility: Visibility = Visibility.PUBLIC
    plan_id: str | None = None
    summary: str = ""
    description: str = ""
    group_name: str = ""
    show_on_home_page: bool = False
    active: bool = True
