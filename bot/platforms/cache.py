"""Slow-changing platform reads, cached in Redis and shared while in flight.

`CachedPlatform(inner, redis)` is a `CoursePlatform` that wraps any adapter (`bot.runtime` wraps
the one it builds). It answers from Redis what changes slowly, makes identical reads that are in
flight at the same moment once, and hands everything else to the adapter untouched.

Cached (lifetimes and purposes in `bot.platforms.keys`):
- the course list and single courses, 5 minutes. The bot's own `create_course` drops them. A
  course a manager names that the cached list does not hold makes the resolver read the list
  again (`drop_cached_courses`), so a course just made in the admin panel is found at once.
- a course's lessons (with or without their types) and sections, 5 minutes: the bot writes none.
- locations and price plans, 15 minutes: the bot writes none; only the /course new form reads them.
- members found by email or by id, 5 minutes, matches only. A miss is never kept, so a member
  added on the platform after a "no member has that email" is found on the next try. Ids are
  never reused, so at worst, within 5 minutes of a change made in the admin panel, the bot acts on
  the member that had the email a moment ago, which is a real member and the one the manager
  meant when the look-up was made. The enrolment itself is always read fresh.

Never cached: whatever a decision reads before a write (`find_enrolment`, `get_enrolment`,
`list_enrolments`, completions), and enrolment counts (members change them in the portal, and a
manager asks for a status to see it now). Counts are still shared while in flight.

Invalidation uses generations (`keys.GENERATION`): a value is stored under the generation that was
current when its read began, and a write increments the generation, so a read that was already
under way when the write happened can store its (old) answer only where nobody looks any more.
The same generation names shared reads: a read that starts after the bot's own enrolment write
never joins one that began before it.

Shared reads are per process: a dict of in-flight tasks keyed by what they read. The task runs
to its end even if the caller that started it goes away (`asyncio.shield`), for the others.

Redis trouble never stops an answer: the wrapper then reads from the platform, as without it.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from bot.core.keys import Key
from bot.core.models import (
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
)
from bot.core.store import Redis
from bot.platforms import keys
from bot.platforms.base import CoursePlatform, PlatformError

log = logging.getLogger(__name__)

T = TypeVar("T")

COURSES = "courses"  # generation of the course list and single courses
ENROLMENTS = "enrolments"  # generation of shared enrolment reads (counts)

REREAD_AFTER = 15
"""Seconds: a cached course list younger than this is not read again for a title it lacks."""

GENERATION_SECONDS = 1.0
"""How long a process trusts a generation it read: a write in this process takes effect here at
once, one in another process (a worker, another `serve`) within this second. It spares each answer
a Redis round trip per group, which would otherwise run while other requests wait for their acks."""

MEMO_SECONDS = 5.0
MEMO_SIZE = 256
"""A value read from Redis is kept in the process this long (at most this many values), so that a
burst of identical commands does not fetch and parse the same list again for each. What the bot's
own writes drop is named with its generation, which is still checked (`GENERATION_SECONDS`), so
those writes drop it here as before; a value may outlive its Redis lifetime by these few seconds."""

_COURSE = TypeAdapter(Course)
_COURSES = TypeAdapter(list[Course])
_LESSONS = TypeAdapter(list[Lesson])
_SECTIONS = TypeAdapter(list[Section])
_LOCATIONS = TypeAdapter(list[Location])
_PLANS = TypeAdapter(list[PricePlan])
_MEMBER = TypeAdapter(Member)


@dataclass
class CacheStats:
    """What the cache did in this process (for logs, benchmarks and tests)."""

    hits: int = 0  # answers from Redis
    reads: int = 0  # reads handed to the platform
    shared: int = 0  # reads that joined an identical one already in flight


def _flight_name(*parts: object) -> str:
    text = ":".join(str(p) for p in parts)
    return text if len(text) <= 200 else hashlib.sha1(text.encode()).hexdigest()


def _copy(value: T) -> T:
    """Each caller of a shared read gets its own list or dict (the models inside are frozen)."""
    if isinstance(value, list):
        return cast(T, list(value))
    if isinstance(value, dict):
        return cast(T, dict(value))
    return value


class CachedPlatform(CoursePlatform):
    """A `CoursePlatform` that caches and shares slow-changing reads of `inner` (see the module doc).

    Every method of the interface that is not defined here is handed to `inner` as it is, every
    attribute of the interface reads and writes `inner`'s own (the loop after the class), and so does
    any other attribute (`writes`, `budget`, `lanes`...), so a change to the interface or to an
    adapter needs nothing here unless it changes what may be cached."""

    def __init__(self, inner: CoursePlatform, redis: Redis) -> None:
        self.inner = inner
        self.redis = redis
        self.stats = CacheStats()
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._memo: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # key -> (until, value)
        self._generation: dict[str, tuple[float, str]] = {}  # group -> (until, generation)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (during construction or unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CachedPlatform({self.inner!r})"

    # ---- plumbing ---------------------------------------------------------------------------

    async def _generations(self, *groups: str) -> list[str] | None:
        """The current generation of each group (None: Redis did not answer; do without the cache)."""
        now = time.monotonic()
        known = [self._generation.get(g) for g in groups]
        if all(k is not None and k[0] > now for k in known):
            return [k[1] for k in known if k is not None]
        try:
            values = await self.redis.mget([keys.GENERATION(self.name, g) for g in groups])
        except RedisError as exc:
            log.warning("platform cache: Redis did not answer (%s); reading from the platform", type(exc).__name__)
            return None
        found: list[str] = []
        for group, value in zip(groups, values, strict=True):
            current = self._generation.get(group)
            if current is not None and current[0] > time.monotonic() and int(current[1]) > int(value or 0):
                found.append(current[1])  # this process wrote meanwhile: its newer generation stands
                continue
            found.append(str(value or 0))
            self._generation[group] = (now + GENERATION_SECONDS, found[-1])
        return found

    async def _bump(self, *groups: str) -> None:
        """After a write: values cached and reads begun before it are no longer used."""
        for group in groups:
            self._generation.pop(group, None)  # whatever happens below, read it again next time
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.incr(keys.GENERATION(self.name, group))
                    pipe.expire(keys.GENERATION(self.name, group), keys.GENERATION.ttl or 0)
                results = await pipe.execute()
        except RedisError as exc:
            log.warning("platform cache: could not drop cached %s (%s); they expire on their own",
                        "/".join(groups), type(exc).__name__)
            return
        now = time.monotonic()
        for group, value in zip(groups, results[::2], strict=True):
            self._generation[group] = (now + GENERATION_SECONDS, str(value))

    async def _get(self, key: str, codec: TypeAdapter[T]) -> T | None:
        now = time.monotonic()
        memo = self._memo.get(key)
        if memo is not None and memo[0] > now:
            self.stats.hits += 1
            return _copy(cast(T, memo[1]))
        try:
            raw = await self.redis.get(key)
        except RedisError:
            return None
        if raw is None:
            return None
        try:
            value = codec.validate_json(raw)
        except ValidationError:
            return None  # written by another version of the bot: read it again
        self.stats.hits += 1
        self._memo[key] = (now + MEMO_SECONDS, value)
        self._memo.move_to_end(key)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return _copy(value)

    async def _get_many(self, names: list[str], codec: TypeAdapter[T]) -> list[T | None]:
        if not names:
            return []
        try:
            raws = await self.redis.mget(names)
        except RedisError:
            return [None] * len(names)
        found: list[T | None] = []
        for raw in raws:
            value: T | None = None
            if raw is not None:
                try:
                    value = codec.validate_json(raw)
                    self.stats.hits += 1
                except ValidationError:
                    value = None
            found.append(value)
        return found

    async def _put(self, items: Iterable[tuple[str, bytes]], ttl: int) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, raw in items:
                    pipe.set(name, raw, ex=ttl)
                await pipe.execute()
        except RedisError as exc:
            log.warning("platform cache: could not store a read (%s)", type(exc).__name__)

    async def _shared(self, flight: str, load: Callable[[], Awaitable[T]]) -> T:
        """`load()`, unless the same read is already in flight in this process: then its answer."""
        task = self._flights.get(flight)
        if task is None:
            task = asyncio.ensure_future(load())
            self._flights[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done))
            self.stats.reads += 1
        else:
            self.stats.shared += 1
        return _copy(cast(T, await asyncio.shield(task)))

    def _landed(self, flight: str, task: asyncio.Future[Any]) -> None:
        if self._flights.get(flight) is task:
            del self._flights[flight]
        if not task.cancelled():
            task.exception()  # seen, even if every caller went away

    async def _cached(
        self, key: Key, parts: tuple[object, ...], codec: TypeAdapter[T], load: Callable[[], Awaitable[T]],
        *, keep: Callable[[T], bool] = lambda _value: True,
    ) -> T:
        """From Redis, else from one shared read of the platform, stored for `key.ttl` if `keep`."""
        cached = await self._get(key(*parts), codec)
        if cached is not None:
            return cached
        return await self._load(key, parts, codec, load, keep=keep)

    async def _load(
        self, key: Key, parts: tuple[object, ...], codec: TypeAdapter[T], load: Callable[[], Awaitable[T]],
        *, keep: Callable[[T], bool] = lambda _value: True,
    ) -> T:
        """One shared read of the platform, stored for `key.ttl` if `keep`."""
        name = key(*parts)

        async def fetch() -> T:
            value = await load()
            if keep(value):
                await self._put([(name, codec.dump_json(value))], key.ttl or 60)
            return value

        return await self._shared(name, fetch)

    # ---- courses ----------------------------------------------------------------------------

    async def list_courses(self) -> list[Course]:
        generation = await self._generations(COURSES)
        if generation is None:
            return await self.inner.list_courses()
        return await self._cached(keys.COURSES, (self.name, *generation), _COURSES, self.inner.list_courses)

    async def get_course(self, course_id: str) -> Course | None:
        if not self.inner.single_course_read:
            return next((c for c in await self.list_courses() if c.id == course_id), None)
        generation = await self._generations(COURSES)
        if generation is None:
            return await self.inner.get_course(course_id)
        cached = await self._get(keys.COURSE(self.name, *generation, course_id), _COURSE)
        if cached is not None:
            return cached
        listed = await self._get(keys.COURSES(self.name, *generation), _COURSES)
        found = next((c for c in listed or [] if c.id == course_id), None)
        if found is not None:
            return found

        async def load() -> Course | None:  # one course, or None; only a course is kept
            return await self.inner.get_course(course_id)

        return await self._load(keys.COURSE, (self.name, *generation, course_id),
                                cast(TypeAdapter[Course | None], _COURSE), load, keep=lambda c: c is not None)

    async def drop_cached_courses(self) -> bool:
        generation = await self._generations(COURSES)
        if generation is None:
            return False
        try:
            left = await self.redis.pttl(keys.COURSES(self.name, *generation))
        except RedisError:
            return False
        if left < 0 or (keys.COURSES.ttl or 0) * 1000 - left < REREAD_AFTER * 1000:
            return False  # nothing cached, or read a moment ago: reading again would show the same
        await self._bump(COURSES)
        return True

    async def create_course(self, draft: CourseDraft, *, request_key: str,
                            attempt: CreationAttempt | None = None) -> Course:
        try:
            return await self.inner.create_course(draft, request_key=request_key, attempt=attempt)
        finally:  # also after a failure: the course may have been made all the same
            await self._bump(COURSES)

    async def count_enrolments(self, course_id: str) -> EnrolmentCounts:
        generation = await self._generations(ENROLMENTS)
        if generation is None:
            return await self.inner.count_enrolments(course_id)
        return await self._shared(_flight_name("count", *generation, course_id),
                                  lambda: self.inner.count_enrolments(course_id))

    async def count_enrolments_by_course(self, course_ids: Iterable[str]) -> dict[str, EnrolmentCounts]:
        ids = list(dict.fromkeys(course_ids))
        generation = await self._generations(ENROLMENTS)
        if generation is None:
            return await self.inner.count_enrolments_by_course(ids)
        return await self._shared(_flight_name("counts", *generation, *ids),
                                  lambda: self.inner.count_enrolments_by_course(ids))

    # ---- lessons, sections, form choices ------------------------------------------------------

    async def list_lessons(self, course_id: str) -> list[Lesson]:
        return await self._cached(keys.LESSONS, (self.name, course_id), _LESSONS,
                                  lambda: self.inner.list_lessons(course_id))

    async def lessons_with_types(self, course_id: str) -> list[Lesson]:
        return await self._cached(keys.LESSON_TYPES, (self.name, course_id), _LESSONS,
                                  lambda: self.inner.lessons_with_types(course_id))

    async def list_sections(self, course_id: str) -> list[Section]:
        return await self._cached(keys.SECTIONS, (self.name, course_id), _SECTIONS,
                                  lambda: self.inner.list_sections(course_id))

    async def list_locations(self) -> list[Location]:
        return await self._cached(keys.LOCATIONS, (self.name,), _LOCATIONS, self.inner.list_locations)

    async def list_price_plans(self) -> list[PricePlan]:
        return await self._cached(keys.PRICE_PLANS, (self.name,), _PLANS, self.inner.list_price_plans)

    # ---- members ----------------------------------------------------------------------------

    async def find_members_by_email(self, emails: Iterable[str], *, create_missing: bool = True) -> dict[str, Member]:
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        names = [keys.MEMBER_BY_EMAIL(self.name, e) for e in wanted]
        cached = await self._get_many(names, _MEMBER)
        found = {e: m for e, m in zip(wanted, cached, strict=True) if m is not None}
        missing = [e for e in wanted if e not in found]
        if missing:
            async def load() -> dict[str, Member]:
                fresh = await self.inner.find_members_by_email(missing, create_missing=create_missing)
                await self._put(((keys.MEMBER_BY_EMAIL(self.name, e), _MEMBER.dump_json(m)) for e, m in fresh.items()),
                                keys.MEMBER_BY_EMAIL.ttl or 60)
                return fresh

            found.update(await self._shared(_flight_name("emails", create_missing, *sorted(missing)), load))
        return {e: found[e] for e in wanted if e in found}

    async def get_member(self, member_id: str) -> Member | None:
        cached = await self._get(keys.MEMBER(self.name, member_id), _MEMBER)
        if cached is not None:
            return cached

        async def load() -> Member | None:
            return await self.inner.get_member(member_id)

        return await self._load(keys.MEMBER, (self.name, member_id), cast(TypeAdapter[Member | None], _MEMBER),
                                load, keep=lambda m: m is not None)

    async def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        wanted = list(dict.fromkeys(member_ids))
        names = [keys.MEMBER(self.name, i) for i in wanted]
        cached = await self._get_many(names, _MEMBER)
        found = {i: m for i, m in zip(wanted, cached, strict=True) if m is not None}
        missing = [i for i in wanted if i not in found]
        if missing:
            async def load() -> dict[str, Member]:
                fresh = await self.inner.get_members(missing)
                await self._put(((keys.MEMBER(self.name, i), _MEMBER.dump_json(m)) for i, m in fresh.items()),
                                keys.MEMBER.ttl or 60)
                return fresh

            found.update(await self._shared(_flight_name("members", *sorted(missing)), load))
        return {i: found[i] for i in wanted if i in found}

    # ---- enrolments: always read fresh; writes end shared reads begun before them --------------

    async def find_enrolment(self, course_id: str, member_id: str) -> Enrolment | None:
        return await self.inner.find_enrolment(course_id, member_id)

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        return await self.inner.get_enrolment(enrolment_id)

    async def list_enrolments(
        self,
        *,
        course_id: str | None = None,
        pending_only: bool = False,
        updated_since: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[Enrolment]:
        return await self.inner.list_enrolments(course_id=course_id, pending_only=pending_only,
                                                updated_since=updated_since, created_since=created_since)

    # The write methods take whatever the adapter takes, so a change of their parameters in the
    # interface needs no change here.
    async def create_enrolment(self, *args: Any, **kwargs: Any) -> Enrolment:
        try:
            return await self.inner.create_enrolment(*args, **kwargs)
        finally:
            await self._bump(ENROLMENTS)

    async def enrol_absent(self, *args: Any, **kwargs: Any) -> Enrolment:
        try:
            return await self.inner.enrol_absent(*args, **kwargs)
        finally:
            await self._bump(ENROLMENTS)

    async def set_access(self, *args: Any, **kwargs: Any) -> Enrolment:
        try:
            return await self.inner.set_access(*args, **kwargs)
        finally:
            await self._bump(ENROLMENTS)

    async def invite_members(self, *args: Any, **kwargs: Any) -> dict[str, Enrolment | PlatformError]:
        try:
            return await self.inner.invite_members(*args, **kwargs)
        finally:
            await self._bump(ENROLMENTS)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _delegate(name: str, member: Any) -> Any:
    """A method of CachedPlatform that calls the same method of `inner`."""
    if inspect.isasyncgenfunction(member):
        async def pages(self: CachedPlatform, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for item in getattr(self.inner, name)(*args, **kwargs):
                yield item

        method: Any = pages
    elif inspect.iscoroutinefunction(member):
        async def call(self: CachedPlatform, *args: Any, **kwargs: Any) -> Any:
            return await getattr(self.inner, name)(*args, **kwargs)

        method = call
    else:
        def plain(self: CachedPlatform, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.inner, name)(*args, **kwargs)

        method = plain
    method.__name__ = name
    method.__qualname__ = f"CachedPlatform.{name}"
    method.__doc__ = member.__doc__
    return method


def _attribute(name: str) -> property:
    """What the adapter says about itself (`name`, `capabilities`, `invitation_email`...): its own value,
    not the interface's default."""

    def get(self: CachedPlatform) -> Any:
        return getattr(self.inner, name)

    def put(self: CachedPlatform, value: Any) -> None:
        setattr(self.inner, name, value)

    return property(get, put, doc=f"`inner.{name}`")


for _name, _member in list(vars(CoursePlatform).items()):
    if _name.startswith("_") or _name in vars(CachedPlatform):
        continue
    if inspect.isfunction(_member):
        setattr(CachedPlatform, _name, _delegate(_name, _member))
    elif not isinstance(_member, (classmethod, staticmethod, property)):
        setattr(CachedPlatform, _name, _attribute(_name))
abc.update_abstractmethods(CachedPlatform)
