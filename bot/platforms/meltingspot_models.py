"""Pydantic models of the MeltingSpot payloads the adapter reads (`shared/reference/meltingspot-api.md`).

Fields are snake_case here and camelCase on the wire. Every model ignores fields it does not
know, accepts ids as strings or numbers, and takes timestamps in any of the three forms the
reference warns about (ISO strings, integer milliseconds, integer seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

# A number above this is milliseconds: 10^11 seconds is the year 5138, 10^11 ms is March 1973.
MS_THRESHOLD = 10**11


def parse_time(value: Any) -> datetime | None:
    """One parser for every MeltingSpot timestamp: ISO-8601 text, epoch seconds or epoch ms.

    Numbers (or digit strings) above 10^11 are milliseconds, others seconds. A naive ISO value is
    taken as UTC. Empty values and values that cannot be read become None rather than failing the
    whole record.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float):
        parsed = _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = _from_epoch(float(text)) if _is_number(text) else datetime.fromisoformat(
                text.replace("Z", "+00:00")
            )
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text[:1].isdigit() or text[:1] in "+-."


def _from_epoch(number: float) -> datetime:
    seconds = number / 1000.0 if abs(number) > MS_THRESHOLD else number
    return datetime.fromtimestamp(seconds, tz=UTC)


def _text_or_none(value: Any) -> str | None:
    """The docs type participant names as `object|null` (examples show `{}`): keep real strings only."""
    if isinstance(value, str):
        return value
    return None


def _id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _rate(value: Any) -> Any:
    if isinstance(value, float):
        return round(value)
    return value


Id = Annotated[str, BeforeValidator(_id)]
OptionalId = Annotated[str | None, BeforeValidator(_id)]
Timestamp = Annotated[datetime | None, BeforeValidator(parse_time)]
Text = Annotated[str | None, BeforeValidator(_text_or_none)]
Rate = Annotated[int | None, BeforeValidator(_rate)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class RawPage(_Payload):
    """The list envelope `{items, total}`; items stay raw so one bad record does not sink a page."""

    items: list[Any] = []
    total: int | None = None


class CourseRecord(_Payload):
    id: Id
    title: Text = None
    description: Text = None
    privacy: Text = None
    status: Text = None
    navigation_mode: Text = None


class SpotMemberRecord(_Payload):
    id: Id
    spot_id: OptionalId = None
    user_id: OptionalId = None
    email: Text = None
    title: Text = None
    lang: Text = None
    role: Text = None
    custom_role_id: OptionalId = None
    status: Text = None
    firstname: Text = None
    lastname: Text = None
    updated_at: Timestamp = None
    last_activity_at: Timestamp = None

    @property
    def full_name(self) -> str:
        return " ".join(p.strip() for p in (self.firstname, self.lastname) if p and p.strip())


class ParticipantRecord(_Payload):
    id: Id
    course_id: OptionalId = None
    spot_member_id: Id
    spot_member_email: Text = None
    spot_member_firstname: Text = None
    spot_member_lastname: Text = None
    status: Text = None
    invited_at: Timestamp = None
    started_at: Timestamp = None
    completed_at: Timestamp = None
    unenrolled_at: Timestamp = None
    last_activity_at: Timestamp = None
    completion_rate: Rate = None

    @property
    def member_name(self) -> str:
        parts = (self.spot_member_firstname, self.spot_member_lastname)
        name = " ".join(p.strip() for p in parts if p and p.strip())
        return name or (self.spot_member_email or "").strip()

    @property
    def latest_change(self) -> datetime | None:
        moments = [
            t
            for t in (self.invited_at, self.started_at, self.completed_at, self.unenrolled_at, self.last_activity_at)
            if t is not None
        ]
        return max(moments) if moments else None
