"""Pydantic models of the Nexudus payloads the adapter reads (`shared/reference/nexudus-api.md`).

Every model allows extra fields: Nexudus records carry many more, and an update must
send the whole record back (a partial PUT clears what it omits), so the adapter PUTs the
raw dict it fetched, never a model dump.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

T = TypeVar("T")


def parse_time(value: Any) -> datetime | None:
    """Nexudus sends ISO strings, usually with Z; a naive value is taken as UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    Id: int
    CreatedOn: datetime | None = None
    UpdatedOn: datetime | None = None

    @field_validator("CreatedOn", "UpdatedOn", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime | None:
        return parse_time(value)


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(extra="allow")

    Records: list[T] = []
    CurrentPage: int = 1
    TotalItems: int | None = None
    TotalPages: int | None = None
    HasNextPage: bool = False


class ErrorItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    PropertyName: str | None = None
    Message: str | None = None
    AttemptedValue: Any = None


class Mutation(BaseModel):
    model_config = ConfigDict(extra="allow")

    Status: int | None = None
    Message: str | None = None
    Value: dict[str, Any] | None = None
    Errors: list[ErrorItem] | None = None
    WasSuccessful: bool | None = None


class CourseRecord(_Record):
    Title: str = ""
    Visibility: int | str | None = None
    Active: bool | None = True
    SummaryText: str | None = None
    BusinessId: int | None = None
    BusinessName: str | None = None
    HostId: int | None = None
    HostFullName: str | None = None
    TariffId: int | None = None
    TariffName: str | None = None
    SystemId: str | None = None


class BusinessRecord(_Record):
    Name: str | None = ""
    Active: bool | None = True


class TariffRecord(_Record):
    Name: str | None = ""
    BusinessId: int | None = None
    BusinessName: str | None = None
    Price: float | None = None
    CurrencyCode: str | None = None
    Visible: bool | None = True
    DisplayOrder: int | None = None


class SectionRecord(_Record):
    CourseId: int
    Title: str = ""
    DisplayOrder: int | None = 0
    UnlockType: int | None = None
    Active: bool | None = True


class CoworkerRecord(_Record):
    FullName: str | None = ""
    Email: str | None = ""
    CompanyName: str | None = ""
    Active: bool | None = True
    Archived: bool | None = False
    IsDefaultProfile: bool | None = None


class CourseMemberRecord(_Record):
    CourseId: int
    CoworkerId: int
    CourseTitle: str | None = ""
    CoworkerFullName: str | None = ""
    CoworkerCompanyName: str | None = ""
    CoworkerTeamNames: str | None = ""
    Approved: bool | None = False
    Blocked: bool | None = False
    LastCompletedLessonTitle: str | None = None
    LastAccess: datetime | None = None

    @field_validator("LastAccess", mode="before")
    @classmethod
    def _access(cls, value: Any) -> datetime | None:
        return parse_time(value)


class LessonRecord(_Record):
    CourseId: int
    Title: str = ""
    DisplayOrder: int | None = 0
    SectionId: int | None = None
    SectionTitle: str | None = None
    SectionDisplayOrder: int | None = None
    UnlockType: int | None = None
    CompletionType: int | None = None
    Active: bool | None = True


class CompletedLessonRecord(_Record):
    CourseLessonId: int
    CourseMemberId: int
    CourseLessonTitle: str | None = ""
    CourseMemberCoworkerFullName: str | None = ""
