"""Approval requests: the sync that finds waiting enrolments, and the decision made exactly once.

The sync reads the platform incrementally (what changed since the largest UpdatedOn it has
seen, minus an overlap, since the platform's filter has minute precision), keeps one request
per waiting enrolment in Redis, and has each shown on a card. A decision, from any surface,
goes through `decide`: manager check, an atomic claim (the first wins), a fresh read of the
enrolment, at most one platform write, then every surface is told. The service knows nothing
of Slack: it talks to a `Board`, which the Slack side implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from redis.exceptions import LockError

from bot.approvals import keys as approval_keys
from bot.approvals.store import ApprovalRequest, ApprovalStore, Claim, Decision, Holder, RequestState
from bot.core import keys
from bot.core.models import AccessState, Course, Enrolment, Member, Visibility
from bot.core.permissions import Permissions
from bot.core.store import Redis, audit, audit_entries
from bot.platforms.base import Capability, CoursePlatform, PlatformError
from bot.slack.directory import Directory, DirectoryError

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=2)  # the platform filters by the minute: read a little behind the cursor
SKEW = timedelta(days=1)  # first cursor, when nothing was seen yet: safely behind the platform's clock
HISTORY_PAGES = 10  # conversations.history pages (200 messages each) read to find cards after a flush


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


@dataclass(frozen=True)
class HomeData:
    waiting: list[ApprovalRequest]
    recent: list[ApprovalRequest]
    per_course: list[tuple[str, Visibility, int]]
    platform: str
    last_synced: float | None
    note: str = ""  # shown instead of the lists, e.g. when the platform has no approval step


@dataclass
class BatchReport:
    approved: list[ApprovalRequest] = field(default_factory=list)
    already: list[ApprovalRequest] = field(default_factory=list)
    skipped: list[tuple[ApprovalRequest | None, str]] = field(default_factory=list)
    failed: list[tuple[ApprovalRequest | None, str]] = field(default_factory=list)


class Board(Protocol):
    """Where requests are shown and people are told: Slack, seen from the service."""

    @property
    def can_post(self) -> bool:
        """Is there a channel to post cards to?"""

    async def post_card(self, request: ApprovalRequest) -> CardRef | None:
        """Post the card; None when Slack refused (nothing posted); raises when the outcome is unknown."""

    async def update_card(self, request: ApprovalRequest, where: CardRef | None = None) -> bool: ...
    async def find_cards(self, wanted: set[str], *, exhaustive: bool) -> dict[str, FoundCard]: ...
    async def find_card(self, where: CardRef, metadata: dict[str, Any] | None) -> FoundCard | None: ...
    async def remind(self, request: ApprovalRequest, waited: timedelta) -> None: ...
    async def tell_member(self, request: ApprovalRequest) -> None: ...
    async def publish_home(self, user_id: str, home: HomeData | None) -> None: ...


class Outcome(StrEnum):
    DONE = "done"  # this call made the platform write
    ALREADY = "already"  # decided before (here or elsewhere); the card now shows it
    BUSY = "busy"  # someone else's decision is being written right now
    FAILED = "failed"  # the platform failed; nothing changed, the card offers Retry
    NOT_ALLOWED = "not_allowed"
    OWN = "own"  # a manager's own enrolment
    MISSING = "missing"  # no such request


@dataclass(frozen=True)
class DecisionResult:
    outcome: Outcome
    request: ApprovalRequest | None = None
    message: str = ""
    holder: Holder | None = None


@dataclass
class SyncReport:
    skipped: str = ""
    full: bool = False
    new: int = 0
    adopted: int = 0
    closed: int = 0
    posted: int = 0
    reminded: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.new or self.adopted or self.closed)


class _Busy(Exception):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class ApprovalService:
    def __init__(
        self,
        platform: CoursePlatform,
        redis: Redis,
        board: Board,
        directory: Directory,
        permissions: Permissions,
        *,
        reminder_after: timedelta = timedelta(hours=24),
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.store = ApprovalStore(redis)
        self.board = board
        self.directory = directory
        self.permissions = permissions
        self.reminder_after = reminder_after

    @property
    def available(self) -> bool:
        return self.platform.supports(Capability.APPROVAL)

    # ---- sync -------------------------------------------------------------------------

    async def sync(self) -> SyncReport:
        """One poll. Several workers may call it at once: a Redis lock lets one of them run it."""
        if not self.available:
            return SyncReport(skipped=f"{self.platform.display_name} has no approval step")
        lock = self.redis.lock(approval_keys.SYNC_LOCK(), timeout=approval_keys.SYNC_LOCK.ttl, blocking=False)
        if not await lock.acquire():
            return SyncReport(skipped="another process is running the sync")
        try:
            report = await self._sync(lock)
            await self.store.mark_synced()
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        if report.changed:
            await self.refresh_homes()
        return report

    async def _sync(self, lock: Any) -> SyncReport:
        cursor = await self.store.cursor()
        reconcile = await self.store.reconcile_due()
        report = SyncReport(full=cursor is None or reconcile)
        if report.full:
            records = await self.platform.list_enrolments(pending_only=True)
        else:
            assert cursor is not None
            records = await self.platform.list_enrolments(updated_since=cursor - OVERLAP)
        by_id = {e.id: e for e in records}  # pages may overlap: one record per Id

        new: list[tuple[Enrolment, str | None]] = []
        held_back: list[datetime] = []
        for enrolment in by_id.values():
            current_id = await self.store.request_of(enrolment.id)
            current = await self.store.get(current_id) if current_id else None
            if enrolment.state is AccessState.PENDING:
                if current is not None and (current.state.open or not _newer(enrolment, current)):
                    continue  # already tracked, or an old read of what was just decided
                new.append((enrolment, current_id))
            elif current is not None and current.state.open:
                if await self._close_outside(current, enrolment):
                    report.closed += 1
                elif enrolment.updated_on is not None:
                    held_back.append(enrolment.updated_on)  # a click is deciding it: look again next time

        if report.full:
            pending_ids = {e.id for e in by_id.values() if e.state is AccessState.PENDING}
            report.closed += await self._close_vanished(pending_ids)
            found = {}
            if new or cursor is None:
                found = await self.board.find_cards({e.id for e, _ in new}, exhaustive=cursor is None)
            await self._create(new, found, report)
            report.closed += await self._correct_stale_cards(found, pending_ids)
        else:
            await self._create(new, {}, report)

        await self._advance_cursor(cursor, by_id.values(), held_back)
        report.posted = await self._post_missing_cards(lock)
        report.reminded = await self._remind()
        return report

    async def _advance_cursor(self, cursor: datetime | None, records: Any, held_back: list[datetime]) -> None:
        seen = [e.updated_on for e in records if e.updated_on is not None]
        candidates = [c for c in (cursor, max(seen, default=None)) if c is not None]
        if cursor is None:
            candidates.append(_now() - SKEW)
        target = max(candidates)
        if held_back:
            target = min(target, min(held_back))
        if cursor is None or target > cursor:
            await self.store.set_cursor(target)

    async def _create(self, new: list[tuple[Enrolment, str | None]], found: dict[str, FoundCard],
                      report: SyncReport) -> None:
        if not new:
            return
        members = await self.platform.get_members([e.member_id for e, _ in new])
        courses = await self._courses({e.course_id for e, _ in new})
        for enrolment, current_id in new:
            card = found.get(enrolment.id)
            adopt = card is not None and card.state == RequestState.PENDING.value and card.request_id != current_id
            request = self._request(enrolment, members.get(enrolment.member_id), courses.get(enrolment.course_id),
                                    request_id=card.request_id if adopt and card else None)
            if adopt and card is not None:
                request = request.model_copy(update={"card_channel": card.channel, "card_ts": card.ts,
                                                     "card_shows": request.card_signature()})
            if await self.store.create(request, replacing=current_id):
                if adopt:
                    report.adopted += 1
                else:
                    report.new += 1

    def _request(self, enrolment: Enrolment, member: Member | None, course: Course | None, *,
                 request_id: str | None = None) -> ApprovalRequest:
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
            seen_at=_now(),
            platform_updated_on=enrolment.updated_on,
        )

    async def _courses(self, wanted: set[str]) -> dict[str, Course]:
        """Titles and visibility for cards, from a Redis cache; the platform is asked only on a miss."""
        cached = await self.store.courses()
        if wanted <= cached.keys():
            return cached
        courses = await self.platform.list_courses()
        await self.store.cache_courses(courses)
        return {c.id: c for c in courses}

    async def _close_vanished(self, pending_ids: set[str]) -> int:
        """On a full read: open requests whose enrolment no longer waits were decided (or deleted) unseen."""
        closed = 0
        for request in await self.store.open_requests():
            if request.enrolment_id in pending_ids:
                continue
            enrolment = await self.platform.get_enrolment(request.enrolment_id)
            if enrolment is None or enrolment.state is not AccessState.PENDING:
                closed += await self._close_outside(request, enrolment)
        return closed

    async def _correct_stale_cards(self, found: dict[str, FoundCard], pending_ids: set[str]) -> int:
        """After a flush: a card still offering buttons for an enrolment decided meanwhile is set right."""
        corrected = 0
        for enrolment_id, card in found.items():
            if card.state != RequestState.PENDING.value or enrolment_id in pending_ids:
                continue
            if await self.store.get(card.request_id) is not None:
                continue
            enrolment = await self.platform.get_enrolment(enrolment_id)
            request = await self._rebuild(card, enrolment)
            if request is not None and request.state.open and enrolment is not None:
                corrected += await self._close_outside(request, enrolment)
        return corrected

    async def _rebuild(self, card: FoundCard, enrolment: Enrolment | None) -> ApprovalRequest | None:
        """A request made again from a card's metadata and the platform's record."""
        if enrolment is None:
            return None
        current_id = await self.store.request_of(enrolment.id)
        if current_id == card.request_id:
            return await self.store.get(card.request_id)
        members = await self.platform.get_members([enrolment.member_id])
        courses = await self._courses({enrolment.course_id})
        request = self._request(enrolment, members.get(enrolment.member_id), courses.get(enrolment.course_id),
                                request_id=card.request_id)
        request = request.model_copy(update={"card_channel": card.channel, "card_ts": card.ts,
                                             "card_shows": request.card_signature()})
        if await self.store.create(request, replacing=current_id):
            return request
        return await self.store.get(card.request_id)

    async def _close_outside(self, request: ApprovalRequest, enrolment: Enrolment | None) -> int:
        """Record a decision made outside the bot (admin panel, /course, deletion) and fix the card."""
        state = RequestState.GONE if enrolment is None else RequestState(enrolment.state.value)
        claim = await self.store.claim(request.id, "", state.value)
        if claim is None:
            return 0
        try:
            actor = await self._outside_actor(request, state)
            request = await self.store.update(
                request, state=state, decided_by=actor, decided_at=_now(), error="", failed_action="",
                platform_updated_on=enrolment.updated_on if enrolment else request.platform_updated_on,
            )
            await self.store.finish(claim)
        except BaseException:
            await self.store.release(claim)
            raise
        await self._show(request)
        return 1

    async def _outside_actor(self, request: ApprovalRequest, state: RequestState) -> str:
        """Who did it, when the audit log says a manager ran `/course approve|block` on it just now."""
        action = {RequestState.APPROVED: "approve", RequestState.BLOCKED: "block"}.get(state)
        if action is None:
            return ""
        target = f"course {request.course_id} / member {request.member_id}"
        since = request.seen_at.timestamp() - 60
        for entry in await audit_entries(self.redis, limit=200):
            if entry.get("at", 0) < since:
                break
            if (entry.get("action") == action and entry.get("target") == target
                    and entry.get("outcome") == "changed" and not str(entry.get("detail", "")).startswith("request")):
                return str(entry.get("actor", ""))
        return ""

    async def _post_missing_cards(self, lock: Any) -> int:
        posted = 0
        for request in await self.store.open_requests():
            if request.card_ts:
                continue
            if await self._post(request):
                posted += 1
                try:
                    await lock.reacquire()  # keep the sync lock while a long first run posts its cards
                except LockError:
                    log.warning("approval sync: lost its lock while posting cards; the next poll goes on")
                    break
        return posted

    async def _post(self, request: ApprovalRequest) -> bool:
        if not self.board.can_post:
            return False
        if request.card_shows == "posting":
            # An earlier attempt may have posted and died before recording it: look before posting again.
            found = await self.board.find_cards({request.enrolment_id}, exhaustive=False)
            card = found.get(request.enrolment_id)
            if card is not None and card.request_id == request.id:
                await self.store.update(request, card_channel=card.channel, card_ts=card.ts,
                                        card_shows=RequestState.PENDING.value)
                return False
        request = await self.store.update(request, card_shows="posting")
        try:
            ref = await self.board.post_card(request)
        except Exception:
            log.exception("approval card for request %s: the post's outcome is unknown; checking next time",
                          request.id)
            return False
        if ref is None:  # Slack said no: nothing was posted, so the next try need not look first
            await self.store.update(request, card_shows="")
            return False
        await self.store.update(request, card_channel=ref.channel, card_ts=ref.ts,
                                card_shows=request.card_signature())
        latest = await self.store.get(request.id)
        if latest is not None and latest.card_signature() != latest.card_shows:
            await self._show(latest)  # decided while the card was being posted
        return True

    async def _remind(self) -> int:
        reminded = 0
        now = _now()
        for request in await self.store.waiting_before(now - self.reminder_after):
            if request.card_ts and await self.store.remind_once(request.id):
                await self.board.remind(request, now - request.waiting_since)
                reminded += 1
        return reminded

    # ---- decisions --------------------------------------------------------------------

    async def decide(
        self,
        request_id: str,
        decision: Decision,
        actor: str,
        *,
        reason: str = "",
        via: str = "card",
        origin: CardRef | None = None,
        origin_metadata: dict[str, Any] | None = None,
        notify: bool = True,
        refresh_home: bool = True,
    ) -> DecisionResult:
        """Decide a request at most once, whoever clicks and however often."""
        request = await self.store.get(request_id)
        if request is None and origin is not None:
            request = await self.recover(origin, origin_metadata)
        if request is None:
            return DecisionResult(Outcome.MISSING)
        if not request.state.open:
            await self._show(request, origin)  # a card that lags behind is set right
            return DecisionResult(Outcome.ALREADY, request, holder=await self.store.holder(request.id))
        target = f"course {request.course_id} / member {request.member_id}"
        if not await self.permissions.is_manager(actor):
            await audit(self.redis, actor=actor, action=decision.value, target=target, outcome="refused",
                        detail="not a manager")
            return DecisionResult(Outcome.NOT_ALLOWED, request, self.permissions.refusal())
        if decision is Decision.APPROVE and await self._is_own(actor, request):
            await audit(self.redis, actor=actor, action=decision.value, target=target, outcome="refused",
                        detail="own enrolment")
            return DecisionResult(Outcome.OWN, request)
        claim = await self.store.claim(request.id, actor, decision.value)
        if claim is None:
            holder = await self.store.holder(request.id)
            latest = await self.store.get(request.id) or request
            if (holder is not None and holder.final) or not latest.state.open:
                await self._show(latest, origin)  # a card that lags behind is set right
                return DecisionResult(Outcome.ALREADY, latest, holder=holder)
            return DecisionResult(Outcome.BUSY, latest, holder=holder)
        try:
            result = await self._decide_claimed(request, claim, decision, actor, reason, via)
        except (PlatformError, _Busy) as exc:
            await self.store.release(claim)
            message = exc.message if isinstance(exc, PlatformError) else str(exc)
            await audit(self.redis, actor=actor, action=decision.value, target=target, outcome="platform error",
                        detail=message)
            failed = await self.store.update(request, error=message, failed_action=decision.value, reason=reason)
            await self._show(failed, origin)
            return DecisionResult(Outcome.FAILED, failed, message)
        except BaseException:
            await self.store.release(claim)  # safe: whoever claims next reads the platform before writing
            raise
        assert result.request is not None
        await self._show(result.request, origin)
        if result.outcome is Outcome.DONE and notify:
            await self.board.tell_member(result.request)
        if refresh_home:  # decided now, or found decided elsewhere: either way Home changed
            await self.refresh_homes()
        return result

    async def _decide_claimed(self, request: ApprovalRequest, claim: Claim, decision: Decision, actor: str,
                              reason: str, via: str) -> DecisionResult:
        lock = self.redis.lock(keys.ENROLMENT_LOCK(request.course_id, request.member_id),
                               timeout=keys.ENROLMENT_LOCK.ttl, blocking_timeout=20)
        if not await lock.acquire():
            raise _Busy(f"Someone else is changing {request.member_label}'s enrolment right now. Try again shortly.")
        try:
            current = await self.platform.get_enrolment(request.enrolment_id)
            if current is None or current.state is not AccessState.PENDING:
                # Decided elsewhere (or by an earlier attempt whose answer was lost): show the truth.
                state = RequestState.GONE if current is None else RequestState(current.state.value)
                mine = request.failed_action == decision.value and state is decision.state
                who = actor if mine else await self._outside_actor(request, state)
                updated = await self.store.update(
                    request, state=state, decided_by=who, decided_at=_now(), error="", failed_action="",
                    reason=reason if mine else request.reason,
                    platform_updated_on=current.updated_on if current else request.platform_updated_on,
                )
                await self.store.finish(claim, actor=who, action=state.value)
                return DecisionResult(Outcome.ALREADY, updated)
            if decision is Decision.APPROVE:
                written = await self.platform.set_access(request.enrolment_id, approved=True, blocked=False)
            else:
                written = await self.platform.set_access(request.enrolment_id, blocked=True)
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        updated = await self.store.update(
            request, state=decision.state, decided_by=actor, decided_at=_now(), reason=reason, error="",
            failed_action="", platform_updated_on=written.updated_on,
        )
        await self.store.finish(claim)
        await audit(self.redis, actor=actor, action=decision.value,
                    target=f"course {request.course_id} / member {request.member_id}", outcome="changed",
                    detail=f"request {request.id} via {via}" + (f"; reason: {reason[:200]}" if reason else ""))
        return DecisionResult(Outcome.DONE, updated)

    async def recover(self, origin: CardRef, metadata: dict[str, Any] | None) -> ApprovalRequest | None:
        """A click on a card whose request Redis lost: rebuild it from the card and the platform."""
        card = await self.board.find_card(origin, metadata)
        if card is None:
            return None
        existing = await self.store.get(card.request_id)
        if existing is not None:
            return existing
        return await self._rebuild(card, await self.platform.get_enrolment(card.enrolment_id))

    async def _is_own(self, actor: str, request: ApprovalRequest) -> bool:
        if not request.member_email:
            return False
        try:
            email = await self.directory.email_of(actor)
        except DirectoryError as exc:
            log.warning("could not check whether %s is the member: %s", actor, exc.message)
            return False
        return email is not None and email.lower() == request.member_email.lower()

    async def _show(self, request: ApprovalRequest, origin: CardRef | None = None) -> None:
        """Bring the card (and the clicked message, if it is another) in line with the request."""
        request = await self.store.get(request.id) or request
        stale = request.card_ts and request.card_shows not in (request.card_signature(), "posting")
        if stale and await self.board.update_card(request):
            await self.store.update(request, card_shows=request.card_signature())
        if origin is not None and (origin.channel, origin.ts) != (request.card_channel, request.card_ts):
            await self.board.update_card(request, origin)

    async def approve_all(self, request_ids: list[str], actor: str) -> BatchReport:
        """Approve each through the same exactly-once path; the adapter's write budget paces them."""
        report = BatchReport()
        for request_id in request_ids:
            result = await self.decide(request_id, Decision.APPROVE, actor, via="approve all", refresh_home=False)
            if result.outcome is Outcome.DONE and result.request is not None:
                report.approved.append(result.request)
            elif result.outcome in (Outcome.ALREADY, Outcome.BUSY) and result.request is not None:
                report.already.append(result.request)
            elif result.outcome is Outcome.FAILED:
                report.failed.append((result.request, result.message))
            elif result.outcome is Outcome.NOT_ALLOWED:
                report.skipped.append((result.request, result.message))
                break
            elif result.outcome is Outcome.OWN:
                report.skipped.append((result.request, "your own enrolment: another manager has to approve it"))
            else:
                report.skipped.append((None, "no longer known"))
        await self.refresh_homes()
        return report

    # ---- lists and App Home -----------------------------------------------------------

    async def waiting(self, course_id: str | None = None) -> list[ApprovalRequest]:
        requests = await self.store.open_requests()
        if course_id is not None:
            requests = [r for r in requests if r.course_id == course_id]
        return sorted(requests, key=lambda r: (r.waiting_since, r.id))

    async def home_data(self) -> HomeData:
        waiting = await self.waiting()
        counts = Counter((r.course_title or f"course {r.course_id}", r.course_visibility) for r in waiting)
        per_course = sorted(((title, vis, n) for (title, vis), n in counts.items()), key=lambda t: (-t[2], t[0]))
        return HomeData(waiting, await self.store.recent_decisions(10), per_course, self.platform.display_name,
                        await self.store.last_synced())

    async def opened_home(self, user_id: str) -> None:
        if not await self.permissions.is_manager(user_id):
            await self.board.publish_home(user_id, None)
            return
        if not self.available:
            name = self.platform.display_name
            note = (f"{name} has no approval step: sign-ups there need nobody's approval, so no requests wait "
                    "here. Use `/course` to enrol and invite members.")
            await self.board.publish_home(user_id, HomeData([], [], [], name, None, note=note))
            return
        await self.store.add_home_viewer(user_id)
        await self.board.publish_home(user_id, await self.home_data())

    async def refresh_homes(self) -> None:
        viewers = [u for u in await self.store.home_viewers() if await self.permissions.is_manager(u)]
        if not viewers:
            return
        home = await self.home_data()
        await asyncio.gather(*(self.board.publish_home(user, home) for user in viewers))


def _newer(enrolment: Enrolment, request: ApprovalRequest) -> bool:
    """Is this read of a waiting enrolment later than the decision the request records?"""
    if enrolment.updated_on is None or request.platform_updated_on is None:
        return False
    return enrolment.updated_on > request.platform_updated_on
