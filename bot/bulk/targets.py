"""Who a bulk command is for: emails, @users, #channels and @user-groups turned into platform members.

Slack users (named, or members of a channel or user group) become emails through their Slack
profile, unless `/course link` recorded who they are on the platform; bots and deactivated
accounts are skipped. Emails become members by exact match on the platform. Everyone appears
once; whoever cannot be found is kept, with the reason, for the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from bot.core import keys
from bot.core.directory import Directory, DirectoryError
from bot.core.errors import UserFacingError
from bot.core.grammar import Ref, RefKind
from bot.core.models import Member
from bot.core.store import Redis
from bot.platforms.base import CoursePlatform


class Outcome(StrEnum):
    DONE = "done"  # this job did it ("invited")
    ALREADY = "already"  # it was done before ("already enrolled")
    FAILED = "failed"  # the platform refused, with its reason
    NOT_IN_SLACK = "not_in_slack"
    NOT_ON_PLATFORM = "not_on_platform"
    NOT_DONE = "not_done"  # the job was cancelled (or stopped) before reaching them


class BulkItem(BaseModel):
    """One person the job acts on: a platform member (the key), and how we know them."""

    member_id: str
    email: str = ""
    name: str = ""
    slack_user: str = ""

    @property
    def key(self) -> str:
        return self.member_id


class Unresolved(BaseModel):
    name: str = ""
    email: str = ""
    slack_user: str = ""
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class People:
    items: list[BulkItem]
    unresolved: list[Unresolved]
    skipped_bots: int = 0


@dataclass
class _Want:
    """A person on their way to a member: by email or by platform id."""

    email: str = ""
    member_id: str = ""
    slack_user: str = ""
    name: str = ""
    linked: str = ""


async def _slack_users(directory: Directory, refs: Sequence[Ref]) -> list[str]:
    users: dict[str, None] = {}
    for ref in refs:
        try:
            if ref.kind is RefKind.USER:
                users[ref.value] = None
            elif ref.kind is RefKind.CHANNEL:
                users.update(dict.fromkeys(await directory.channel_members(ref.value)))
            elif ref.kind is RefKind.USERGROUP:
                users.update(dict.fromkeys(await directory.usergroup_members(ref.value)))
        except DirectoryError as exc:
            raise UserFacingError("{reason} Nothing was started.", reason=exc.message) from None
    return list(users)


async def resolve_people(platform: CoursePlatform, directory: Directory, redis: Redis,
                         refs: Sequence[Ref]) -> People:
    where = platform.display_name
    wants: list[_Want] = []
    unresolved: list[Unresolved] = []
    skipped = 0

    user_ids = await _slack_users(directory, refs)
    if user_ids:
        try:
            people = await directory.people(user_ids)
        except DirectoryError as exc:
            raise UserFacingError("{reason} Nothing was started.", reason=exc.message) from None
        links = await redis.mget([keys.LINK(user_id) for user_id in user_ids])
        for user_id, linked in zip(user_ids, links, strict=True):
            person = people.get(user_id)
            if person is None:
                unresolved.append(Unresolved(slack_user=user_id, outcome=Outcome.NOT_IN_SLACK,
                                             reason="Slack does not know this user."))
                continue
            if person.is_bot or person.deleted:
                skipped += 1
                continue
            if linked:
                want = _Want(slack_user=user_id, name=person.name, linked=str(linked))
                if "@" in want.linked:
                    want.email = want.linked.lower()
                else:
                    want.member_id = want.linked
                wants.append(want)
            elif person.email:
                wants.append(_Want(email=person.email, slack_user=user_id, name=person.name))
            else:
                unresolved.append(Unresolved(
                    name=person.name, slack_user=user_id, outcome=Outcome.NOT_IN_SLACK,
                    reason="Their Slack profile shows no email (the bot needs users:read.email). "
                           "Link them once: /course link @user their-email."))
    for ref in refs:
        if ref.kind is RefKind.EMAIL:
            wants.append(_Want(email=ref.value.lower()))
        elif ref.kind is RefKind.ID:
            wants.append(_Want(member_id=ref.value))

    by_email = await platform.find_members_by_email([w.email for w in wants if w.email]) if any(
        w.email for w in wants) else {}
    ids = [w.member_id for w in wants if w.member_id]
    by_id = await platform.get_members(ids) if ids else {}

    items: dict[str, BulkItem] = {}
    for want in wants:
        member: Member | None = by_email.get(want.email) if want.email else by_id.get(want.member_id)
        if member is None:
            name = want.name or (f"member id {want.member_id}" if want.member_id and not want.slack_user else "")
            unresolved.append(Unresolved(name=name, email=want.email, slack_user=want.slack_user,
                                         outcome=Outcome.NOT_ON_PLATFORM, reason=_missing(want, where)))
            continue
        if member.id in items:
            continue  # named twice (an email and a mention, two channels…): once is enough
        items[member.id] = BulkItem(member_id=member.id, email=member.email or want.email,
                                    name=member.full_name or want.name, slack_user=want.slack_user)
    return People(items=list(items.values()), unresolved=_unique(unresolved), skipped_bots=skipped)


def _missing(want: _Want, where: str) -> str:
    if want.linked:
        return f"Linked to {want.linked}, which matches no member on {where}. Link them again: /course link."
    if want.slack_user:
        return (f"No member on {where} has their Slack email. If they use another email there, "
                "link them once: /course link @user their-email.")
    if want.email:
        return f"No member on {where} has this email."
    return f"{where} has no member with id {want.member_id}."


def _unique(rows: list[Unresolved]) -> list[Unresolved]:
    seen: set[tuple[str, str]] = set()
    kept: list[Unresolved] = []
    for row in rows:
        key = (row.slack_user, row.email)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept
