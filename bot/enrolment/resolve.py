"""Turn what a manager typed into platform objects: a course, a member."""

from __future__ import annotations

import difflib

from bot.core import keys
from bot.core.directory import Directory, DirectoryError
from bot.core.errors import CourseAmbiguous, CourseNotFound, MemberNotFound, SlackUser, UserFacingError
from bot.core.grammar import Ref, RefKind
from bot.core.models import Course, Member
from bot.core.store import Redis
from bot.platforms.base import CoursePlatform


def match_courses(courses: list[Course], query: str) -> list[Course]:
    """An id or an exact title wins; otherwise every title that contains the fragment."""
    q = query.strip().lower()
    if not q:
        return []
    by_id = [c for c in courses if c.id.lower() == q]
    if by_id:
        return by_id
    exact = [c for c in courses if c.title.strip().lower() == q]
    if exact:
        return exact
    return [c for c in courses if q in c.title.lower()]


class Resolver:
    def __init__(self, platform: CoursePlatform, directory: Directory, redis: Redis) -> None:
        self.platform = platform
        self.directory = directory
        self.redis = redis

    async def course(self, query: str) -> Course:
        """An id is looked up alone (one cached read, not the list); a title is matched against the
        (cached) list, read again when nothing matches and the cached one is not brand new."""
        if self.platform.looks_like_course_id(query):
            course = await self.platform.get_course(query.strip())
            if course is not None:
                return course
        courses = await self.platform.list_courses()
        found = match_courses(courses, query)
        if not found and await self.platform.drop_cached_courses():
            courses = await self.platform.list_courses()  # the course may be new since the list was cached
            found = match_courses(courses, query)
        if len(found) == 1:
            return found[0]
        if found:
            raise CourseAmbiguous(query, found)
        titles = {c.title.lower(): c for c in courses}
        close = difflib.get_close_matches(query.lower(), list(titles), n=3, cutoff=0.5)
        raise CourseNotFound(query, [titles[t] for t in close])

    async def member(self, ref: Ref) -> Member:
        if ref.kind is RefKind.USER:
            return await self._slack_user(ref.value)
        if ref.kind is RefKind.EMAIL:
            found = await self.platform.find_members_by_email([ref.value])
            if ref.value in found:
                return found[ref.value]
            raise MemberNotFound(
                "{email}",
                f"No member on {self.platform.display_name} has that email. Check the spelling, "
                "or add them as a member there first.",
                email=ref.value,
            )
        if ref.kind is RefKind.ID:
            member = await self.platform.get_member(ref.value)
            if member is not None:
                return member
            raise MemberNotFound(
                "member id {id}", f"{self.platform.display_name} has no member with that id.", id=ref.value
            )
        raise UserFacingError(
            "I can't tell who “{name}” is. Give an email, an @mention picked from Slack's list, or a platform id.",
            name=ref.value,
        )

    async def _slack_user(self, user_id: str) -> Member:
        linked = str(await self.redis.get(keys.LINK(user_id)) or "")
        if linked:
            member = await self._linked(linked)
            if member is not None:
                return member
            raise MemberNotFound(
                "{user}",
                "They are linked to {linked}, which no longer matches a member on "
                f"{self.platform.display_name}. Link them again: `/course link @user their-email-or-id`.",
                user=SlackUser(user_id), linked=linked,
            )
        try:
            email = await self.directory.email_of(user_id)
        except DirectoryError as exc:
            raise UserFacingError("{reason}", reason=exc.message) from None
        if not email:
            raise MemberNotFound(
                "{user}",
                "Slack did not share their email (the bot needs the users:read.email scope, and bots and guests "
                "may have none). Use their email instead, or link them: `/course link @user their-email-or-id`.",
                user=SlackUser(user_id),
            )
        found = await self.platform.find_members_by_email([email])
        if email in found:
            return found[email]
        raise MemberNotFound(
            "{user}",
            "Their Slack email is {email}, and no member on "
            f"{self.platform.display_name} has it. If they use another email there, link them once: "
            "`/course link @user their-platform@email`.",
            user=SlackUser(user_id), email=email,
        )

    async def _linked(self, target: str) -> Member | None:
        if "@" in target:
            return (await self.platform.find_members_by_email([target])).get(target.lower())
        return await self.platform.get_member(target)
