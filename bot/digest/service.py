"""What the daily digest says, computed from the platform's changes since the last one.

Cost is the point. Every read is a date-ranged list in large pages, so a digest's requests
follow the day's changes, not the tenant's size:

- enrolments and completed lessons created since `read_from` (`from_…_CreatedOn`), where
  `read_from` is the last digest's moment, pulled back to the start of the oldest chart day
  not yet counted (normally yesterday, which the previous morning's digest saw only half of);
- per-day counts of finished days are kept in Redis (`DIGEST_COUNTS`), so the 14-day chart
  re-reads nothing it counted before;
- course completions come from the progress ledger (`bot.digest_ledger`), kept current by
  the completions read above, so no member's history is read again;
- stalled members are those who *became* stalled since the last digest: enrolments created
  in [since - N days, now - N days), one bounded date-range read, with no completed lesson
  and no access since enrolling. Everyone stalled earlier was named in an earlier digest;
- course titles and the lesson -> course map are cached for an hour.

On a platform without completed-lesson records (MeltingSpot), the same sections come from
participant statuses and dates: `status`, `created_on`, `updated_on`, `completion_rate`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.core.capabilities import Capability
from bot.core.config import Settings
from bot.core.models import AccessState, CompletedLesson, Enrolment
from bot.core.store import Redis
from bot.digest import keys
from bot.digest.ledger import SKEW, ProgressLedger
from bot.platforms.base import CoursePlatform

log = logging.getLogger(__name__)

CHART_DAYS = 14
BASELINE = "_baseline"  # field of DIGEST_DONE: when the first digest took stock of completions
FIRST_WINDOW = timedelta(hours=24)  # what the very first digest looks back over
MAX_WINDOW = timedelta(days=CHART_DAYS)  # a digest after a long pause looks back at most this far
FINAL_AFTER = timedelta(minutes=15)  # a day's count is kept once the day has been over this long
DONE_STATUSES = frozenset({"completed", "complete", "finished"})
# Statuses that mean "not stalled": the member started, finished, or left the course.
MOVED_STATUSES = DONE_STATUSES | {"started", "in_progress", "inprogress", "unenrolled"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant a local day begins (a midnight skipped by a clock change maps to the change)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def is_due(now: datetime, settings: Settings) -> bool:
    """Is it at or after the digest time on today's local wall clock?

    Wall-clock comparison is what makes daylight-saving days right: a 09:00 digest goes at
    09:00 whatever the offset, and a time skipped by the spring change (02:30 on a night
    that jumps from 02:00 to 03:00) is first reached at 03:00.
    """
    wall = now.astimezone(settings.zone).time().replace(tzinfo=None, fold=0)
    return wall >= settings.coursebot_digest_time


@dataclass(frozen=True)
class DayCount:
    day: date
    enrolments: int
    completions: int


@dataclass(frozen=True)
class CourseGroup:
    """Members of one course, in the order they appeared (names as the platform gives them)."""

    course_id: str
    title: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class CourseLessons:
    course_id: str
    title: str
    lessons: int
    members: int


@dataclass(frozen=True)
class Finish:
    course_id: str
    title: str
    member_name: str
    at: datetime | None


@dataclass(frozen=True)
class RuleApproval:
    """A waiting request an auto-approve rule approved (bot.approvals.rules)."""

    member_name: str
    course_title: str
    rule: str  # in words: "domain partner.example", "group @staff"


@dataclass
class Digest:
    day: date
    zone: str
    since: datetime
    as_of: datetime
    platform: str
    stalled_days: int
    pending: list[Enrolment] | None  # None: the platform has no approval step
    new_enrolments: list[CourseGroup] = field(default_factory=list)
    lessons_completed: int | None = None  # None: the platform reports no lessons
    lesson_members: int = 0
    lessons_by_course: list[CourseLessons] = field(default_factory=list)
    finished: list[Finish] = field(default_factory=list)
    stalled: list[CourseGroup] = field(default_factory=list)
    chart: list[DayCount] = field(default_factory=list)
    chart_label: str = "lessons completed"  # what the chart's second series counts
    auto_approved: list[RuleApproval] = field(default_factory=list)  # since the last digest

    @property
    def new_count(self) -> int:
        return sum(len(group.names) for group in self.new_enrolments)

    @property
    def stalled_count(self) -> int:
        return sum(len(group.names) for group in self.stalled)

    @property
    def chart_has_data(self) -> bool:
        return any(d.enrolments or d.completions for d in self.chart)

    @property
    def empty(self) -> bool:
        return not (self.pending or self.new_enrolments or self.lessons_completed or self.finished
                    or self.stalled or self.auto_approved)


@dataclass
class Catalog:
    titles: dict[str, str]
    lessons: dict[str, tuple[str, bool]]  # lesson id -> (course id, active)

    def title(self, course_id: str, fallback: str = "") -> str:
        return self.titles.get(course_id) or fallback or f"course {course_id}"

    def active_lessons(self) -> dict[str, set[str]]:
        by_course: dict[str, set[str]] = defaultdict(set)
        for lesson_id, (course_id, active) in self.lessons.items():
            if active:
                by_course[course_id].add(lesson_id)
        return by_course


Waiting = Callable[[], Awaitable[list[Enrolment] | None]]
RuleApprovals = Callable[[datetime], Awaitable[list[RuleApproval]]]


class DigestService:
    """`waiting`, when given, lists the requests waiting for approval without asking the platform
    (the approval requests the sync keeps in Redis); it returns None when it cannot vouch for them."""

    def __init__(self, platform: CoursePlatform, redis: Redis, settings: Settings, *,
                 waiting: Waiting | None = None, auto_approved: RuleApprovals | None = None) -> None:
        self.platform = platform
        self.redis = redis
        self.settings = settings
        self.waiting = waiting
        self.auto_approved = auto_approved
        self.zone = settings.zone
        self.ledger = ProgressLedger(redis, platform)

    @property
    def uses_lesson_records(self) -> bool:
        return self.platform.supports(Capability.COMPLETIONS) and self.platform.supports(Capability.LESSONS)

    async def warm(self, now: datetime) -> None:
        """Build the progress ledger ahead of the digest hour, if it is missing (cheap check otherwise)."""
        if self.uses_lesson_records:
            await self.ledger.ensure(now)

    async def build(self, now: datetime, *, channel: str | None) -> Digest:
        zone, stalled_days = self.zone, self.settings.coursebot_stalled_days
        today = local_day(now, zone)
        since = await self.window_start(channel, now)
        chart_days = [today - timedelta(days=n) for n in range(CHART_DAYS, 0, -1)]
        counts = await self._cached_counts(chart_days)
        missing = [d for d in chart_days if d not in counts]
        read_from = min([since, *(day_start(d, zone) for d in missing[:1])])
        stalled_window = (since - timedelta(days=stalled_days), now - timedelta(days=stalled_days))

        digest = Digest(day=today, zone=self.settings.coursebot_timezone, since=since, as_of=now,
                        platform=self.platform.display_name, stalled_days=stalled_days, pending=None)
        pending_task = asyncio.create_task(self._pending())
        stalled_task = asyncio.create_task(self.platform.list_enrolments_created(*stalled_window))
        try:
            if self.uses_lesson_records:
                read_from = min(read_from, await self.ledger.ensure(now))
                reads = await self._from_lesson_records(digest, read_from, missing)
            else:
                reads = await self._from_statuses(digest, read_from, missing)
            digest.pending = await pending_task
            candidates = await stalled_task
        finally:
            for task in (pending_task, stalled_task):
                task.cancel()
        counts.update({c.day: c for c in reads.fresh})
        await self._store_counts(reads.fresh, now)
        digest.stalled = self._group(await self._stalled(candidates, reads.progressed), reads.catalog)
        digest.chart = [counts.get(d) or DayCount(d, 0, 0) for d in chart_days]
        if self.auto_approved is not None:
            digest.auto_approved = await self.auto_approved(since)
        return digest

    async def window_start(self, channel: str | None, now: datetime) -> datetime:
        """Since the last digest posted to this channel (at most `MAX_WINDOW` back), else the last 24 h."""
        raw = await self.redis.get(keys.DIGEST_LAST(channel)) if channel else None
        if raw:
            try:
                as_of = datetime.fromisoformat(json.loads(raw)["as_of"])
            except (ValueError, KeyError, TypeError):
                log.warning("digest: unreadable last-digest record for %s; looking back 24 h", channel)
            else:
                if now - MAX_WINDOW <= as_of < now:
                    return as_of
                if as_of < now - MAX_WINDOW:
                    return now - MAX_WINDOW
        return now - FIRST_WINDOW

    # ---- platforms with completed-lesson records (Nexudus, sandbox) ----------------------------

    async def _from_lesson_records(self, digest: Digest, read_from: datetime, missing: list[date]) -> _Reads:
        read_at = datetime.now(UTC)
        enrolment_list, completion_list, catalog = await asyncio.gather(
            self.platform.list_enrolments(created_since=read_from),
            self.platform.list_completed_lessons(since=read_from),
            self.catalog(),
        )
        # Pages may overlap when records are added while they are read: one record per id.
        enrolments = list({e.id: e for e in enrolment_list}.values())
        completions = list({c.id: c for c in completion_list}.values())
        if any(c.lesson_id not in catalog.lessons for c in completions):
            catalog = await self.catalog(refresh=True)
        fresh = self._count_days(missing, [e.created_on for e in enrolments], [c.created_on for c in completions])
        since = digest.since
        joined = [e for e in enrolments if _on_or_after(e.created_on, since) and e.state is AccessState.APPROVED]
        digest.new_enrolments = self._group(sorted(joined, key=_created), catalog)
        recent = [c for c in completions if _on_or_after(c.created_on, since)]
        await self.ledger.fold(completions)
        await self.ledger.advance(read_at - SKEW)
        digest.lessons_completed = len(recent)
        digest.lesson_members = len({c.enrolment_id for c in recent})
        digest.lessons_by_course = self._lessons_by_course(recent, catalog)
        digest.finished = await self._finished(recent, catalog, since)
        return _Reads(fresh, {c.enrolment_id for c in completions}, catalog)

    def _lessons_by_course(self, recent: list[CompletedLesson], catalog: Catalog) -> list[CourseLessons]:
        lessons: Counter[str] = Counter()
        members: dict[str, set[str]] = defaultdict(set)
        for done in recent:
            course_id = catalog.lessons.get(done.lesson_id, ("", False))[0]
            lessons[course_id] += 1
            members[course_id].add(done.enrolment_id)
        rows = [CourseLessons(course_id, catalog.title(course_id, "" if course_id else "a course no longer listed"),
                              count, len(members[course_id]))
                for course_id, count in lessons.items()]
        return sorted(rows, key=lambda r: (-r.lessons, r.title.lower()))

    async def _finished(self, recent: list[CompletedLesson], catalog: Catalog, since: datetime) -> list[Finish]:
        """Enrolments whose course's every active lesson is now done, the last of them since `since`."""
        by_enrolment: dict[str, CompletedLesson] = {}
        for done in recent:
            by_enrolment[done.enrolment_id] = done
        progress = await self.ledger.progress(by_enrolment)
        active = catalog.active_lessons()
        floor = int(since.timestamp())
        finished: list[Finish] = []
        for enrolment_id, done in by_enrolment.items():
            course_id = catalog.lessons.get(done.lesson_id, ("", False))[0]
            needed = active.get(course_id)
            have = progress.get(enrolment_id, {})
            if not needed or not needed <= have.keys():
                continue
            last = max(have[lesson] for lesson in needed)
            if last >= floor:
                finished.append(Finish(course_id, catalog.title(course_id), done.member_name,
                                       datetime.fromtimestamp(last, UTC) if last else None))
        return sorted(finished, key=lambda f: (f.at or since, f.title.lower()))

    # ---- platforms with participant statuses (MeltingSpot) ------------------------------------

    async def _from_statuses(self, digest: Digest, read_from: datetime, missing: list[date]) -> _Reads:
        changed = await self.platform.list_enrolments(updated_since=read_from)
        catalog = await self.catalog()
        done = [e for e in changed if _status(e) in DONE_STATUSES]
        completed_at, announce = await self._completion_times(done)
        fresh = self._count_days(missing, [e.created_on for e in changed], list(completed_at.values()))
        since = digest.since
        digest.chart_label = "courses completed"
        joined = [e for e in changed if _on_or_after(e.created_on, since) and _status(e) != "unenrolled"]
        digest.new_enrolments = self._group(sorted(joined, key=_created), catalog)
        digest.finished = sorted(
            (Finish(e.course_id, catalog.title(e.course_id, e.course_title), e.member_name or e.member_id,
                    completed_at[e.id])
             for e in done if e.id in announce and _on_or_after(completed_at[e.id], since)),
            key=lambda f: (f.at or since, f.title.lower()))
        return _Reads(fresh, {e.id for e in changed if _made_progress(e)}, catalog)

    async def _completion_times(self, done: list[Enrolment]) -> tuple[dict[str, datetime], set[str]]:
        """When each participant completed, and which of those completions a digest may announce.

        The participant list has a status but no completion date the adapter exposes, and its
        latest change moves on with later activity. So a completion is dated when a digest first
        sees it (by the participant's last change) and remembered, and a member who finished
        last month and came back today is not announced again. The first digest takes stock of
        every participant once (on MeltingSpot that read costs what any read costs): what was
        completed then is history, never announced.
        """
        key = keys.DIGEST_DONE()
        if not await self.redis.hexists(key, BASELINE):
            history = [e for e in await self.platform.list_enrolments() if _status(e) in DONE_STATUSES]
            async with self.redis.pipeline(transaction=False) as pipe:
                for e in history:
                    pipe.hsetnx(key, e.id, f"{_epoch(e.updated_on or e.created_on)}b")
                pipe.hsetnx(key, BASELINE, str(_epoch(datetime.now(UTC))))
                await pipe.execute()
        if not done:
            return {}, set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in done:
                pipe.hsetnx(key, e.id, str(_epoch(min(e.updated_on or datetime.now(UTC), datetime.now(UTC)))))
            pipe.hmget(key, [e.id for e in done])
            results = await pipe.execute()
        times: dict[str, datetime] = {}
        announce: set[str] = set()
        for e, raw in zip(done, results[-1], strict=True):
            text = str(raw or "0")
            times[e.id] = datetime.fromtimestamp(int(text.rstrip("b")), UTC)
            if not text.endswith("b"):
                announce.add(e.id)
        return times, announce

    # ---- shared --------------------------------------------------------------------------------

    async def _stalled(self, candidates: list[Enrolment], progressed: set[str]) -> list[Enrolment]:
        """Of the enrolments that reached the stalled age, those with no sign of progress at all."""
        if self.uses_lesson_records:
            known = await self.ledger.progress(e.id for e in candidates)
            progressed = progressed | known.keys()
        stalled = []
        for e in sorted(candidates, key=_created):
            if e.blocked or e.id in progressed or _made_progress(e):
                continue
            if self.uses_lesson_records and e.state is not AccessState.APPROVED:
                continue  # still waiting for approval: not theirs to start yet
            if e.last_access is None or (e.created_on is not None and e.last_access <= e.created_on):
                stalled.append(e)
        return stalled

    def _group(self, enrolments: Iterable[Enrolment], catalog: Catalog) -> list[CourseGroup]:
        names: dict[str, list[str]] = defaultdict(list)
        titles: dict[str, str] = {}
        for e in enrolments:
            names[e.course_id].append(e.member_name or f"member {e.member_id}")
            titles[e.course_id] = catalog.title(e.course_id, e.course_title)
        groups = [CourseGroup(course_id, titles[course_id], tuple(people)) for course_id, people in names.items()]
        return sorted(groups, key=lambda g: (-len(g.names), g.title.lower()))

    async def _pending(self) -> list[Enrolment] | None:
        if not self.platform.supports(Capability.APPROVAL):
            return None
        waiting = await self.waiting() if self.waiting else None
        if waiting is None:
            waiting = await self.platform.list_enrolments(pending_only=True)
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(waiting, key=lambda e: (e.created_on or far, _numeric(e.id)))

    def _count_days(self, days: list[date], enrolled: list[datetime | None],
                    completed: list[datetime | None]) -> list[DayCount]:
        wanted = set(days)
        per_day: dict[date, list[int]] = {d: [0, 0] for d in days}
        for column, moments in enumerate((enrolled, completed)):
            for moment in moments:
                if moment is not None and (d := local_day(moment, self.zone)) in wanted:
                    per_day[d][column] += 1
        return [DayCount(d, *per_day[d]) for d in days]

    async def _cached_counts(self, days: list[date]) -> dict[date, DayCount]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in days:
                pipe.hgetall(keys.DIGEST_COUNTS(d.isoformat()))
            rows = await pipe.execute()
        found: dict[date, DayCount] = {}
        for d, row in zip(days, rows, strict=True):
            if row and row.get("final") == "1":
                found[d] = DayCount(d, int(row.get("enrolments", 0)), int(row.get("completions", 0)))
        return found

    async def _store_counts(self, fresh: list[DayCount], now: datetime) -> None:
        """Keep the counts of days that are over; a day still running is counted again next time."""
        final = [c for c in fresh if now >= day_start(c.day + timedelta(days=1), self.zone) + FINAL_AFTER]
        if not final:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in final:
                key = keys.DIGEST_COUNTS(c.day.isoformat())
                pipe.hset(key, mapping={"enrolments": c.enrolments, "completions": c.completions, "final": 1})
                pipe.expire(key, keys.DIGEST_COUNTS.ttl or 0)
            await pipe.execute()

    async def catalog(self, *, refresh: bool = False) -> Catalog:
        """Course titles and which course each lesson belongs to (cached: both change rarely)."""
        if not refresh:
            raw = await self.redis.get(keys.DIGEST_CATALOG())
            if raw:
                data = json.loads(raw)
                return Catalog(data["titles"], {k: (v[0], bool(v[1])) for k, v in data["lessons"].items()})
        courses = await self.platform.list_courses()
        lessons = await self.platform.list_all_lessons() if self.uses_lesson_records else []
        catalog = Catalog({c.id: c.title for c in courses},
                          {le.id: (le.course_id, le.active) for le in lessons})
        payload = {"titles": catalog.titles, "lessons": {k: [v[0], int(v[1])] for k, v in catalog.lessons.items()}}
        await self.redis.set(keys.DIGEST_CATALOG(), json.dumps(payload), ex=keys.DIGEST_CATALOG.ttl)
        return catalog


@dataclass(frozen=True)
class _Reads:
    fresh: list[DayCount]  # counts of the chart days that were missing
    progressed: set[str]  # enrolment ids with progress seen in the reads
    catalog: Catalog


def _made_progress(enrolment: Enrolment) -> bool:
    return bool(enrolment.last_completed_lesson) or (enrolment.completion_rate or 0) > 0 \
        or _status(enrolment) in MOVED_STATUSES


def _on_or_after(moment: datetime | None, floor: datetime) -> bool:
    return moment is not None and moment >= floor


def _created(enrolment: Enrolment) -> tuple[datetime, int]:
    return (enrolment.created_on or datetime.min.replace(tzinfo=UTC), _numeric(enrolment.id))


def _epoch(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _numeric(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _status(enrolment: Enrolment) -> str:
    return (enrolment.status or "").strip().lower().replace(" ", "_")
