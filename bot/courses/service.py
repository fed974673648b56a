"""Courses and progress: what `/course new`, `/course lessons` and `/course complete|uncomplete` do.

- A course is created at most once per form: the form's view id is claimed in Redis (SET NX)
  before the platform is asked. Before the course is sent, how the platform looks (the courses
  with that title, the platform's time) is kept in Redis with the form; after an unclear failure,
  or a crash, the course that create made is found by its title and creation time, not made again.
  When the adapter cannot tell (CreationUnclear), the manager is told so and nothing is re-sent.
- A completion belongs to the member's *enrolment*. Each change runs under a Redis lock for
  enrolment+lesson, reads first, and writes only when something must change; every change,
  refusal and platform error goes to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.exceptions import LockError

from bot.core.audit import audit
from bot.core.errors import UserFacingError
from bot.core.grammar import Ref
from bot.core.models import (
    CompletedLesson,
    Course,
    CourseDraft,
    CreationAttempt,
    Enrolment,
    Lesson,
    Location,
    Member,
    PricePlan,
    Section,
)
from bot.core.models import Visibility as Vis
from bot.core.pacing import BudgetExceeded
from bot.core.permissions import Permissions
from bot.core.store import Redis
from bot.courses import keys
from bot.enrolment.resolve import Resolver
from bot.platforms.base import CoursePlatform, CreationUnclear, NotSupported, PlatformError

TITLE_MAX = 150
SUMMARY_MAX = 400  # Nexudus shows about 400 characters of a summary
DISPLAY_ORDER_RANGE = (-1_000_000, 1_000_000)
VISIBILITIES = (Vis.PUBLIC, Vis.HIDDEN, Vis.PRIVATE, Vis.PAID)
PENDING_TTL = 120  # a claim whose creator died stops blocking the form after this long


# ---- errors ---------------------------------------------------------------------------------

class LessonNotFound(UserFacingError):
    def __init__(self, query: str, course: Course, lessons: list[Lesson]) -> None:
        super().__init__("No lesson of {course} matches “{query}”.", course=course.title, query=query)
        self.course = course
        self.lessons = lessons


class LessonAmbiguous(UserFacingError):
    def __init__(self, query: str, course: Course, candidates: list[Lesson]) -> None:
        super().__init__("“{query}” matches " + str(len(candidates)) + " lessons of {course}.",
                         query=query, course=course.title)
        self.course = course
        self.candidates = candidates


class NotEnrolled(UserFacingError):
    """The member has no enrolment in the course, so there is nothing to record a completion on."""

    def __init__(self, course: Course, member: Member, lesson: Lesson, *, remove: bool = False) -> None:
        super().__init__("{member} is not enrolled in {course}, so " + (
            "they have no completed lessons there." if remove else "no lesson can be marked for them."),
            member=member.label, course=course.title)
        self.course = course
        self.member = member
        self.lesson = lesson
        self.remove = remove


class BudgetSpent(UserFacingError):
    def __init__(self, platform: str, retry_at: float) -> None:
        at = datetime.fromtimestamp(retry_at, UTC).strftime("%H:%M UTC")
        super().__init__("The bot has spent today's write budget for {platform}, so nothing was changed. "
                         "Try again after {at}.", platform=platform, at=at)


class CreationInProgress(UserFacingError):
    def __init__(self) -> None:
        super().__init__("This form is already creating its course; you will get a message when it is done.")


# ---- results --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormChoices:
    locations: list[Location]
    plans: list[PricePlan]
    plans_problem: str = ""  # why there are no plans to pick from, when the platform would not say


@dataclass(frozen=True)
class CourseForm:
    """What the manager entered in the form, as Slack sent it (nothing checked yet)."""

    title: str = ""
    location_id: str | None = None
    host_id: str | None = None
    display_order: str = ""
    visibility: str | None = None
    plan_id: str | None = None
    summary: str = ""
    description: str = ""
    group_name: str = ""
    show_on_home_page: bool = False
    active: bool = True


@dataclass(frozen=True)
class Creation:
    course: Course
    created: bool  # False: this form had already created it


@dataclass(frozen=True)
class LessonsListing:
    course: Course
    sections: list[Section]
    lessons: list[Lesson]

    def grouped(self) -> list[tuple[Section | None, list[Lesson]]]:
        """Lessons outside any section first, then each section in order with its lessons in order."""
        by_section: dict[str | None, list[Lesson]] = {}
        for lesson in self.lessons:
            by_section.setdefault(lesson.section_id, []).append(lesson)
        for found in by_section.values():
            found.sort(key=lambda le: (le.display_order, _id_order(le.id)))
        known = {s.id for s in self.sections}
        # Sections the lessons name but the section list lacks (a platform without a section list).
        extra = {le.section_id: Section(id=le.section_id, course_id=self.course.id, title=le.section_title or "",
                                        display_order=le.section_order)
                 for le in self.lessons if le.section_id and le.section_id not in known}
        sections = sorted([*self.sections, *extra.values()], key=lambda s: (s.display_order, _id_order(s.id)))
        groups: list[tuple[Section | None, list[Lesson]]] = []
        if by_section.get(None):
            groups.append((None, by_section[None]))
        groups.extend((section, by_section.get(section.id, [])) for section in sections)
        return groups


@dataclass(frozen=True)
class CompletionResult:
    course: Course
    member: Member
    lesson: Lesson
    enrolment: Enrolment
    changed: bool
    removed: bool = False  # an uncomplete
    records: list[CompletedLesson] = field(default_factory=list)


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


# ---- the form -------------------------------------------------------------------------------

def check_form(form: CourseForm) -> CourseDraft | dict[str, str]:
    """The draft to create, or what is wrong keyed by CourseDraft field name. Pure: answered in the ack."""
    errors: dict[str, str] = {}
    title = " ".join(form.title.split())
    if not title:
        errors["title"] = "Give the course a title."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"Keep the title under {TITLE_MAX} characters."
    if not form.location_id:
        errors["location_id"] = "Pick the location that runs the course."
    if not form.host_id:
        errors["host_id"] = "Pick the host: type part of a member's name or email."
    order = 0
    raw_order = form.display_order.strip()
    if raw_order:
        try:
            order = int(raw_order)
        except ValueError:
            errors["display_order"] = "Use a whole number, like 0 or 10."
        else:
            low, high = DISPLAY_ORDER_RANGE
            if not low <= order <= high:
                errors["display_order"] = f"Use a number between {low} and {high}."
    visibility = next((v for v in VISIBILITIES if v.value == form.visibility), None)
    if visibility is None:
        errors["visibility"] = "Pick who can see the course."
    elif visibility is Vis.PAID and not form.plan_id:
        errors["plan_id"] = "A paid course needs the pricing plan members buy to join it."
    summary = form.summary.strip()
    if len(summary) > SUMMARY_MAX:
        errors["summary"] = f"Keep the summary under {SUMMARY_MAX} characters ({len(summary)} now)."
    if errors:
        return errors
    assert form.location_id and form.host_id and visibility is not None
    return CourseDraft(
        title=title, location_id=form.location_id, host_id=form.host_id, display_order=order,
        visibility=visibility, plan_id=form.plan_id if visibility is Vis.PAID else None, summary=summary,
        description=form.description.strip(), group_name=form.group_name.strip(),
        show_on_home_page=form.show_on_home_page, active=form.active,
    )


def match_lessons(lessons: list[Lesson], query: str) -> list[Lesson]:
    """An id or an exact title wins; otherwise every title that contains the fragment."""
    q = " ".join(query.split()).lower()
    if not q:
        return []
    by_id = [le for le in lessons if le.id.lower() == q]
    if by_id:
        return by_id
    exact = [le for le in lessons if " ".join(le.title.split()).lower() == q]
    if exact:
        return exact
    return [le for le in lessons if q in le.title.lower()]


class CourseService:
    def __init__(self, platform: CoursePlatform, redis: Redis, resolver: Resolver, permissions: Permissions) -> None:
        self.platform = platform
        self.redis = redis
        self.resolve = resolver
        self.permissions = permissions

    # ---- creating a course ------------------------------------------------------------------

    async def form_choices(self) -> FormChoices:
        """Locations and plans for the form; plans that cannot be read leave Paid unavailable, not the form."""
        found_locations, found_plans = await asyncio.gather(
            self.platform.list_locations(), self.platform.list_price_plans(), return_exceptions=True)
        if isinstance(found_locations, BaseException):
            raise found_locations
        locations = found_locations
        plans: list[PricePlan] = []
        problem = ""
        if isinstance(found_plans, PlatformError):
            problem = found_plans.message
        elif isinstance(found_plans, BaseException):
            raise found_plans
        else:
            plans = found_plans
        await self._cache_choices(locations, plans)
        return FormChoices(locations, plans, problem)

    async def _cache_choices(self, locations: list[Location], plans: list[PricePlan]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.COURSE_CHOICES("location"), json.dumps([loc.model_dump() for loc in locations]),
                     ex=keys.COURSE_CHOICES.ttl)
            pipe.set(keys.COURSE_CHOICES("plan"), json.dumps([p.model_dump() for p in plans]),
                     ex=keys.COURSE_CHOICES.ttl)
            await pipe.execute()

    async def locations_matching(self, query: str, limit: int = 100) -> list[Location]:
        cached = await self.redis.get(keys.COURSE_CHOICES("location"))
        found = ([Location.model_validate(x) for x in json.loads(cached)] if cached
                 else await self.platform.list_locations())
        q = query.strip().lower()
        return [loc for loc in found if q in loc.name.lower() or q == loc.id][:limit]

    async def plans_matching(self, query: str, limit: int = 100) -> list[PricePlan]:
        cached = await self.redis.get(keys.COURSE_CHOICES("plan"))
        found = ([PricePlan.model_validate(x) for x in json.loads(cached)] if cached
                 else await self.platform.list_price_plans())
        q = query.strip().lower()
        return [p for p in found if q in p.name.lower() or q in p.location_name.lower() or q == p.id][:limit]

    async def search_hosts(self, query: str, limit: int = 20) -> list[Member]:
        if len(query.strip()) < 2:
            return []
        return await self.platform.search_members(query, limit=limit)

    async def create(self, actor: str, draft: CourseDraft, *, form_id: str, wait: float = 2.0) -> Creation:
        """Create the course of form `form_id` once, however often the form is submitted.

        A repeat while the first is still running waits up to `wait` seconds for it, then raises
        CreationInProgress; a repeat after it succeeded returns the same course (created=False)."""
        claim = keys.COURSE_NEW(form_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not await self.redis.set(claim, "pending", nx=True, ex=PENDING_TTL):
            state = str(await self.redis.get(claim) or "")
            if state.startswith("created:"):
                course_id = state.removeprefix("created:")
                course = await self.platform.get_course(course_id)
                return Creation(course or Course(id=course_id, title=draft.title, visibility=draft.visibility), False)
            if state and loop.time() >= deadline:
                raise CreationInProgress()
            if state:
                await asyncio.sleep(0.1)
        target = f"new course “{draft.title}”"
        attempt_key = keys.COURSE_ATTEMPT(form_id)
        request_key = f"coursebot:new:{form_id}"
        sent = False
        try:
            course = await self._earlier_attempts_course(attempt_key, request_key)
            if course is None:
                attempt = await self.platform.begin_course_creation(draft.title)
                await self.redis.set(attempt_key, attempt.model_dump_json(), ex=keys.COURSE_ATTEMPT.ttl)
                sent = True
                course = await self.platform.create_course(draft, request_key=request_key, attempt=attempt)
        except BaseException as exc:
            # The form may be submitted again, corrected. What was sent is forgotten only when the
            # platform said plainly that it made nothing; otherwise the next submission looks first.
            refused = isinstance(exc, PlatformError | BudgetExceeded) and not isinstance(exc, CreationUnclear)
            with contextlib.suppress(Exception):
                await self.redis.delete(*([claim, attempt_key] if sent and refused else [claim]))
            if isinstance(exc, PlatformError):
                await audit(self.redis, actor=actor, action="new", target=target,
                            outcome="unknown" if isinstance(exc, CreationUnclear) else "error", detail=exc.message)
            if isinstance(exc, BudgetExceeded):
                raise BudgetSpent(self.platform.display_name, exc.retry_at) from None
            raise
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(claim, f"created:{course.id}", ex=keys.COURSE_NEW.ttl)
            pipe.delete(attempt_key)
            await pipe.execute()
        await audit(self.redis, actor=actor, action="new", target=f"course {course.id}", outcome="changed",
                    detail=f"{draft.visibility.value}, location {draft.location_id}, host {draft.host_id}"
                           + (f", plan {draft.plan_id}" if draft.plan_id else ""))
        return Creation(course, True)

    async def _earlier_attempts_course(self, attempt_key: str, request_key: str) -> Course | None:
        """The course an earlier submission of this form sent and never heard back about (a lost answer,
        a crash), found by title and creation time; None when there was none or it made nothing."""
        stored = await self.redis.get(attempt_key)
        if not stored:
            return None
        earlier = CreationAttempt.model_validate_json(stored)
        return await self.platform.find_course_created_by(request_key, earlier)

    # ---- lessons ----------------------------------------------------------------------------

    async def lessons(self, course_query: str) -> LessonsListing:
        course = await self.resolve.course(course_query)
        lessons, sections = await asyncio.gather(self.platform.lessons_with_types(course.id),
                                                 self._sections(course.id))
        return LessonsListing(course, sections, lessons)

    async def _sections(self, course_id: str) -> list[Section]:
        try:
            return await self.platform.list_sections(course_id)
        except NotSupported:
            return []  # the lessons still name their sections

    async def lesson(self, course: Course, query: str, lessons: list[Lesson] | None = None) -> Lesson:
        lessons = lessons if lessons is not None else await self.platform.list_lessons(course.id)
        found = match_lessons(lessons, query)
        if len(found) == 1:
            return found[0]
        if found:
            raise LessonAmbiguous(query, course, found)
        raise LessonNotFound(query, course, lessons)

    # ---- completions ------------------------------------------------------------------------

    async def complete(self, actor: str, course_query: str, member_ref: Ref, lesson_query: str,
                       *, remove: bool = False) -> CompletionResult:
        """Resolve, check, lock, look, and write at most once."""
        action = "uncomplete" if remove else "complete"
        target = f"{course_query} / {member_ref} / {lesson_query}"
        try:
            course = await self.resolve.course(course_query)
            lesson = await self.lesson(course, lesson_query)
            member = await self.resolve.member(member_ref)
            result = await self.record(course, member, lesson, remove=remove)
        except (UserFacingError, PlatformError) as exc:
            await audit(self.redis, actor=actor, action=action, target=target, outcome="error", detail=str(exc))
            raise
        await self.audit_result(actor, result)
        return result

    async def audit_result(self, actor: str, result: CompletionResult) -> None:
        await audit(self.redis, actor=actor, action="uncomplete" if result.removed else "complete",
                    target=f"enrolment {result.enrolment.id} / lesson {result.lesson.id}",
                    outcome="changed" if result.changed else "unchanged",
                    detail=f"course {result.course.id}, member {result.member.id}")

    async def record(self, course: Course, member: Member, lesson: Lesson, *, remove: bool = False) -> CompletionResult:
        """Complete (or uncomplete) `lesson` for the member's enrolment; no audit (the caller does it)."""
        enrolment = await self.platform.find_enrolment(course.id, member.id)
        if enrolment is None:
            raise NotEnrolled(course, member, lesson, remove=remove)
        lock = self.redis.lock(keys.COMPLETION_LOCK(enrolment.id, lesson.id), timeout=keys.COMPLETION_LOCK.ttl,
                               blocking_timeout=20)
        if not await lock.acquire():
            raise UserFacingError("Someone else is changing {member}'s progress in {lesson} right now. "
                                  "Try again in a moment.", member=member.label, lesson=lesson.title)
        try:
            done = [c for c in await self.platform.list_completed_lessons(enrolment_id=enrolment.id)
                    if c.lesson_id == lesson.id]
            if remove:
                for record in done:
                    await self.platform.delete_completed_lesson(record.id)
                return CompletionResult(course, member, lesson, enrolment, changed=bool(done), removed=True,
                                        records=done)
            if done:
                return CompletionResult(course, member, lesson, enrolment, changed=False, records=done)
            created = await self.platform.create_completed_lesson(enrolment.id, lesson.id)
            return CompletionResult(course, member, lesson, enrolment, changed=True, records=[created])
        except BudgetExceeded as exc:
            raise BudgetSpent(self.platform.display_name, exc.retry_at) from None
        finally:
            with contextlib.suppress(LockError):  # expired while the platform was slow: nothing to undo
                await lock.release()
