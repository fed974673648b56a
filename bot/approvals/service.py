"""Approval requests: the sync that finds waiting enrolments and keeps their cards right.

The sync reads the platform incrementally (what changed since the largest UpdatedOn it has
seen, minus an overlap, since the platform's filter has minute precision), keeps one request
per waiting enrolment in Redis, and has each shown on a card. Decisions are made elsewhere, by
the one decision path (bot.approvals.decisions); the sync records decisions made outside the bot
(admin panel, deletion) and attributes them to a decision of the bot's own when its record says so.
The service knows nothing of Slack: it talks to a `Board`, which the Slack side implements.

What the sync posts goes out at Slack's pace (the Board's Poster): many new requests at once get
one summary line and then their cards, oldest first; reminders that fall due together go out as
one message per channel per round that lists them, and a request still waiting after
`escalate_after` is raised to every manager once, in one message per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.exceptions import LockError

from bot.approvals import keys
from bot.approvals.decisions import Action, Change, DecisionService, Outcome, Via
from bot.approvals.home import Home, HomeData
from bot.approvals.requests import CardRef, FoundCard, RequestBook, now
from bot.approvals.rules import RuleBook
from bot.approvals.store import ApprovalRequest, ApprovalStore, RequestState
from bot.core.capabilities import Capability
from bot.core.lease import Lease
from bot.core.models import AccessState, Enrolment
from bot.core.store import Redis
from bot.platforms.base import CoursePlatform

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=2)  # the platform filters by the minute: read a little behind the cursor
SKEW = timedelta(days=1)  # first cursor, when nothing was seen yet: safely behind the platform's clock
HISTORY_PAGES = 10  # conversations.history pages (200 messages each) read to find cards after a flush
AUTO_APPROVE_MAX = 50  # auto-approvals per sync (each one platform write, within its write budget); the rest next time
CARD_FIRST = timedelta(minutes=10)  # an auto-approval waits this long for its card, so the card shows the rule
SUMMARY_FROM = 10  # this many new cards at once are announced by one summary line first


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

    async def post_summary(self, count: int) -> None:
        """Say that `count` new cards follow."""

    async def update_card(self, request: ApprovalRequest, where: CardRef | None = None) -> bool: ...
    async def find_cards(self, wanted: set[str], *, exhaustive: bool) -> dict[str, FoundCard]: ...
    async def find_card(self, where: CardRef, metadata: dict[str, Any] | None) -> FoundCard | None: ...
    async def remind(self, channel: str, due: list[tuple[ApprovalRequest, timedelta]]) -> bool:
        """One message into `channel` listing these requests; False when Slack refused it."""

    async def escalate(self, due: list[tuple[ApprovalRequest, timedelta]], managers: list[str],
                       after: timedelta) -> bool:
        """One message to every manager naming these requests; False when Slack refused it."""

    async def tell_member(self, request: ApprovalRequest) -> None: ...
    async def publish_home(self, user_id: str, home: HomeData | None) -> None: ...


@dataclass
class SyncReport:
    skipped: str = ""
    full: bool = False
    new: int = 0
    adopted: int = 0
    closed: int = 0
    posted: int = 0
    reminded: int = 0
    escalated: int = 0
    caught_up: int = 0  # cards of decided requests set right after Slack refused their update
    auto_approved: int = 0  # waiting requests approved by an auto-approve rule

    @property
    def changed(self) -> bool:
        return bool(self.new or self.adopted or self.closed)


class ApprovalService:
    def __init__(
        self,
        platform: CoursePlatform,
        redis: Redis,
        store: ApprovalStore,
        board: Board,
        book: RequestBook,
        decisions: DecisionService,
        home: Home,
        *,
        reminder_after: timedelta = timedelta(hours=24),
        escalate_after: timedelta = timedelta(hours=72),
        managers: Sequence[str] = (),
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.store = store
        self.board = board
        self.book = book
        self.decisions = decisions
        self.home = home
        self.reminder_after = reminder_after
        self.rules: RuleBook | None = None
        self.escalate_after = escalate_after
        self.managers = list(managers)

    @property
    def available(self) -> bool:
        return self.platform.supports(Capability.APPROVAL)

    # ---- sync -------------------------------------------------------------------------

    async def sync(self, *, recorded: asyncio.Event | None = None) -> SyncReport:
        """One poll. Several workers may call it at once: a Redis lock lets one of them run it.

        `recorded` is set once the waiting requests are recorded (what `/course pending` and Home
        list), before their cards go out at Slack's pace: a caller in a hurry can answer then."""
        if not self.available:
            return SyncReport(skipped=f"{self.platform.display_name} has no approval step")
        lock = self.redis.lock(keys.SYNC_LOCK(), timeout=keys.SYNC_LOCK.ttl, blocking=False)
        if not await lock.acquire():
            return SyncReport(skipped="another process is running the sync")
        try:
            report = await self._sync(lock, recorded)
            await self.store.mark_synced()
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        if report.changed:
            await self.home.refresh()
        return report

    async def _sync(self, lock: Any, recorded: asyncio.Event | None = None) -> SyncReport:
        if self.rules is not None:
            await self.rules.ensure_loaded()  # after a flush: the rules first, so new requests carry them
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
        if recorded is not None:
            recorded.set()
        report.caught_up = await self._catch_up_cards()
        report.posted = await self._post_missing_cards(lock)
        report.auto_approved = await self._auto_approve(lock)
        escalated = await self._escalate()
        report.escalated = len(escalated)
        report.reminded = await self._remind(escalated)
        if self.rules is not None:
            await self.rules.copy_if_due()
        return report

    async def _advance_cursor(self, cursor: datetime | None, records: Any, held_back: list[datetime]) -> None:
        seen = [e.updated_on for e in records if e.updated_on is not None]
        candidates = [c for c in (cursor, max(seen, default=None)) if c is not None]
        if cursor is None:
            candidates.append(now() - SKEW)
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
        courses = await self.book.courses({e.course_id for e, _ in new})
        expected = {cid: await self.book.expectations(cid) for cid in {e.course_id for e, _ in new}}
        for enrolment, current_id in new:
            card = found.get(enrolment.id)
            adopt = card is not None and card.state == RequestState.PENDING.value and card.request_id != current_id
            approvers, quorum = expected[enrolment.course_id]
            request = self.book.build(enrolment, members.get(enrolment.member_id), courses.get(enrolment.course_id),
                                      request_id=card.request_id if adopt and card else None, approvers=approvers,
                                      quorum=quorum)
            if adopt and card is not None:
                request = request.model_copy(update={"card_channel": card.channel, "card_ts": card.ts,
                                                     "card_shows": request.card_signature()})
            if await self.store.create(request, replacing=current_id):
                if adopt:
                    report.adopted += 1
                else:
                    report.new += 1

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
            request = await self.book.rebuild(card, enrolment)
            if request is not None and request.state.open and enrolment is not None:
                corrected += await self._close_outside(request, enrolment)
        return corrected

    async def _close_outside(self, request: ApprovalRequest, enrolment: Enrolment | None) -> int:
        """Record a decision made outside a click (admin panel, deletion, a command) and fix the card."""
        state = RequestState.GONE if enrolment is None else RequestState(enrolment.state.value)
        lease = Lease(self.redis, keys.ACCESS_CLAIM(request.course_id, request.member_id), actor="",
                      action=state.value)
        if not await lease.acquire():
            return 0  # a decision is being made right now: it records itself
        async with lease.kept_alive():
            latest = await self.store.get(request.id)
            if latest is None or not latest.state.open:
                return 0
            record = await self.store.last_decision(request.enrolment_id)
            ours = record is not None and record.at >= request.seen_at and record.action == {
                RequestState.APPROVED: "approve", RequestState.BLOCKED: "block"}.get(state)
            request = await self.store.update(
                latest, state=state, decided_by=record.actor if ours and record else "", decided_at=now(),
                decided_via=record.via if ours and record else "", error="", failed_action="",
                platform_updated_on=enrolment.updated_on if enrolment else latest.platform_updated_on,
            )
        await self.book.show(request)
        return 1

    async def _catch_up_cards(self) -> int:
        """Cards of recent decisions whose update Slack did not take (they still offer buttons): set right."""
        behind = 0
        for request in await self.store.recent_decisions(50):
            if request.card_ts and request.card_shows not in (request.card_signature(), "posting"):
                await self.book.show(request)
                behind += 1
        return behind

    async def _post_missing_cards(self, lock: Any) -> int:
        """Cards for open requests that have none, oldest first, at the channel's pace (the Poster's)."""
        missing = [r for r in await self.store.open_requests() if not r.card_ts]
        if not missing or not self.board.can_post:
            return 0
        fresh = [r for r in missing if r.card_shows != "posting"]
        if len(fresh) >= SUMMARY_FROM and await self.store.summary_once(fresh[0].id):
            await self.board.post_summary(len(fresh))
        posted = 0
        for request in missing:
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
        except Exception as exc:
            log.warning("approval card for request %s: the post's outcome is unknown (%s); checking next time",
                        request.id, exc)
            return False
        if ref is None:  # Slack said no: nothing was posted, so the next try need not look first
            await self.store.update(request, card_shows="")
            return False
        await self.store.update(request, card_channel=ref.channel, card_ts=ref.ts,
                                card_shows=request.card_signature())
        latest = await self.store.get(request.id)
        if latest is not None and latest.card_signature() != latest.card_shows:
            await self.book.show(latest)  # decided while the card was being posted
        return True

    async def _escalate(self) -> set[str]:
        """Requests waiting past `escalate_after`, raised to every manager once (a guard per request)."""
        if not self.board.can_post:
            return set()
        moment = now()
        due = [(request, moment - request.waiting_since)
               for request in await self.store.waiting_before(moment - self.escalate_after)
               if await self.store.escalate_once(request.id)]
        if not due:
            return set()
        ids = [request.id for request, _ in due]
        if not await self.board.escalate(due, self.managers, self.escalate_after):
            await self.store.forget_escalations(ids)  # Slack refused: the next round tries again
            return set()
        return set(ids)

    async def _remind(self, escalated: set[str]) -> int:
        """Requests due a reminder (at most one a day each), as one message per card channel this round.

        A request raised to the managers this round is not reminded of as well."""
        moment = now()
        due: dict[str, list[tuple[ApprovalRequest, timedelta]]] = {}
        for request in await self.store.waiting_before(moment - self.reminder_after):
            if request.card_ts and await self.store.remind_once(request.id) and request.id not in escalated:
                due.setdefault(request.card_channel, []).append((request, moment - request.waiting_since))
        reminded = 0
        for channel, listed in due.items():
            if await self.board.remind(channel, listed):
                reminded += len(listed)
            else:
                await self.store.forget_reminders([request.id for request, _ in listed])
        return reminded

    async def _auto_approve(self, lock: Any) -> int:
        """Waiting requests an auto-approve rule matches are approved through the one decision path.

        Each is one claim, one read and one write, paced by the platform's write budget like any
        decision; the card (posted first) then shows "approved by the rule …"."""
        if self.rules is None:
            return 0
        waiting = await self.store.open_requests()
        if not waiting:
            return 0
        moment = now()
        due = []
        for request, rule in await self.rules.auto_matches(waiting):
            if self.board.can_post and not request.card_ts and moment - request.seen_at < CARD_FIRST:
                continue  # its card first
            if request.error and not await self.rules.retry_due(request.id):
                continue  # the platform failed it: tried again at most once an hour (or a click's Retry)
            due.append((request, rule))
        approved = 0
        for request, rule in due[:AUTO_APPROVE_MAX]:
            result = await self.decisions.decide(Change(rule.actor, Action.APPROVE, Via.RULE, request_id=request.id))
            if result.outcome is Outcome.DONE:
                approved += 1
                await self.rules.note_approved(request, rule)
            elif result.outcome is Outcome.FAILED:
                await self.rules.retry_due(request.id)  # starts the hour
            try:
                await lock.reacquire()
            except LockError:
                log.warning("approval sync: lost its lock while auto-approving; the next poll goes on")
                break
        return approved

    async def apply_rules(self, course_id: str | None = None) -> int:
        """After a rule change: waiting requests take their course's approvers and quorum; cards follow."""
        updated = 0
        for request in await self.store.open_requests():
            if course_id is not None and request.course_id != course_id:
                continue
            approvers, quorum = await self.book.expectations(request.course_id)
            if (request.approvers, request.quorum) == (approvers, quorum):
                continue
            request = await self.store.update(request, approvers=approvers, quorum=quorum)
            await self.book.show(request)
            updated += 1
        if updated:
            await self.home.refresh()
        return updated

    async def approve_all(self, request_ids: list[str], actor: str) -> BatchReport:
        """Approve each through the one decision path; the adapter's write budget paces them."""
        report = BatchReport()
        for request_id in request_ids:
            result = await self.decisions.decide(Change(actor, Action.APPROVE, Via.APPROVE_ALL, request_id=request_id))
            if result.outcome in (Outcome.DONE, Outcome.COUNTED) and result.request is not None:
                report.approved.append(result.request)
            elif result.outcome in (Outcome.ALREADY, Outcome.BUSY) and result.request is not None:
                report.already.append(result.request)
            elif result.outcome is Outcome.FAILED:
                report.failed.append((result.request, result.message))
            elif result.outcome is Outcome.NOT_ALLOWED:
                report.skipped.append((result.request, result.message))
            elif result.outcome is Outcome.OWN:
                report.skipped.append((result.request, "your own enrolment: another approver has to decide it"))
            else:
                report.skipped.append((None, "no longer known"))
        return report

    # ---- lists and App Home -----------------------------------------------------------

    async def waiting(self, course_id: str | None = None) -> list[ApprovalRequest]:
        return await self.home.waiting(course_id)

    async def opened_home(self, user_id: str) -> None:
        await self.home.opened(user_id)


def _newer(enrolment: Enrolment, request: ApprovalRequest) -> bool:
    """Is this read of a waiting enrolment later than the decision the request records?"""
    if enrolment.updated_on is None or request.platform_updated_on is None:
        return False
    return enrolment.updated_on > request.platform_updated_on
