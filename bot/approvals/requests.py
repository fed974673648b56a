"""Approval requests as records and as cards: making one from the platform, finding it again, showing it.

Shared by the sync (which finds waiting enrolments) and the decision path (which decides them):
both build requests the same way, rebuild one from its card after Redis lost it, and bring a
card in line with its request.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import LockError

from bot.approvals import keys
from bot.approvals.store import ApprovalRequest, ApprovalStore
from bot.core.models import Course, Enrolment, Member, Visibility
from bot.platforms.base import CoursePlatform


@dataclass(frozen=True)
class CardRef:
    channel: str
    ts: str


@dataclass(frozen=True)
class FoundCard:
    """A card found in the channel through its message metadata."""

    request_id: str
    enrolment_id: str
    state: str
    channel: str
    ts: str


class RequestRules(Protocol):
    """What a new request of a course records from its rules (bot.approvals.rules)."""

    async def expectations(self, course_id: str) -> tuple[list[str], int]: ...


class CardBoard(Protocol):
    """The part of the Slack board the requests need: cards."""

    async def update_card(self, request: ApprovalRequest, where: CardRef | None = None) -> bool: ...
    async def find_card(self, where: CardRef, metadata: dict[str, Any] | None) -> FoundCard | None: ...


def now() -> datetime:
    return datetime.now(UTC)


class RequestBook:
    def __init__(self, platform: CoursePlatform, store: ApprovalStore, board: CardBoard) -> None:
        self.platform = platform
        self.store = store
        self.board = board
        self.rules: RequestRules | None = None

    async def expectations(self, course_id: str) -> tuple[list[str], int]:
        """Who is expected to decide this course's requests (besides the managers), and its quorum."""
        if self.rules is None:
            return [], 1
        return await self.rules.expectations(course_id)

    def build(self, enrolment: Enrolment, member: Member | None, course: Course | None, *,
              request_id: str | None = None, approvers: list[str] | None = None,
              quorum: int = 1) -> ApprovalRequest:
        return ApprovalRequest(
            id=request_id or self.store.new_id(),
            platform=self.platform.name,
            enrolment_id=enrolment.id,
            course_id=enrolment.course_id,
            member_id=enrolment.member_id,
            member_name=enrolment.member_name or (member.full_name if member else ""),
            member_email=member.email if member else "",
            member_company=enrolment.member_company or (member.company if member else ""),
            member_teams=list(enrolment.member_teams or (member.teams if member else ())),
            course_title=enrolment.course_title or (course.title if course else ""),
            course_visibility=course.visibility if course else Visibility.UNKNOWN,
            asked_at=enrolment.created_on,
            seen_at=now(),
            platform_updated_on=enrolment.updated_on,
            approvers=list(approvers or []),
            quorum=quorum,
        )

    async def courses(self, wanted: set[str]) -> dict[str, Course]:
        """Titles and visibility for cards, from a Redis cache; the platform is asked only on a miss."""
        cached = await self.store.courses()
        if wanted <= cached.keys():
            return cached
        courses = await self.platform.list_courses()
        await self.store.cache_courses(courses)
        return {c.id: c for c in courses}

    async def rebuild(self, card: FoundCard, enrolment: Enrolment | None) -> ApprovalRequest | None:
        """A request made again from a card's metadata and the platform's record."""
        if enrolment is None:
            return None
        current_id = await self.store.request_of(enrolment.id)
        if current_id == card.request_id:
            return await self.store.get(card.request_id)
        members = await self.platform.get_members([enrolment.member_id])
        courses = await self.courses({enrolment.course_id})
        approvers, quorum = await self.expectations(enrolment.course_id)
        request = self.build(enrolment, members.get(enrolment.member_id), courses.get(enrolment.course_id),
                             request_id=card.request_id, approvers=approvers, quorum=quorum)
        request = request.model_copy(update={"card_channel": card.channel, "card_ts": card.ts,
                                             "card_shows": request.card_signature()})
        if await self.store.create(request, replacing=current_id):
            return request
        return await self.store.get(card.request_id)

    async def recover(self, origin: CardRef, metadata: dict[str, Any] | None) -> ApprovalRequest | None:
        """A click on a card whose request Redis lost: rebuild it from the card and the platform."""
        card = await self.board.find_card(origin, metadata)
        if card is None:
            return None
        existing = await self.store.get(card.request_id)
        if existing is not None:
            return existing
        return await self.rebuild(card, await self.platform.get_enrolment(card.enrolment_id))

    async def show(self, request: ApprovalRequest, origin: CardRef | None = None) -> None:
        """Bring the card (and the clicked message, if it is another) in line with the request.

        One caller at a time per card: the others, waiting behind it, find the card already right."""
        lock = self.store.redis.lock(keys.CARD_LOCK(request.id), timeout=keys.CARD_LOCK.ttl, blocking_timeout=5)
        if not await lock.acquire():
            return  # someone is updating it right now, to at least what we know
        try:
            await self._show(request, origin)
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    async def _show(self, request: ApprovalRequest, origin: CardRef | None) -> None:
        request = await self.store.get(request.id) or request
        stale = request.card_ts and request.card_shows not in (request.card_signature(), "posting")
        if stale and await self.board.update_card(request):
            await self.store.update(request, card_shows=request.card_signature())
        if origin is not None and (origin.channel, origin.ts) != (request.card_channel, request.card_ts):
            await self.board.update_card(request, origin)
