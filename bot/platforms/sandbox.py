"""A course platform that lives in memory, with demo data, for trying the bot.

It behaves like a small Nexudus tenant: courses of every visibility, about fifty
members, enrolments that are approved, waiting or blocked, lessons and completions.
Everything resets when the process stops.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bot.core.capabilities import Capability
from bot.core.models import (
    AccessState,
    CompletedLesson,
    Course,
    CourseDraft,
    CreationAttempt,
    Enrolment,
    EnrolmentCounts,
    Lesson,
    Location,
    Member,
    PricePlan,
    Section,
    Visibility,
)
from bot.platforms.base import CoursePlatform, NotFound, ValidationFailed

FIRST = ["Ada", "Ben", "Chloé", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam", "Maya",
         "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Victor", "Wen", "Xavi", "Yara"]
LAST = ["Lovelace", "Okafor", "Martin", "Patel", "García", "Haddad", "Hopper", "Blanc", "Silva", "Berg"]
COMPANIES = ["Acme Studio", "Bright Labs", "Cobalt & Co", "Driftwood", "", "Freelance"]
TEAMS = ["Designers", "Developers", "Founders", "Marketing"]

COURSES = [
    ("Community Onboarding", Visibility.PUBLIC, ["Welcome", "House rules", "Booking rooms", "Meet the team"]),
    ("Hot Desk Etiquette", Visibility.HIDDEN, ["Quiet zones", "Phone booths", "Clean desk"]),
    ("Founders Circle", Visibility.PRIVATE, ["Intro", "Fundraising 101", "Hiring your first five", "Pitch night"]),
    ("Advanced Figma Workshop", Visibility.PAID, ["Setup", "Auto layout", "Components", "Prototyping", "Handoff"]),
    ("Makerspace Safety", Visibility.PRIVATE, ["Laser cutter", "3D printers", "Power tools"]),
]


def demo_members() -> list[Member]:
    """The demo people; the shell's stand-in Slack workspace uses the same emails."""
    people = []
    for index, (first, last) in enumerate(itertools.islice(itertools.product(FIRST, LAST), 0, 250, 5)):
        slug = f"{first.lower()}.{last.lower()}".replace("é", "e").replace("í", "i")
        people.append(
            Member(
                id=str(1001 + index),
                email=f"{slug}@example.com",
                full_name=f"{first} {last}",
                company=COMPANIES[index % len(COMPANIES)],
                teams=(TEAMS[index % len(TEAMS)],) if index % 3 else (),
            )
        )
    return people


class SandboxPlatform(CoursePlatform):
    name = "sandbox"
    display_name = "the sandbox"
    cache_reads = False  # in memory: nothing to save, and a cache would hide what a test changes here
    capabilities = frozenset(
        {Capability.ENROL, Capability.APPROVAL, Capability.BLOCK, Capability.BULK_INVITE,
         Capability.LESSONS, Capability.COMPLETIONS, Capability.LINK_BY_ID, Capability.CREATE_COURSE}
    )
    locations = (Location(id="1", name="Main Street Hub"), Location(id="2", name="Harbour Loft"))
    price_plans = (
        PricePlan(id="71", name="Workshop pass", location_id="1", location_name="Main Street Hub", price=49.0,
                  currency="EUR"),
        PricePlan(id="72", name="Masterclass", location_id="2", location_name="Harbour Loft", price=120.0,
                  currency="EUR"),
    )

    def __init__(self, *, seed: int = 7, now: datetime | None = None) -> None:
        self._now = now or datetime.now(UTC)
        self._ids = itertools.count(5001)
        self._lock = asyncio.Lock()
        self.courses: dict[str, Course] = {}
        self.lessons: dict[str, Lesson] = {}
        self.members: dict[str, Member] = {m.id: m for m in demo_members()}
        self.enrolments: dict[str, Enrolment] = {}
        self.completed: dict[str, CompletedLesson] = {}
        self.created_by: dict[str, str] = {}  # create_course's request key -> course id
        self._seed(random.Random(seed))

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _seed(self, rng: random.Random) -> None:
        for index, (title, visibility, lesson_titles) in enumerate(COURSES):
            course = Course(id=str(101 + index), title=title, visibility=visibility,
                            summary=f"{title} for members of the space.")
            self.courses[course.id] = course
            for order, lesson_title in enumerate(lesson_titles, start=1):
                lesson = Lesson(id=str(course.id) + f"{order:02d}", course_id=course.id, title=lesson_title,
                                display_order=order, unlock_type="Immediate", completion_type="Button")
                self.lessons[lesson.id] = lesson
        members = list(self.members.values())
        for course in self.courses.values():
            course_lessons = [le for le in self.lessons.values() if le.course_id == course.id]
            for member in rng.sample(members, rng.randint(8, 18)):
                roll = rng.random()
                needs_approval = course.visibility.needs_approval
                approved = not needs_approval or roll < 0.6
                blocked = needs_approval and roll > 0.9
                asked = self._now - timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23))
                enrolment = self._new_enrolment(course, member, approved=approved and not blocked, blocked=blocked,
                                                at=asked)
                if enrolment.state is AccessState.APPROVED:
                    for lesson in course_lessons[: rng.randint(0, len(course_lessons))]:
                        done = asked + timedelta(days=rng.randint(0, 10))
                        self._complete(enrolment, lesson, min(done, self._now))

    def _new_enrolment(self, course: Course, member: Member, *, approved: bool, blocked: bool,
                       at: datetime) -> Enrolment:
        enrolment = Enrolment(
            id=self._next_id(), course_id=course.id, member_id=member.id, course_title=course.title,
            member_name=member.full_name, member_company=member.company, member_teams=member.teams,
            approved=approved, blocked=blocked, created_on=at, updated_on=at,
        )
        self.enrolments[enrolment.id] = enrolment
        return enrolment

    def _complete(self, enrolment: Enrolment, lesson: Lesson, at: datetime) -> None:
        record = CompletedLesson(id=self._next_id(), enrolment_id=enrolment.id, lesson_id=lesson.id,
                                 lesson_title=lesson.title, member_name=enrolment.member_name, created_on=at)
        self.completed[record.id] = record
        self.enrolments[enrolment.id] = enrolment.model_copy(
            update={"last_completed_lesson": lesson.title, "last_access": at}
        )

    async def list_courses(self) -> list[Course]:
        return sorted(self.courses.values(), key=lambda c: c.title.lower())

    def looks_like_course_id(self, query: str) -> bool:
        return query.strip().isdigit()

    async def get_course(self, course_id: str) -> Course | None:
        return self.courses.get(course_id)

    async def count_enrolments(self, course_id: str) -> EnrolmentCounts:
        states = [e.state for e in self.enrolments.values() if e.course_id == course_id]
        return EnrolmentCounts(total=len(states), approved=states.count(AccessState.APPROVED),
                               pending=states.count(AccessState.PENDING), blocked=states.count(AccessState.BLOCKED))

    async def find_members_by_email(self, emails: Iterable[str], *, create_missing: bool = True) -> dict[str, Member]:
        by_email = {m.email.lower(): m for m in self.members.values()}
        wanted = {e.strip().lower() for e in emails}
        return {e: by_email[e] for e in wanted if e in by_email}

    async def get_member(self, member_id: str) -> Member | None:
        return self.members.get(member_id)

    async def find_enrolment(self, course_id: str, member_id: str) -> Enrolment | None:
        return next((e for e in self.enrolments.values()
                     if e.course_id == course_id and e.member_id == member_id), None)

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        return self.enrolments.get(enrolment_id)

    async def list_enrolments(
        self, *, course_id: str | None = None, pending_only: bool = False,
        updated_since: datetime | None = None, created_since: datetime | None = None,
    ) -> list[Enrolment]:
        found = [
            e for e in self.enrolments.values()
            if (course_id is None or e.course_id == course_id)
            and (not pending_only or e.state is AccessState.PENDING)
            and (updated_since is None or (e.updated_on is not None and e.updated_on >= updated_since))
            and (created_since is None or (e.created_on is not None and e.created_on >= created_since))
        ]
        return sorted(found, key=lambda e: int(e.id))

    async def create_enrolment(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment:
        async with self._lock:
            existing = await self.find_enrolment(course_id, member_id)
            if existing is not None:
                return existing
            course, member = self.courses.get(course_id), self.members.get(member_id)
            if course is None or member is None:
                raise NotFound("That course or member does not exist in the sandbox.")
            return self._new_enrolment(course, member, approved=approved, blocked=False, at=datetime.now(UTC))

    async def set_access(self, enrolment: Enrolment, *, approved: bool | None = None,
                         blocked: bool | None = None) -> Enrolment:
        enrolment_id = enrolment.id
        async with self._lock:
            enrolment = self.enrolments.get(enrolment_id)  # type: ignore[assignment]
            if enrolment is None:
                raise NotFound(f"Enrolment {enrolment_id} does not exist in the sandbox.")
            changes: dict[str, object] = {"updated_on": datetime.now(UTC)}
            if approved is not None:
                changes["approved"] = approved
            if blocked is not None:
                changes["blocked"] = blocked
            updated = enrolment.model_copy(update=changes)
            self.enrolments[enrolment_id] = updated
            return updated

    async def list_lessons(self, course_id: str) -> list[Lesson]:
        return sorted((le for le in self.lessons.values() if le.course_id == course_id),
                      key=lambda le: (le.section_order, le.display_order))

    async def list_completed_lessons(self, *, enrolment_id: str | None = None,
                                     since: datetime | None = None) -> list[CompletedLesson]:
        return [c for c in self.completed.values()
                if (enrolment_id is None or c.enrolment_id == enrolment_id)
                and (since is None or (c.created_on is not None and c.created_on >= since))]

    # ---- sections, completions, course creation ---------------------------------------------

    async def list_sections(self, course_id: str) -> list[Section]:
        return []  # the demo courses' lessons sit directly in the course

    async def create_completed_lesson(self, enrolment_id: str, lesson_id: str) -> CompletedLesson:
        async with self._lock:
            existing = next((c for c in self.completed.values()
                             if c.enrolment_id == enrolment_id and c.lesson_id == lesson_id), None)
            if existing is not None:
                return existing
            enrolment, lesson = self.enrolments.get(enrolment_id), self.lessons.get(lesson_id)
            if enrolment is None or lesson is None:
                raise NotFound("That enrolment or lesson does not exist in the sandbox.")
            self._complete(enrolment, lesson, datetime.now(UTC))
            return next(c for c in reversed(self.completed.values())
                        if c.enrolment_id == enrolment_id and c.lesson_id == lesson_id)

    async def delete_completed_lesson(self, completed_id: str) -> None:
        async with self._lock:
            self.completed.pop(completed_id, None)

    async def list_locations(self) -> list[Location]:
        return list(self.locations)

    async def list_price_plans(self) -> list[PricePlan]:
        return list(self.price_plans)

    async def search_members(self, query: str, *, limit: int = 20) -> list[Member]:
        text = query.strip().lower()
        found = [m for m in self.members.values() if text and (text in m.full_name.lower() or text in m.email.lower())]
        return sorted(found, key=lambda m: m.full_name.lower())[:limit]

    async def begin_course_creation(self, title: str) -> CreationAttempt:
        return CreationAttempt(title=title, since=datetime.now(UTC),
                               existing=[c.id for c in self.courses.values() if c.title == title])

    async def find_course_created_by(self, request_key: str, attempt: CreationAttempt) -> Course | None:
        course_id = self.created_by.get(request_key)  # the sandbox never loses an answer
        return self.courses.get(course_id) if course_id else None

    async def create_course(self, draft: CourseDraft, *, request_key: str,
                            attempt: CreationAttempt | None = None) -> Course:
        async with self._lock:
            existing = self.courses.get(self.created_by.get(request_key, ""))
            if existing is not None:
                return existing
            problems: dict[str, str] = {}
            if draft.location_id not in {loc.id for loc in self.locations}:
                problems["location_id"] = "The sandbox has no such location."
            if draft.host_id not in self.members:
                problems["host_id"] = "The sandbox has no such member."
            if draft.visibility is Visibility.PAID and draft.plan_id not in {p.id for p in self.price_plans}:
                problems["plan_id"] = "A paid course needs one of the sandbox's price plans."
            if problems:
                raise ValidationFailed("The sandbox refused it: " + " ".join(problems.values()), problems)
            course = Course(id=self._next_id(), title=draft.title, visibility=draft.visibility,
                            active=draft.active, summary=draft.summary)
            self.courses[course.id] = course
            self.created_by[request_key] = course.id
            return course
