"""The one decision path: every change of someone's access to a course goes through `decide`.

`/course enrol|approve|block|unblock`, the card buttons, `/course pending`, App Home, the digest's
buttons, Approve all and the auto-approve rules all call `DecisionService.decide`, which does, in
order:

1. who may decide: managers, and the course's approvers; nobody decides their own enrolment
   (matched by Slack email or by a `/course link` record). An auto-approve rule decides only
   when the sync asks (`Via.RULE`, which no Slack surface can send), only to approve, and only
   if the rule it names is still in place and matches the request (never its author's own);
2. claim: one short lease per enrolment (bot.core.lease), renewed while the work runs, so
   however many people click, however often, in however many processes, one decision is made;
3. one fresh read of the enrolment (by id when known: on Nexudus the full record);
4. at most one write, given what was just read (the adapter does not read again);
5. the decision record (who, when, from where, reason): on the request, and per enrolment, for
   cards, Home, the digest and attribution to read; the audit log; then the card, the member's
   direct message and Home follow.

A course may need a quorum of approvals: each person's approval counts once, the platform is
written when the last one lands, and one Block decides at once. An auto-approve rule is the
managers' decision made in advance: it approves at once, whatever the quorum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bot.approvals import keys
from bot.approvals.home import Home
from bot.approvals.requests import CardRef, RequestBook, now
from bot.approvals.store import ApprovalRequest, ApprovalStore, DecisionRecord, RequestState
from bot.core.audit import audit
from bot.core.capabilities import Capability
from bot.core.lease import Holder, Lease, holder
from bot.core.models import AccessState, Enrolment
from bot.core.permissions import Permissions
from bot.core.store import Redis
from bot.platforms.base import CoursePlatform, PlatformError

log = logging.getLogger(__name__)


class Action(StrEnum):
    ENROL = "enrol"
    APPROVE = "approve"
    BLOCK = "block"
    UNBLOCK = "unblock"

    @property
    def capability(self) -> Capability:
        return {Action.ENROL: Capability.ENROL, Action.APPROVE: Capability.APPROVAL}.get(self, Capability.BLOCK)


class Via(StrEnum):
    """Where a decision was made."""

    COMMAND = "command"
    CARD = "card"
    LIST = "list"  # a /course pending reply
    HOME = "home"
    DIGEST = "digest"
    APPROVE_ALL = "approve all"
    RULE = "rule"
    BUTTON = "button"  # an "Enrol them" offer


class Outcome(StrEnum):
    DONE = "done"  # this call wrote the platform
    COUNTED = "counted"  # an approval towards a quorum; the platform is written when the last one lands
    ALREADY = "already"  # nothing to change: it already is so (decided here earlier, or elsewhere)
    BUSY = "busy"  # another decision on this enrolment is being made right now
    FAILED = "failed"  # the platform failed; nothing changed (a card offers Retry)
    NOT_ALLOWED = "not_allowed"
    OWN = "own"  # the actor's own enrolment
    MISSING = "missing"  # no such request
    NOT_ENROLLED = "not_enrolled"  # approve/block/unblock someone with no enrolment


@dataclass(frozen=True)
class Subject:
    """Whose access, in which course, as the caller knows it (labels are for messages only)."""

    course_id: str
    member_id: str
    course_title: str = ""
    member_name: str = ""
    member_email: str = ""
    enrolment_id: str | None = None

    @property
    def member_label(self) -> str:
        return self.member_name or self.member_email or f"member {self.member_id}"

    @classmethod
    def of(cls, request: ApprovalRequest) -> Subject:
        return cls(request.course_id, request.member_id, request.course_title, request.member_name,
                   request.member_email, request.enrolment_id)


@dataclass(frozen=True)
class Change:
    """One decision asked for: by whom, what, on which request or enrolment, from where."""

    actor: str
    action: Action
    via: Via
    request_id: str | None = None  # a request's buttons
    subject: Subject | None = None  # a command: course and member already resolved
    reason: str = ""
    pending: bool = False  # enrol: leave it waiting for approval
    origin: CardRef | None = None  # the clicked card, if any (set right even if it is an old copy)
    origin_metadata: dict[str, Any] | None = None
    notify: bool = True  # tell the member by direct message


@dataclass(frozen=True)
class DecisionResult:
    outcome: Outcome
    action: Action
    subject: Subject | None = None
    enrolment: Enrolment | None = None
    request: ApprovalRequest | None = None
    record: DecisionRecord | None = None  # who decided: this call, or the decision found
    holder: Holder | None = None  # BUSY: who is deciding
    message: str = ""  # NOT_ALLOWED: the refusal; FAILED: the platform's reason
    note: str = ""  # e.g. "the block was lifted", "already approved"
    approvals: list[str] = field(default_factory=list)  # COUNTED: who approved so far
    quorum: int = 1

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.DONE


class Notifier(Protocol):
    async def tell_member(self, request: ApprovalRequest) -> None: ...


class QuorumRules(Protocol):
    async def quorum_of(self, course_id: str) -> int: ...


class RuleCheck(StrEnum):
    ALLOWED = "allowed"
    NO_RULE = "no_rule"  # no such rule (any more), or it does not match this request
    OWN = "own"  # the enrolment of the manager who set the rule


class AutoRules(Protocol):
    """The auto-approve rules (bot.approvals.rules), as the decision path checks them."""

    async def allows(self, actor: str, request: ApprovalRequest) -> RuleCheck: ...


RULE_ACTOR = "rule:"  # the actor of a decision made by an auto-approve rule: "rule:<kind>:<value>"


ALREADY_NOTE = {
    AccessState.APPROVED: "already enrolled and approved",
    AccessState.PENDING: "already enrolled, waiting for approval,",
    AccessState.BLOCKED: "enrolled but blocked",
}


class _Refused(Exception):
    def __init__(self, result: DecisionResult) -> None:
        super().__init__(result.outcome.value)
        self.result = result


class DecisionService:
    def __init__(self, platform: CoursePlatform, redis: Redis, store: ApprovalStore, book: RequestBook,
                 notifier: Notifier, permissions: Permissions, home: Home) -> None:
        self.platform = platform
        self.redis = redis
        self.store = store
        self.book = book
        self.notifier = notifier
        self.permissions = permissions
        self.home = home
        self.quorum: QuorumRules | None = None
        self.auto: AutoRules | None = None

    async def decide(self, change: Change) -> DecisionResult:
        """Decide once, whoever asks and however often; see the module docstring for the order."""
        try:
            request, subject = await self._target(change)
            await self._check(change, request, subject)
        except _Refused as refused:
            return refused.result
        if change.action is Action.ENROL and await self.permissions.is_self(
                change.actor, subject.member_id, subject.member_email):
            change = Change(**{**change.__dict__, "pending": True})  # left waiting for another approver
        lease = Lease(self.redis, keys.ACCESS_CLAIM(subject.course_id, subject.member_id), actor=change.actor,
                      action=change.action.value)
        if not await lease.acquire():
            return await self._busy(change, request, subject)
        try:
            async with lease.kept_alive():
                result = await self._decide_claimed(change, request, subject)
        except PlatformError as exc:
            return await self._failed(change, request, subject, exc)
        await self._after(change, result)
        return result

    # ---- 0. what is being decided --------------------------------------------------------------

    async def _target(self, change: Change) -> tuple[ApprovalRequest | None, Subject]:
        if change.request_id is not None:
            request = await self.store.get(change.request_id)
            if request is None and change.origin is not None:
                request = await self.book.recover(change.origin, change.origin_metadata)
            if request is None:
                raise _Refused(DecisionResult(Outcome.MISSING, change.action))
            return request, Subject.of(request)
        assert change.subject is not None, "a change names a request or a subject"
        subject = change.subject
        request_id = await self.store.request_for(subject.course_id, subject.member_id)
        request = await self.store.get(request_id) if request_id else None
        if request is not None and not request.state.open:
            request = None  # an old request: its card is history
        if request is not None and change.action is Action.ENROL:
            request = None
        return request, subject

    # ---- 1. who may decide -------------------------------------------------------------------

    async def _check(self, change: Change, request: ApprovalRequest | None, subject: Subject) -> None:
        target = f"course {subject.course_id} / member {subject.member_id}"
        if change.via is Via.RULE:
            await self._check_rule(change, request, subject)
            return
        if change.actor.startswith(RULE_ACTOR):  # only the sync speaks for a rule
            allowed = False
        elif change.action is Action.ENROL:  # approvers decide waiting enrolments; only managers add people
            allowed = await self.permissions.is_manager(change.actor)
        else:
            allowed = await self.permissions.may_decide(change.actor, subject.course_id)
        if not allowed:
            await audit(self.redis, actor=change.actor, action=change.action.value, target=target,
                        outcome="refused", detail=f"not a manager or approver ({change.via.value})")
            raise _Refused(DecisionResult(Outcome.NOT_ALLOWED, change.action, subject, request=request,
                                          message=self.permissions.decision_refusal()))
        if change.request_id is not None and request is not None and not request.state.open:
            await self.book.show(request, change.origin)  # a card that lags behind is set right
            raise _Refused(DecisionResult(Outcome.ALREADY, change.action, subject, request=request,
                                          record=await self.store.last_decision(request.enrolment_id)))
        email = subject.member_email
        if not email and change.action is not Action.ENROL:  # a digest button names the member by id only
            member = await self.platform.get_member(subject.member_id)
            email = member.email if member else ""
        if change.action is not Action.ENROL and await self.permissions.is_self(
                change.actor, subject.member_id, email):
            await audit(self.redis, actor=change.actor, action=change.action.value, target=target,
                        outcome="refused", detail="own enrolment")
            raise _Refused(DecisionResult(Outcome.OWN, change.action, subject, request=request))

    async def _check_rule(self, change: Change, request: ApprovalRequest | None, subject: Subject) -> None:
        """An auto-approve rule approves a waiting request, if that rule is still in place and matches it."""
        target = f"course {subject.course_id} / member {subject.member_id}"
        verdict = RuleCheck.NO_RULE
        if (self.auto is not None and change.action is Action.APPROVE and change.request_id is not None
                and request is not None and change.actor.startswith(RULE_ACTOR)):
            if not request.state.open:
                raise _Refused(DecisionResult(Outcome.ALREADY, change.action, subject, request=request,
                                              record=await self.store.last_decision(request.enrolment_id)))
            verdict = await self.auto.allows(change.actor, request)
        if verdict is RuleCheck.ALLOWED:
            return
        own = verdict is RuleCheck.OWN
        await audit(self.redis, actor=change.actor, action=change.action.value, target=target, outcome="refused",
                    detail="the enrolment of the rule's author" if own else "no such rule, or it does not match")
        if own:
            raise _Refused(DecisionResult(Outcome.OWN, change.action, subject, request=request))
        raise _Refused(DecisionResult(Outcome.NOT_ALLOWED, change.action, subject, request=request,
                                      message="No auto-approve rule covers this request now; nothing was changed."))

    async def _busy(self, change: Change, request: ApprovalRequest | None, subject: Subject) -> DecisionResult:
        who = await holder(self.redis, keys.ACCESS_CLAIM(subject.course_id, subject.member_id))
        latest = await self.store.get(request.id) if request is not None else None
        if latest is not None and not latest.state.open:
            await self.book.show(latest, change.origin)
            return DecisionResult(Outcome.ALREADY, change.action, subject, request=latest,
                                  record=await self.store.last_decision(latest.enrolment_id))
        return DecisionResult(Outcome.BUSY, change.action, subject, request=latest or request, holder=who)

    # ---- 2-4. claimed: read once, write at most once -------------------------------------------

    async def _decide_claimed(self, change: Change, request: ApprovalRequest | None,
                              subject: Subject) -> DecisionResult:
        if request is not None:  # decided by whoever held the claim just before us?
            latest = await self.store.get(request.id)
            if latest is not None and not latest.state.open:
                return DecisionResult(Outcome.ALREADY, change.action, subject, request=latest,
                                      record=await self.store.last_decision(latest.enrolment_id))
            request = latest or request
        enrolment_id = request.enrolment_id if request is not None else subject.enrolment_id
        if enrolment_id:
            current = await self.platform.get_enrolment(enrolment_id)
        else:
            current = await self.platform.find_enrolment(subject.course_id, subject.member_id)
        if current is not None:
            subject = Subject(subject.course_id, subject.member_id, subject.course_title or current.course_title,
                              subject.member_name or current.member_name, subject.member_email, current.id)
        if change.action is Action.ENROL:
            if current is not None:
                return DecisionResult(Outcome.ALREADY, change.action, subject, current,
                                      note=ALREADY_NOTE[current.state])
            created = await self.platform.enrol_absent(subject.course_id, subject.member_id,
                                                       approved=not change.pending)
            note = "your own enrolment: left waiting for another approver" if change.pending and \
                await self.permissions.is_self(change.actor, subject.member_id, subject.member_email) else ""
            return await self._done(change, None, subject, created, note=note)
        if current is None:
            if request is not None:
                closed = await self._close(request, RequestState.GONE, None, actor="", via="")
                return DecisionResult(Outcome.ALREADY, change.action, subject, request=closed)
            return DecisionResult(Outcome.NOT_ENROLLED, change.action, subject)
        if request is not None and current.state is not AccessState.PENDING:
            return await self._decided_elsewhere(change, request, subject, current)
        if change.action is Action.APPROVE:
            if current.state is AccessState.APPROVED:
                return DecisionResult(Outcome.ALREADY, change.action, subject, current, note="already approved")
            if request is not None and request.quorum > 1 and change.via is not Via.RULE:
                counted = await self._count_approval(change, request, subject, current)
                if counted is not None:
                    return counted
            if request is None and current.state is AccessState.PENDING and self.quorum is not None:
                needed = await self.quorum.quorum_of(subject.course_id)
                if needed > 1:  # its approvals are counted on its request, which the sync has not made yet
                    return DecisionResult(Outcome.NOT_ALLOWED, change.action, subject, current, quorum=needed,
                                          message=_QUORUM_NOT_YET.format(n=needed))
            note = "the block was lifted" if current.blocked else ""
            written = await self.platform.set_access(current, approved=True, blocked=False)
            return await self._done(change, request, subject, written, note=note)
        if change.action is Action.BLOCK:
            if current.blocked:
                return DecisionResult(Outcome.ALREADY, change.action, subject, current, note="already blocked")
            written = await self.platform.set_access(current, blocked=True)
            return await self._done(change, request, subject, written)
        if not current.blocked:
            return DecisionResult(Outcome.ALREADY, change.action, subject, current, note="not blocked")
        written = await self.platform.set_access(current, blocked=False)
        return await self._done(change, request, subject, written)

    async def _count_approval(self, change: Change, request: ApprovalRequest, subject: Subject,
                              current: Enrolment) -> DecisionResult | None:
        """Count this person's approval once; None when it is the last one needed (then write)."""
        given = await self.store.add_approval(request.id, change.actor)
        approvers = sorted(given, key=lambda u: given[u])
        if len(approvers) >= request.quorum:
            return None
        updated = await self.store.update(request, approvals=approvers)
        await audit(self.redis, actor=change.actor, action="approve", target=_target(subject), outcome="counted",
                    detail=f"request {request.id}: {len(approvers)} of {request.quorum} ({change.via.value})")
        return DecisionResult(Outcome.COUNTED, change.action, subject, current, request=updated,
                              approvals=approvers, quorum=request.quorum)

    async def _decided_elsewhere(self, change: Change, request: ApprovalRequest, subject: Subject,
                                 current: Enrolment) -> DecisionResult:
        state = RequestState(current.state.value)
        mine = request.failed_action == change.action.value and state.value == _state_of(change.action).value
        record = await self.store.last_decision(request.enrolment_id)
        if mine:
            actor, via = change.actor, change.via.value
        elif record is not None and record.at >= request.seen_at and record.action == _action_of(state):
            actor, via = record.actor, record.via
        else:
            actor, via = "", ""
        closed = await self._close(request, state, current, actor=actor, via=via,
                                   reason=change.reason if mine else request.reason)
        return DecisionResult(Outcome.ALREADY, change.action, subject, current, request=closed, record=record)

    async def _close(self, request: ApprovalRequest, state: RequestState, current: Enrolment | None, *,
                     actor: str, via: str, reason: str = "") -> ApprovalRequest:
        return await self.store.update(
            request, state=state, decided_by=actor, decided_at=now(), decided_via=via, error="",
            failed_action="", reason=reason or request.reason,
            platform_updated_on=current.updated_on if current else request.platform_updated_on,
        )

    # ---- 5. the record ---------------------------------------------------------------------------

    async def _done(self, change: Change, request: ApprovalRequest | None, subject: Subject,
                    written: Enrolment, *, note: str = "") -> DecisionResult:
        record = DecisionRecord(enrolment_id=written.id, course_id=subject.course_id, member_id=subject.member_id,
                                action=change.action.value, actor=change.actor, at=now(), via=change.via.value,
                                reason=change.reason, request_id=request.id if request else "")
        await self.store.record(record)
        if request is not None:
            request = await self.store.update(
                request, state=RequestState(written.state.value), decided_by=change.actor, decided_at=record.at,
                decided_via=change.via.value, reason=change.reason, error="", failed_action="",
                platform_updated_on=written.updated_on or request.platform_updated_on,
            )
        detail = f"via {change.via.value}" + (f"; request {request.id}" if request else "")
        if change.reason:
            detail += f"; reason: {change.reason[:200]}"
        if note:
            detail += f"; {note}"
        await audit(self.redis, actor=change.actor, action=change.action.value, target=_target(subject),
                    outcome="changed", detail=detail)
        return DecisionResult(Outcome.DONE, change.action, subject, written, request=request, record=record,
                              note=note)

    async def _failed(self, change: Change, request: ApprovalRequest | None, subject: Subject,
                      exc: PlatformError) -> DecisionResult:
        await audit(self.redis, actor=change.actor, action=change.action.value, target=_target(subject),
                    outcome="platform error", detail=exc.message)
        if request is not None:
            request = await self.store.update(request, error=exc.message, failed_action=change.action.value,
                                              reason=change.reason)
            await self.book.show(request, change.origin)
        return DecisionResult(Outcome.FAILED, change.action, subject, request=request, message=exc.message)

    async def _after(self, change: Change, result: DecisionResult) -> None:
        """The card, the member and Home follow whatever the decision was."""
        if result.request is None:
            return
        await self.book.show(result.request, change.origin)
        if result.outcome is Outcome.DONE and change.notify:
            await self.notifier.tell_member(result.request)
        if result.outcome in (Outcome.DONE, Outcome.ALREADY, Outcome.COUNTED):
            await self.home.refresh()


def _action_of(state: RequestState) -> str:
    return {RequestState.APPROVED: Action.APPROVE.value, RequestState.BLOCKED: Action.BLOCK.value}.get(state, "")


_QUORUM_NOT_YET = ("This course needs {n} approvals, counted on the enrolment's approval request, which the bot "
                   "has not picked up yet (the next sync does, within a minute or so). Approve it then, from its "
                   "card or with this command. Nothing was changed.")


def _state_of(action: Action) -> RequestState:
    return RequestState.BLOCKED if action is Action.BLOCK else RequestState.APPROVED


def _target(subject: Subject) -> str:
    return f"course {subject.course_id} / member {subject.member_id}"
