"""Approval rules: who decides which course, what needs no one, and what needs two or three people.

One `RuleBook` keeps, per course, the course's approvers (Slack user ids and user-group ids),
its auto-approve rules (an email domain, or a Slack user group matched by email) and its
quorum; and the auto-approve rules for every course. It is what the rest of the bot asks:

- `Permissions` (bot.core.permissions): `approvers_of`, `all_approvers`, `approvers_by_course`;
- the decision path (bot.approvals.decisions): `quorum_of`, and `allows` for a rule's approval;
- the sync (bot.approvals.service): `expectations` for a new request, `auto_matches` for the
  waiting requests a rule approves.

Rules live in one Redis hash. Every change is made under a lock, audited with what it replaced,
and followed by a copy of the whole book posted to the approvals channel (`RulesCopy`): after
Redis loses its data, the first read finds the newest copy there and restores it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ValidationError
from redis.exceptions import LockError

from bot.approvals import keys
from bot.approvals.decisions import RULE_ACTOR, RuleCheck
from bot.approvals.store import ApprovalRequest
from bot.core import keys as core_keys
from bot.core.audit import audit
from bot.core.directory import Directory, DirectoryError
from bot.core.errors import UserFacingError
from bot.core.permissions import Permissions
from bot.core.store import Redis

log = logging.getLogger(__name__)

EVERY_COURSE = "*"  # the hash field of the rules that apply to every course (auto-approve only)
QUORUM_MAX = 3


class AutoRule(BaseModel):
    """Approve a waiting request whose member's email is at `domain`, or who is in a Slack user group."""

    kind: Literal["domain", "group"]
    value: str  # the domain (lower case), or the user-group id (S…)
    handle: str = ""  # the user group's handle, without @, for display
    by: str = ""  # the manager who set it: the rule never approves their own enrolment

    @property
    def actor(self) -> str:
        """Who the decision record says decided: `rule:domain:<domain>` or `rule:group:<id>:<handle>`."""
        tail = f":{self.handle}" if self.kind == "group" and self.handle else ""
        return f"{RULE_ACTOR}{self.kind}:{self.value}{tail}"

    @property
    def label(self) -> str:
        """In words, unescaped: `domain partner.example`, `group @staff`."""
        if self.kind == "domain":
            return f"domain {self.value}"
        return f"group @{self.handle}" if self.handle else f"group {self.value}"

    def same(self, other: AutoRule) -> bool:
        return (self.kind, self.value) == (other.kind, other.value)


def rule_of_actor(actor: str) -> AutoRule | None:
    """The rule a decision record's actor names, or None when a person decided."""
    if not actor.startswith(RULE_ACTOR):
        return None
    kind, _, rest = actor.removeprefix(RULE_ACTOR).partition(":")
    if kind == "domain" and rest:
        return AutoRule(kind="domain", value=rest)
    if kind == "group" and rest:
        value, _, handle = rest.partition(":")
        return AutoRule(kind="group", value=value, handle=handle)
    return None


class CourseRules(BaseModel):
    course_id: str
    title: str = ""  # the course's title when the rules were last changed (for lists)
    approvers: list[str] = []  # Slack user ids (U…, W…) and user-group ids (S…)
    handles: dict[str, str] = {}  # user-group id -> handle (without @), for display
    auto: list[AutoRule] = []
    quorum: int = 1

    @property
    def empty(self) -> bool:
        return not self.approvers and not self.auto and self.quorum == 1

    @property
    def every_course(self) -> bool:
        return self.course_id == EVERY_COURSE

    def summary(self) -> dict[str, object]:
        """What the audit log keeps as before/after."""
        return {"approvers": list(self.approvers), "auto": [r.label for r in self.auto], "quorum": self.quorum}

    def settings(self) -> tuple[object, ...]:
        """What a change compares (not the title, which only follows the course)."""
        return tuple(self.approvers), tuple((r.kind, r.value) for r in self.auto), self.quorum


@dataclass(frozen=True)
class RuleChange:
    actor: str
    what: str  # approvers, autoapprove, quorum
    before: CourseRules
    after: CourseRules
    copied: bool = True  # the copy of the rules in the approvals channel is up to date

    @property
    def changed(self) -> bool:
        return self.before.settings() != self.after.settings()


class RulesCopyError(Exception):
    """Slack could not be read to look for the copy of the rules."""


class RulesCopy(Protocol):
    """Where a copy of the rules survives a Redis flush (the approvals channel: bot.approvals.rules_slack)."""

    async def save(self, book: dict[str, CourseRules], change: RuleChange | None) -> bool:
        """Post the whole book; False when Slack refused (the next sync tries again)."""

    async def load(self) -> dict[str, CourseRules] | None:
        """The newest copy, or None if there is none; raises RulesCopyError when Slack could not be read."""


class RuleBook:
    def __init__(self, redis: Redis, directory: Directory, permissions: Permissions,
                 copy: RulesCopy | None = None) -> None:
        self.redis = redis
        self.directory = directory
        self.permissions = permissions
        self.copy = copy

    # ---- reads ----------------------------------------------------------------------------------

    async def book(self) -> dict[str, CourseRules]:
        """Every course's rules (and EVERY_COURSE's), by course id."""
        await self.ensure_loaded()
        raw = await self.redis.hgetall(keys.RULES())
        found = {}
        for course_id, value in raw.items():
            rules = _read(str(course_id), value)
            if rules is not None:
                found[str(course_id)] = rules
        return found

    async def course(self, course_id: str) -> CourseRules:
        await self.ensure_loaded()
        return _read(course_id, await self.redis.hget(keys.RULES(), course_id)) or CourseRules(course_id=course_id)

    async def approvers_of(self, course_id: str) -> list[str]:
        return (await self.course(course_id)).approvers

    async def all_approvers(self) -> list[str]:
        return list(dict.fromkeys(a for rules in (await self.book()).values() for a in rules.approvers))

    async def approvers_by_course(self) -> dict[str, list[str]]:
        return {cid: rules.approvers for cid, rules in (await self.book()).items() if rules.approvers}

    async def quorum_of(self, course_id: str) -> int:
        return (await self.course(course_id)).quorum

    async def expectations(self, course_id: str) -> tuple[list[str], int]:
        """What a new request of this course records: who is expected to decide, and the quorum."""
        rules = await self.course(course_id)
        return list(rules.approvers), rules.quorum

    # ---- changes --------------------------------------------------------------------------------

    async def set_approvers(self, actor: str, course_id: str, title: str, approvers: list[str],
                            handles: dict[str, str]) -> RuleChange:
        def edit(rules: CourseRules) -> CourseRules:
            kept = {g: h for g, h in {**rules.handles, **handles}.items() if g in approvers}
            return rules.model_copy(update={"approvers": list(dict.fromkeys(approvers)), "handles": kept})

        return await self._change(actor, "approvers", course_id, title, edit)

    async def add_auto(self, actor: str, course_id: str | None, title: str, rule: AutoRule) -> RuleChange:
        def edit(rules: CourseRules) -> CourseRules:
            if any(r.same(rule) for r in rules.auto):
                return rules
            return rules.model_copy(update={"auto": [*rules.auto, rule]})

        return await self._change(actor, "autoapprove", course_id or EVERY_COURSE, title, edit)

    async def clear_auto(self, actor: str, course_id: str | None, title: str) -> RuleChange:
        return await self._change(actor, "autoapprove", course_id or EVERY_COURSE, title,
                                  lambda rules: rules.model_copy(update={"auto": []}))

    async def set_quorum(self, actor: str, course_id: str, title: str, quorum: int) -> RuleChange:
        if not 1 <= quorum <= QUORUM_MAX:
            raise UserFacingError("A quorum is 1, 2 or 3 approvals. Nothing was changed.")
        return await self._change(actor, "quorum", course_id, title,
                                  lambda rules: rules.model_copy(update={"quorum": quorum}))

    async def _change(self, actor: str, what: str, course_id: str, title: str,
                      edit: Callable[[CourseRules], CourseRules]) -> RuleChange:
        """Read, change, write, audit and copy to Slack, one change at a time."""
        await self.ensure_loaded()
        lock = self.redis.lock(keys.RULES_LOCK(), timeout=keys.RULES_LOCK.ttl, blocking_timeout=10)
        if not await lock.acquire():
            raise UserFacingError("Another change of the rules is being saved right now, so nothing was changed. "
                                  "Try again in a moment.")
        try:
            before = await self.course(course_id)
            after = edit(before)
            if title and not after.every_course:
                after = after.model_copy(update={"title": title})
            change = RuleChange(actor, what, before, after)
            if not change.changed:
                return change
            if after.empty:
                await self.redis.hdel(keys.RULES(), course_id)
            else:
                await self.redis.hset(keys.RULES(), course_id, after.model_dump_json())
            target = "every course" if after.every_course else f"course {course_id}"
            await audit(self.redis, actor=actor, action=f"rules {what}", target=target, outcome="changed",
                        detail=title, before=before.summary(), after=after.summary())
            copied = await self._save_copy(change)
        finally:
            try:
                await lock.release()
            except LockError:  # expired meanwhile: the change is made, nothing to undo
                log.warning("the rules lock expired before it was released")
        return RuleChange(actor, what, before, after, copied=copied)

    # ---- the copy in Slack ----------------------------------------------------------------------

    async def _save_copy(self, change: RuleChange | None) -> bool:
        if self.copy is None:
            return False
        if await self.copy.save(await self.book(), change):
            await self.redis.delete(keys.RULES_COPY_DUE())
            return True
        await self.redis.set(keys.RULES_COPY_DUE(), "1")
        return False

    async def copy_if_due(self) -> bool:
        """After Slack refused a copy: post it again (the sync calls this)."""
        if self.copy is None or not await self.redis.exists(keys.RULES_COPY_DUE()):
            return False
        return await self._save_copy(None)

    async def ensure_loaded(self) -> None:
        """After Redis lost its data (or on a new one), read the rules back from their copy in Slack, once."""
        if await self.redis.exists(keys.RULES_CHECKED()):
            return
        if self.copy is None:
            await self.redis.set(keys.RULES_CHECKED(), "no copy")
            return
        lock = self.redis.lock(keys.RULES_LOCK(), timeout=keys.RULES_LOCK.ttl, blocking_timeout=20)
        if not await lock.acquire():
            return  # another process is restoring them; what is there now is what there is
        try:
            if await self.redis.exists(keys.RULES_CHECKED()):
                return
            if not await self.redis.hlen(keys.RULES()):
                try:
                    found = await self.copy.load()
                except RulesCopyError as exc:
                    log.warning("could not look for the copy of the approval rules in Slack (%s); trying again "
                                "in 10 minutes", exc)
                    await self.redis.set(keys.RULES_CHECKED(), "slack failed", ex=600)
                    return
                if found:
                    await self.redis.hset(keys.RULES(), mapping={cid: r.model_dump_json() for cid, r in found.items()})
                    await audit(self.redis, actor="coursebot", action="rules restored", target="every course",
                                outcome="changed", detail="read back from the approvals channel after Redis lost them",
                                before={}, after={cid: r.summary() for cid, r in found.items()})
                    log.warning("approval rules of %d course(s) restored from the approvals channel", len(found))
            await self.redis.set(keys.RULES_CHECKED(), "checked")
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("the rules lock expired before it was released")

    # ---- auto-approve -----------------------------------------------------------------------------

    async def auto_matches(self, requests: Iterable[ApprovalRequest]) -> list[tuple[ApprovalRequest, AutoRule]]:
        """The waiting requests an auto-approve rule approves, each with the first rule that matches.

        A user group that Slack will not list is skipped this time (logged); its requests wait."""
        book = await self.book()
        if not any(rules.auto for rules in book.values()):
            return []
        every = book.get(EVERY_COURSE)
        people = _GroupPeople(self.directory, self.redis)
        found = []
        for request in requests:
            course = book.get(request.course_id)
            for rule in [*(course.auto if course else []), *(every.auto if every else [])]:
                try:
                    if await people.matches(rule, request) and not await self._own(rule, request):
                        found.append((request, rule))
                        break
                except DirectoryError as exc:
                    log.warning("auto-approve %s: %s", rule.label, exc.message)
        return found

    async def preview(self, requests: Iterable[ApprovalRequest], course_id: str | None,
                      rule: AutoRule) -> list[ApprovalRequest]:
        """Which waiting requests this rule would approve now (raises DirectoryError if Slack fails)."""
        people = _GroupPeople(self.directory, self.redis)
        return [r for r in requests if (course_id is None or r.course_id == course_id)
                and await people.matches(rule, r) and not await self._own(rule, r)]

    async def allows(self, actor: str, request: ApprovalRequest) -> RuleCheck:
        """Does the rule this actor names still apply to this request? (the decision path asks)"""
        named = rule_of_actor(actor)
        if named is None:
            return RuleCheck.NO_RULE
        book = await self.book()
        rules = [*(book[request.course_id].auto if request.course_id in book else []),
                 *(book[EVERY_COURSE].auto if EVERY_COURSE in book else [])]
        rule = next((r for r in rules if r.same(named)), None)
        if rule is None:
            return RuleCheck.NO_RULE
        try:
            if not await _GroupPeople(self.directory, self.redis).matches(rule, request):
                return RuleCheck.NO_RULE
        except DirectoryError:
            return RuleCheck.NO_RULE
        return RuleCheck.OWN if await self._own(rule, request) else RuleCheck.ALLOWED

    async def _own(self, rule: AutoRule, request: ApprovalRequest) -> bool:
        return bool(rule.by) and await self.permissions.is_self(rule.by, request.member_id, request.member_email)

    async def note_approved(self, request: ApprovalRequest, rule: AutoRule) -> None:
        """Remember what a rule approved, for the digest."""
        now = time.time()
        entry = json.dumps({"request": request.id, "member": request.member_label, "course_id": request.course_id,
                            "course": request.course_title, "rule": rule.label, "at": now})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.RULE_APPROVED(), {entry: now})
            pipe.zremrangebyscore(keys.RULE_APPROVED(), "-inf", now - (keys.RULE_APPROVED.ttl or 0))
            pipe.expire(keys.RULE_APPROVED(), keys.RULE_APPROVED.ttl or 0)
            await pipe.execute()

    async def approved_since(self, moment: float) -> list[dict[str, str]]:
        raw = await self.redis.zrangebyscore(keys.RULE_APPROVED(), moment, "+inf")
        found = []
        for item in raw:
            try:
                found.append({k: str(v) for k, v in json.loads(str(item)).items()})
            except (ValueError, AttributeError):
                continue
        return found

    async def retry_due(self, request_id: str) -> bool:
        """An auto-approval the platform failed is tried again at most once an hour."""
        return bool(await self.redis.set(keys.RULE_RETRY(request_id), "1", nx=True, ex=keys.RULE_RETRY.ttl))


class _GroupPeople:
    """Who is in a user group, as emails and `/course link` records; read once per group per use."""

    def __init__(self, directory: Directory, redis: Redis) -> None:
        self.directory = directory
        self.redis = redis
        self.groups: dict[str, set[str]] = {}

    async def matches(self, rule: AutoRule, request: ApprovalRequest) -> bool:
        email = request.member_email.strip().lower()
        if rule.kind == "domain":
            # Exact: the part after the last @ equals the domain; sub- and look-alike domains do not match.
            return "@" in email and email.rsplit("@", 1)[1] == rule.value
        if rule.value not in self.groups:
            self.groups[rule.value] = await self._identities(rule.value)
        return bool(({email, request.member_id.strip().lower()} - {""}) & self.groups[rule.value])

    async def _identities(self, group_id: str) -> set[str]:
        """The group's people as emails (Slack profiles, cached an hour) and `/course link` records."""
        users = await self.directory.usergroup_members(group_id)
        if not users:
            return set()
        cached = await self.redis.mget([core_keys.SLACK_EMAIL(u) for u in users])
        found = {str(email).strip().lower() for email in cached if email}
        missing = [u for u, email in zip(users, cached, strict=True) if email is None]
        if missing:
            people = await self.directory.people(missing)
            found |= {p.email for p in people.values() if p.email and not p.deleted and not p.is_bot}
        links = await self.redis.mget([core_keys.LINK(u) for u in users])
        return found | {str(v).strip().lower() for v in links if v}


def _read(course_id: str, raw: object) -> CourseRules | None:
    if not raw:
        return None
    try:
        return CourseRules.model_validate_json(str(raw))
    except ValidationError:
        log.warning("unreadable approval rules for %s: ignored", course_id)
        return None
