"""A local fake of the Nexudus Spaces REST API (courses area, coworkers, tariffs, businesses).

It follows `/work/shared/reference/nexudus-api.md`: OAuth-style `/api/token`, bearer/basic auth, the
`{Entity}_{Field}` / `from_` / `to_` list filters with the paging envelope, bare-object GET, `?id=[..]`
batch GET, the mutation envelope, full-object PUT (omitted writable fields are cleared), 409 throttling
with `Retry-After`, and failure injection, including writes that are applied but whose answer is lost
(`apply_then_fail_next`). Every answer carries a `Date` header from the fake's own `clock`, so a skewed
clock is skewed consistently (uvicorn adds its own Date before it; a client should read the last one).
`ignore_system_id=True` drops `SystemId` from writes, as Nexudus may (the course reference omits it).
`hold()` keeps chosen requests waiting until released, and `in_flight`/`max_in_flight` count
requests being answered, so a test can see what happens while the platform is slow without timing anything.

Serve it with `devtools.servers.ServerThread`::

    fake = NexudusFake(writes_per_minute=60)
    course = fake.add_course("Python 101")
    with ServerThread(fake.app) as base_url:
        ...

The app runs on uvicorn's event loop in a background thread. Every state change and every request is
processed under `fake.lock` (a re-entrant `threading.Lock`), so the seeding helpers are safe to call from
the test thread while the server runs. Read the public tables (`fake.coursemembers`, ...) under
`with fake.lock:` if requests may be in flight. Mutate records through the helpers or the HTTP API: editing
an indexed foreign key (CourseId, CoworkerId, CourseMemberId, ...) in a stored dict by hand would leave the
indexes stale; other fields may be edited in place.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime as http_date
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Record = dict[str, Any]
Getter = Callable[[Record], Any]
Predicate = Callable[[Record], bool]

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"
DATE_FIELDS = frozenset({"createdon", "updatedon", "lastaccess"})
RESERVED_PARAMS = frozenset({"page", "size", "orderby", "dir"})

# Field kinds. The clear value is what a field becomes when a POST/PUT body omits it
# (the server binds the body to a DTO, so an omitted field takes the type's default).
FK, INT, STR, BOOL, FLOAT, INTLIST = "fk", "int", "str", "bool", "float", "intlist"

VISIBILITY = (1, 2, 3, 4)  # Public, Hidden, Private, Paid
UNLOCK_TYPES = (1, 2, 3)  # Immediate, Sequential, Timed
COMPLETION_TYPES = (1, 2, 3, 4)  # None, Visited, Button, Video
COWORKER_TYPES = {1: "Individual", 2: "Company"}
VISIBILITY_PAID = 4


def clear_value(kind: str) -> Any:
    if kind == BOOL:
        return False
    if kind == INT:
        return 0
    if kind == FLOAT:
        return 0.0
    if kind == INTLIST:
        return []
    return None


def format_datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(DATE_FORMAT)


def parse_minute(raw: str) -> str:
    """Parse a range-filter value (`YYYY-MM-DDTHH:mm[:ss][Z|±hh:mm]`) to a UTC minute string."""
    value = datetime.fromisoformat(raw.strip())
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(MINUTE_FORMAT)


@dataclass(frozen=True)
class EntitySpec:
    name: str  # singular PascalCase, the filter prefix: CourseMember
    table: str  # URL segment and table attribute: coursemembers
    area: str  # content / spaces / billing / sys
    fields: dict[str, str]  # writable fields -> kind (SystemId is added to every entity)
    required: tuple[str, ...] = ()
    enums: dict[str, tuple[int, ...]] = field(default_factory=dict)
    relations: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (field, target table)
    checked: tuple[str, ...] = ()  # FK fields that must point at an existing record when set
    indexed: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()  # stored, returned, but not writable through the API
    hidden: tuple[str, ...] = ()  # stored for derivations, never returned
    list_omit: tuple[str, ...] = ()  # left out of list (search) records
    api_writable: bool = True
    deletable: bool = True
    default_order: str = "Id"

    @property
    def writable(self) -> dict[str, str]:
        return {**self.fields, "SystemId": STR}


SPECS: tuple[EntitySpec, ...] = (
    EntitySpec(
        name="Business", table="businesses", area="sys",
        fields={"Name": STR, "Address": STR, "TownCity": STR, "CurrencyCode": STR, "Active": BOOL},
        required=("Name",), api_writable=False, deletable=False,
    ),
    EntitySpec(
        name="Tariff", table="tariffs", area="billing",
        fields={"BusinessId": FK, "Name": STR, "Price": FLOAT, "CurrencyCode": STR, "Visible": BOOL,
                "GroupName": STR, "DisplayOrder": INT},
        required=("BusinessId", "Name"), relations={"Business": ("BusinessId", "businesses")},
        indexed=("BusinessId",), api_writable=False, deletable=False,
    ),
    EntitySpec(
        name="Coworker", table="coworkers", area="spaces",
        fields={"FullName": STR, "Email": STR, "CoworkerType": INT, "CompanyName": STR, "BillingName": STR,
                "BillingEmail": STR, "Active": BOOL, "Archived": BOOL, "Businesses": INTLIST,
                "Teams": INTLIST, "IsDefaultProfile": BOOL, "UserId": FK},
        required=("FullName", "Email"), readonly=("TeamNames",), hidden=("TeamNames",),
        list_omit=("Teams", "Businesses"), deletable=False, default_order="FullName",
    ),
    EntitySpec(
        name="Course", table="courses", area="content",
        fields={"BusinessId": FK, "HostId": FK, "Title": STR, "DisplayOrder": INT, "Visibility": INT,
                "SummaryText": STR, "FullDescription": STR, "ShowOverview": BOOL, "HasCommunityGroup": BOOL,
                "OverviewText": STR, "NewImageUrl": STR, "ClearImageFile": BOOL, "NewLargeImageUrl": STR,
                "ClearLargeImageFile": BOOL, "Active": BOOL, "GroupName": STR, "ShowInHomePage": BOOL,
                "TariffId": FK},
        required=("BusinessId", "HostId", "Title", "DisplayOrder", "Visibility"),
        enums={"Visibility": VISIBILITY},
        relations={"Business": ("BusinessId", "businesses"), "Host": ("HostId", "coworkers"),
                   "Tariff": ("TariffId", "tariffs")},
        checked=("BusinessId", "TariffId"), indexed=("BusinessId",),
        readonly=("ImageFileName", "LargeImageFileName"),
    ),
    EntitySpec(
        name="CourseSection", table="coursesections", area="content",
        fields={"CourseId": FK, "Title": STR, "SectionContents": STR, "Active": BOOL, "DisplayOrder": INT,
                "UnlockType": INT, "NewImageUrl": STR, "ClearImageFile": BOOL, "UnlockAfterDays": INT},
        required=("CourseId", "Title", "DisplayOrder", "UnlockAfterDays", "UnlockType"),
        enums={"UnlockType": UNLOCK_TYPES}, relations={"Course": ("CourseId", "courses")},
        checked=("CourseId",), indexed=("CourseId",), readonly=("ImageFileName",),
    ),
    EntitySpec(
        name="CourseLesson", table="courselessons", area="content",
        fields={"CourseId": FK, "SectionId": FK, "InstructorId": FK, "Title": STR, "SummaryText": STR,
                "LessonContents": STR, "Active": BOOL, "DisplayOrder": INT, "UnlockType": INT,
                "NewImageUrl": STR, "ClearImageFile": BOOL, "UnlockAfterDays": INT, "CompletionType": INT},
        required=("CourseId", "Title", "DisplayOrder", "UnlockAfterDays", "UnlockType", "CompletionType"),
        enums={"UnlockType": UNLOCK_TYPES, "CompletionType": COMPLETION_TYPES},
        relations={"Course": ("CourseId", "courses"), "Section": ("SectionId", "coursesections"),
                   "Instructor": ("InstructorId", "coworkers")},
        checked=("CourseId", "SectionId", "InstructorId"), indexed=("CourseId", "SectionId"),
        readonly=("ImageFileName",), list_omit=("LessonContents", "UnlockType", "CompletionType"),
    ),
    EntitySpec(
        name="CourseMember", table="coursemembers", area="content",
        fields={"CourseId": FK, "CoworkerId": FK, "Approved": BOOL, "Blocked": BOOL},
        required=("CourseId", "CoworkerId"),
        relations={"Course": ("CourseId", "courses"), "Coworker": ("CoworkerId", "coworkers"),
                   "LastCompletedLesson": ("LastCompletedLessonId", "courselessons")},
        checked=("CourseId", "CoworkerId"), indexed=("CourseId", "CoworkerId"),
    ),
    EntitySpec(
        name="CourseCompletedLesson", table="coursecompletedlessons", area="content",
        fields={"CourseLessonId": FK, "CourseMemberId": FK},
        required=("CourseLessonId", "CourseMemberId"),
        relations={"CourseLesson": ("CourseLessonId", "courselessons"),
                   "CourseMember": ("CourseMemberId", "coursemembers")},
        checked=("CourseLessonId", "CourseMemberId"), indexed=("CourseMemberId", "CourseLessonId"),
    ),
)
SPEC_BY_TABLE: dict[str, EntitySpec] = {spec.table: spec for spec in SPECS}


@dataclass
class _Injection:
    kind: str  # "fail", "throttle" (409), "429", "apply" (applied, then the answer is replaced)
    remaining: int
    status: int = 500
    retry_after: int = 1
    method: str | None = None
    path_contains: str | None = None
    body: Any = None
    delay: float = 0.0  # "apply": seconds before the replaced answer is sent
    times: int = 1  # "apply": how many times the write is applied (a proxy that re-sent it upstream)

    def matches(self, method: str, path: str, is_token: bool) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path_contains is None:
            return not is_token
        return self.path_contains.lower() in path.lower()


class Hold:
    """API requests that match wait at the fake until `release()` (see `NexudusFake.hold`).

    `waiting` is how many are held right now, `seen` how many have matched so far; read them
    under `fake.lock` or from the test thread (they are plain ints)."""

    def __init__(self, method: str | None, path: str | None,
                 where: Callable[[str, str, dict[str, str]], bool] | None) -> None:
        self.method = method.upper() if method else None
        self.path = path
        self.where = where
        self.waiting = 0
        self.seen = 0
        self._released = threading.Event()
        self._guard = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool:
        if self._released.is_set():
            return False
        if self.method is not None and self.method != method:
            return False
        if self.path is not None and path.rstrip("/").lower() != self.path.rstrip("/").lower():
            return False
        return self.where is None or self.where(method, path, params)

    def release(self) -> None:
        """Let every held request go on (callable from any thread)."""
        with self._guard:
            self._released.set()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        event = asyncio.Event()
        with self._guard:
            if self._released.is_set():
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()


@dataclass
class _Accessor:
    name: str  # canonical field name (for CurrentOrderField)
    get: Getter
    index_field: str | None = None  # set when equality can be answered from an index


class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _error_item(prop: str | None, message: str, attempted: Any = None) -> Record:
    return {"AttemptedValue": attempted, "Message": message, "PropertyName": prop}


def _validation_response(errors: list[Record], status: int = 400) -> JSONResponse:
    message = "; ".join(
        f"{e['PropertyName']}: {e['Message']}" if e["PropertyName"] else str(e["Message"]) for e in errors
    )
    return JSONResponse(
        {"Message": message, "Value": None, "Errors": errors, "WasSuccessful": False}, status_code=status
    )


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"Message": message}, status_code=status)


class NexudusFake:
    """In-memory Nexudus Spaces API. `fake.app` is the Starlette ASGI app."""

    def __init__(
        self,
        username: str = "api@example.com",
        password: str = "secret",
        *,
        writes_per_minute: int | None = None,
        requests_per_minute: int | None = None,
        delay: float = 0.0,
        page_size_max: int = 1000,
        allow_duplicate_enrolments: bool = True,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        ignore_system_id: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.writes_per_minute = writes_per_minute
        self.requests_per_minute = requests_per_minute
        self.delay = delay
        self.page_size_max = page_size_max
        self.allow_duplicate_enrolments = allow_duplicate_enrolments
        self.ignore_system_id = ignore_system_id
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.lock = threading.RLock()

        self.tables: dict[str, dict[int, Record]] = {spec.table: {} for spec in SPECS}
        self.businesses = self.tables["businesses"]
        self.tariffs = self.tables["tariffs"]
        self.coworkers = self.tables["coworkers"]
        self.courses = self.tables["courses"]
        self.coursesections = self.tables["coursesections"]
        self.courselessons = self.tables["courselessons"]
        self.coursemembers = self.tables["coursemembers"]
        self.coursecompletedlessons = self.tables["coursecompletedlessons"]
        self._next_id: dict[str, int] = {spec.table: 1 for spec in SPECS}
        self._index: dict[str, dict[str, dict[Any, set[int]]]] = {
            spec.table: {name: {} for name in spec.indexed} for spec in SPECS
        }
        self._routes: dict[tuple[str, str], EntitySpec] = {(s.area, s.table): s for s in SPECS}
        self._derived: dict[str, dict[str, Getter]] = self._build_derived()
        # seeding fast paths
        self._templates: dict[str, Record] = {
            spec.table: {**{n: clear_value(k) for n, k in spec.writable.items()}, **dict.fromkeys(spec.readonly)}
            for spec in SPECS
        }
        self._list_fields: dict[str, list[str]] = {
            spec.table: [n for n, k in spec.writable.items() if k == INTLIST] for spec in SPECS
        }
        self._checked_rows: dict[str, list[tuple[str, dict[int, Record]]]] = {
            spec.table: [(n, self.tables[spec.relations[self._relation_of(spec, n)][1]]) for n in spec.checked]
            for spec in SPECS
        }
        self._stamp_cache: tuple[datetime, str] | None = None

        # auth
        self._access_tokens: set[str] = set()
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> client_id
        # observability
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.in_flight = 0  # API requests being answered right now (token requests aside)
        self.max_in_flight = 0
        self._holds: list[Hold] = []
        self.token_requests = 0
        self.writes = 0
        self.write_times: list[float] = []
        self.throttled = 0
        # limiter windows and injections
        self._write_window: deque[float] = deque()
        self._request_window: deque[float] = deque()
        self._injections: list[_Injection] = []

        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
        )

    # ------------------------------------------------------------------ seeding helpers

    def add_business(self, name: str, **extra: Any) -> Record:
        return self._seed("businesses", {"Name": name, "CurrencyCode": "EUR", "Active": True}, extra)

    def add_tariff(self, name: str, business_id: int, price: float = 10.0, **extra: Any) -> Record:
        values = {"BusinessId": business_id, "Name": name, "Price": price, "CurrencyCode": "EUR",
                  "Visible": True}
        return self._seed("tariffs", values, extra)

    def add_coworker(
        self, full_name: str, email: str, company_name: str = "", team_names: str = "", **extra: Any
    ) -> Record:
        values = {"FullName": full_name, "Email": email, "CoworkerType": 1, "CompanyName": company_name or None,
                  "BillingName": full_name, "BillingEmail": email, "Active": True, "IsDefaultProfile": True,
                  "TeamNames": team_names or None}
        return self._seed("coworkers", values, extra)

    def add_course(
        self, title: str, visibility: int = 1, business_id: int | None = None, host_id: int | None = None,
        **extra: Any,
    ) -> Record:
        values = {"Title": title, "Visibility": visibility, "BusinessId": business_id, "HostId": host_id,
                  "Active": True}
        return self._seed("courses", values, extra)

    def add_section(self, course_id: int, title: str, display_order: int, **extra: Any) -> Record:
        values = {"CourseId": course_id, "Title": title, "DisplayOrder": display_order, "UnlockType": 1,
                  "Active": True}
        return self._seed("coursesections", values, extra)

    def add_lesson(
        self, course_id: int, title: str, display_order: int, section_id: int | None = None,
        unlock_type: int = 1, completion_type: int = 2, **extra: Any,
    ) -> Record:
        values = {"CourseId": course_id, "Title": title, "DisplayOrder": display_order, "SectionId": section_id,
                  "UnlockType": unlock_type, "CompletionType": completion_type, "Active": True}
        return self._seed("courselessons", values, extra)

    def add_enrolment(
        self, course_id: int, coworker_id: int, approved: bool = True, blocked: bool = False,
        created_on: datetime | str | None = None,
    ) -> Record:
        values = {"CourseId": course_id, "CoworkerId": coworker_id, "Approved": approved, "Blocked": blocked}
        return self._seed("coursemembers", values, {}, created_on)

    def add_completed_lesson(
        self, course_member_id: int, lesson_id: int, created_on: datetime | str | None = None
    ) -> Record:
        values = {"CourseMemberId": course_member_id, "CourseLessonId": lesson_id}
        return self._seed("coursecompletedlessons", values, {}, created_on)

    def view(self, table: str, record_id: int) -> Record:
        """The record as GET-by-id would return it (derived fields included)."""
        with self.lock:
            spec = SPEC_BY_TABLE[table]
            return self._full(spec, self.tables[table][record_id])

    def _seed(
        self, table: str, values: Record, extra: Record, created_on: datetime | str | None = None
    ) -> Record:
        spec = SPEC_BY_TABLE[table]
        if extra:
            unknown = set(extra) - {*spec.writable, *spec.readonly}
            if unknown:
                raise TypeError(f"unknown {spec.name} fields: {sorted(unknown)}")
        record = self._templates[table].copy()
        for name in self._list_fields[table]:
            record[name] = []
        record.update(values)
        if extra:
            record.update(extra)
        with self.lock:
            for name, rows in self._checked_rows[table]:
                value = record[name]
                if value is not None and value not in rows:
                    raise KeyError(f"{spec.name}.{name}={value} does not exist")
            return self._insert(spec, record, created_on)

    # ------------------------------------------------------------------ injection / control

    def fail_next(
        self, n: int = 1, status: int = 500, method: str | None = None, path_contains: str | None = None,
        body: Any = None,
    ) -> None:
        """Make the next `n` matching API requests fail with `status` and `body`.

        `body` may be a dict/list (sent as JSON), str or bytes. With `body=None` a status-200 failure
        sends a mutation envelope with `WasSuccessful: false` and one `Errors` entry; other statuses send
        `{"Message": "An error has occurred."}`. Without `path_contains`, `/api/token` is never matched.
        """
        with self.lock:
            self._injections.append(_Injection("fail", n, status=status, method=method,
                                               path_contains=path_contains, body=body))

    def apply_then_fail_next(
        self, n: int = 1, status: int = 500, method: str | None = None, path_contains: str | None = None, *,
        delay: float = 0.0, times: int = 1, body: Any = None,
    ) -> None:
        """Apply the next `n` matching writes (each `times` times), then answer `status` (and `body`, as
        `fail_next`) instead of what they did, after `delay` seconds: the change is made but its answer is
        lost. A `delay` longer than the client's timeout makes it a timeout; `times=0` applies nothing
        (the request itself was lost). Writes the fake refuses anyway (auth, validation) are answered as
        usual, and use the rule up."""
        with self.lock:
            self._injections.append(_Injection("apply", n, status=status, method=method,
                                               path_contains=path_contains, body=body, delay=delay, times=times))

    def throttle_next(
        self, n: int = 1, retry_after: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next `n` matching API requests with 409, empty body, `Retry-After`."""
        with self.lock:
            self._injections.append(_Injection("throttle", n, status=409, retry_after=retry_after,
                                               method=method, path_contains=path_contains))

    def status_429_next(
        self, n: int = 1, retry_after: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next `n` matching API requests with 429, empty body, `Retry-After`."""
        with self.lock:
            self._injections.append(_Injection("429", n, status=429, retry_after=retry_after,
                                               method=method, path_contains=path_contains))

    def hold(
        self, method: str | None = None, path: str | None = None,
        where: Callable[[str, str, dict[str, str]], bool] | None = None,
    ) -> Hold:
        """Make matching API requests (`path` exact, without the query) wait until the hold is released.

        For tests that need the platform busy at a known moment without timing anything: requests
        that match are logged in `requests` at once, then answered only after `release()`."""
        hold = Hold(method, path, where)
        with self.lock:
            self._holds.append(hold)
        return hold

    def release_holds(self) -> None:
        with self.lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def expire_tokens(self, refresh_tokens: bool = False) -> None:
        """Invalidate every issued access token (and the refresh tokens too if asked)."""
        with self.lock:
            self._access_tokens.clear()
            if refresh_tokens:
                self._refresh_tokens.clear()

    def reset(self, **options: Any) -> None:
        """Become a new `NexudusFake(**options)` in place: no records, tokens, recorded requests,
        injected failures or limiter windows, and the given options (the defaults for the others:
        `delay`, `clock`, `writes_per_minute`... set since are undone). `app` stays the same object, so
        one server serves a fresh fake to test after test. Call it while no request is in flight."""
        with self.lock:
            app, lock = self.app, self.lock
            NexudusFake.__init__(self, **options)
            self.app, self.lock = app, lock

    def reset_counters(self, reset_limits: bool = True) -> None:
        """Clear requests, token_requests, writes, write_times, throttled (and the limiter windows)."""
        with self.lock:
            self.requests.clear()
            self.token_requests = 0
            self.writes = 0
            self.write_times.clear()
            self.throttled = 0
            if reset_limits:
                self._write_window.clear()
                self._request_window.clear()

    # ------------------------------------------------------------------ storage

    def _now(self) -> str:
        return self._format(self.clock())

    def _format(self, value: datetime) -> str:
        # Cache per whole second: bulk seeding formats the same second thousands of times.
        key = value.replace(microsecond=0)
        cached = self._stamp_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        text = format_datetime(key)
        self._stamp_cache = (key, text)
        return text

    def _insert(self, spec: EntitySpec, values: Record, created_on: datetime | str | None = None) -> Record:
        if created_on is None:
            stamp = self._now()
        elif isinstance(created_on, datetime):
            stamp = self._format(created_on)
        else:
            stamp = created_on
        rid = self._next_id[spec.table]
        self._next_id[spec.table] = rid + 1
        record: Record = {"Id": rid, "UniqueId": _fast_uuid4(), "CreatedOn": stamp, "UpdatedOn": stamp,
                          "UpdatedBy": self.username, "IsNew": False}
        record.update(values)
        self.tables[spec.table][rid] = record
        index = self._index[spec.table]
        for name in spec.indexed:
            value = record.get(name)
            if value is not None:
                bucket = index[name].get(value)
                if bucket is None:
                    index[name][value] = {rid}
                else:
                    bucket.add(rid)
        return record

    def _reindex(self, spec: EntitySpec, record: Record, new_values: Record) -> None:
        index = self._index[spec.table]
        for name in spec.indexed:
            old, new = record.get(name), new_values.get(name, record.get(name))
            if old == new:
                continue
            if old is not None:
                index[name].get(old, set()).discard(record["Id"])
            if new is not None:
                index[name].setdefault(new, set()).add(record["Id"])

    def _delete(self, spec: EntitySpec, rid: int) -> None:
        record = self.tables[spec.table].pop(rid, None)
        if record is None:
            return
        for name in spec.indexed:
            value = record.get(name)
            if value is not None:
                self._index[spec.table][name].get(value, set()).discard(rid)
        children: list[tuple[str, str]] = {
            "courses": [("coursesections", "CourseId"), ("courselessons", "CourseId"),
                        ("coursemembers", "CourseId")],
            "coursemembers": [("coursecompletedlessons", "CourseMemberId")],
            "courselessons": [("coursecompletedlessons", "CourseLessonId")],
        }.get(spec.table, [])
        for table, fk in children:
            for child in list(self._index[table][fk].get(rid, ())):
                self._delete(SPEC_BY_TABLE[table], child)
        if spec.table == "coursesections":
            for lesson_id in list(self._index["courselessons"]["SectionId"].get(rid, ())):
                lesson = self.courselessons[lesson_id]
                self._reindex(SPEC_BY_TABLE["courselessons"], lesson, {"SectionId": None})
                lesson["SectionId"] = None

    @staticmethod
    def _relation_of(spec: EntitySpec, fk_field: str) -> str:
        for name, (fk, _target) in spec.relations.items():
            if fk == fk_field:
                return name
        raise KeyError(fk_field)

    # ------------------------------------------------------------------ derived (read-only) fields

    def _build_derived(self) -> dict[str, dict[str, Getter]]:
        def ref(table: str, key: str, name: str) -> Getter:
            rows = self.tables[table]

            def get(record: Record) -> Any:
                target = rows.get(record.get(key))  # type: ignore[arg-type]
                return None if target is None else target.get(name)

            return get

        def coworker_type(record: Record) -> str | None:
            coworker = self.coworkers.get(record.get("CoworkerId"))  # type: ignore[arg-type]
            return None if coworker is None else COWORKER_TYPES.get(coworker.get("CoworkerType") or 0)

        def last_lesson_id(record: Record) -> int | None:
            done = self._last_completion(record)
            return None if done is None else done["CourseLessonId"]

        def last_lesson_title(record: Record) -> str | None:
            done = self._last_completion(record)
            if done is None:
                return None
            lesson = self.courselessons.get(done["CourseLessonId"])
            return None if lesson is None else lesson["Title"]

        def last_access(record: Record) -> str | None:
            done = self._last_completion(record)
            return None if done is None else done["CreatedOn"]

        def member_coworker(name: str) -> Getter:
            def get(record: Record) -> Any:
                member = self.coursemembers.get(record.get("CourseMemberId"))  # type: ignore[arg-type]
                if member is None:
                    return None
                coworker = self.coworkers.get(member["CoworkerId"])
                return None if coworker is None else coworker.get(name)

            return get

        return {
            "businesses": {},
            "coworkers": {},
            "tariffs": {"BusinessName": ref("businesses", "BusinessId", "Name")},
            "courses": {
                "BusinessName": ref("businesses", "BusinessId", "Name"),
                "BusinessAddress": ref("businesses", "BusinessId", "Address"),
                "HostFullName": ref("coworkers", "HostId", "FullName"),
                "HostTeamNames": ref("coworkers", "HostId", "TeamNames"),
                "TariffName": ref("tariffs", "TariffId", "Name"),
                "TariffPrice": ref("tariffs", "TariffId", "Price"),
                "TariffCurrencyCode": ref("tariffs", "TariffId", "CurrencyCode"),
                "ToStringText": lambda record: record.get("Title"),
            },
            "coursesections": {"CourseTitle": ref("courses", "CourseId", "Title")},
            "courselessons": {
                "CourseTitle": ref("courses", "CourseId", "Title"),
                "SectionTitle": ref("coursesections", "SectionId", "Title"),
                "SectionDisplayOrder": ref("coursesections", "SectionId", "DisplayOrder"),
                "InstructorFullName": ref("coworkers", "InstructorId", "FullName"),
                "InstructorCompanyName": ref("coworkers", "InstructorId", "CompanyName"),
                "InstructorTeamNames": ref("coworkers", "InstructorId", "TeamNames"),
            },
            "coursemembers": {
                "CourseTitle": ref("courses", "CourseId", "Title"),
                "CoworkerCoworkerType": coworker_type,
                "CoworkerFullName": ref("coworkers", "CoworkerId", "FullName"),
                "CoworkerCompanyName": ref("coworkers", "CoworkerId", "CompanyName"),
                "CoworkerTeamNames": ref("coworkers", "CoworkerId", "TeamNames"),
                "CoworkerBillingName": ref("coworkers", "CoworkerId", "BillingName"),
                "LastCompletedLessonId": last_lesson_id,
                "LastCompletedLessonTitle": last_lesson_title,
                "LastAccess": last_access,
            },
            "coursecompletedlessons": {
                "CourseLessonTitle": ref("courselessons", "CourseLessonId", "Title"),
                "CourseMemberCoworkerFullName": member_coworker("FullName"),
                "CourseMemberCoworkerCompanyName": member_coworker("CompanyName"),
                "CourseMemberCoworkerTeamNames": member_coworker("TeamNames"),
            },
        }

    def _last_completion(self, member: Record) -> Record | None:
        ids = self._index["coursecompletedlessons"]["CourseMemberId"].get(member["Id"])
        if not ids:
            return None
        rows = self.coursecompletedlessons
        best = max(ids, key=lambda i: (rows[i]["CreatedOn"], i))
        return rows[best]

    def _full(self, spec: EntitySpec, record: Record) -> Record:
        out = {k: (list(v) if isinstance(v, list) else v) for k, v in record.items() if k not in spec.hidden}
        for name, getter in self._derived[spec.table].items():
            out[name] = getter(record)
        return out

    def _partial(self, spec: EntitySpec, record: Record) -> Record:
        out = self._full(spec, record)
        for name in spec.list_omit:
            out.pop(name, None)
        return out

    # ------------------------------------------------------------------ HTTP entry point

    async def _endpoint(self, request: Request) -> Response:
        path = request.url.path
        method = request.method.upper()
        params = dict(request.query_params)
        body = await request.body()
        if path.lower().rstrip("/") == "/api/token":
            with self.lock:
                self.token_requests += 1
                self.requests.append((method, path, params))
                injected = self._take_injection(method, path, is_token=True)
                if injected is not None:
                    return injected
                if method != "POST":
                    return _message(405, "The requested resource does not support http method.")
                return self._token(request.headers.get("content-type", ""), request.headers, body)
        with self.lock:
            self.requests.append((method, path, params))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            hold = next((h for h in self._holds if h.matches(method, path, params)), None)
            if hold is not None:
                hold.waiting += 1
                hold.seen += 1
        try:
            if hold is not None:
                await hold.wait()
                with self.lock:
                    hold.waiting -= 1
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            with self.lock:
                lost = self._take_apply(method, path) if method != "GET" else None
                response: Response | None = None
                for _ in range(1 if lost is None else lost.times):
                    try:
                        response = self._handle_api(method, path, params, request, body)
                    except ApiError as exc:
                        response = exc.response
                    if response.status_code >= 400:
                        lost = None  # refused: answered as usual
                        break
            if response is None or lost is not None:
                assert lost is not None
                if lost.delay > 0:
                    await asyncio.sleep(lost.delay)
                response = self._injected_failure(lost)
            response.headers["Date"] = http_date(self.clock().astimezone(UTC), usegmt=True)
            return response
        finally:
            with self.lock:
                self.in_flight -= 1

    # ------------------------------------------------------------------ auth

    def _token(self, content_type: str, headers: Any, body: bytes) -> Response:
        def error(code: str, description: str | None = None) -> JSONResponse:
            payload = {"error": code}
            if description is not None:
                payload["error_description"] = description
            return JSONResponse(payload, status_code=400)

        if "application/x-www-form-urlencoded" not in content_type.lower():
            return error("unsupported_grant_type")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        header_client = headers.get("client_id") or form.get("client_id")
        if grant == "password":
            if form.get("username") != self.username or form.get("password") != self.password:
                return error("invalid_grant", "The user name or password is incorrect.")
            return self._issue(header_client or self.username)
        if grant == "refresh_token":
            if not header_client:
                return error("invalid_clientId", "client_Id should be sent.")
            owner = self._refresh_tokens.get(form.get("refresh_token") or "")
            if owner is None:
                return error("invalid_grant", "The refresh token is invalid or has expired.")
            if owner != header_client:
                return error("invalid_clientId", "Refresh token is issued to a different clientId.")
            return self._issue(owner)
        return error("unsupported_grant_type")

    def _issue(self, client_id: str) -> JSONResponse:
        for token in [t for t, owner in self._refresh_tokens.items() if owner == client_id]:
            del self._refresh_tokens[token]
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self._access_tokens.add(access)
        self._refresh_tokens[refresh] = client_id
        return JSONResponse(
            {"access_token": access, "token_type": "bearer", "expires_in": 604799, "refresh_token": refresh}
        )

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return credentials in self._access_tokens
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            return user == self.username and password == self.password
        return False

    # ------------------------------------------------------------------ throttling / injection

    def _take_apply(self, method: str, path: str) -> _Injection | None:
        for rule in self._injections:
            if rule.kind == "apply" and rule.remaining > 0 and rule.matches(method, path, False):
                rule.remaining -= 1
                self._injections = [r for r in self._injections if r.remaining > 0]
                return rule
        return None

    def _take_injection(self, method: str, path: str, is_token: bool) -> Response | None:
        for rule in self._injections:
            if rule.kind != "apply" and rule.remaining > 0 and rule.matches(method, path, is_token):
                rule.remaining -= 1
                self._injections = [r for r in self._injections if r.remaining > 0]
                if rule.kind in ("throttle", "429"):
                    self.throttled += 1
                    return Response(status_code=rule.status, headers={"Retry-After": str(rule.retry_after)})
                return self._injected_failure(rule)
        return None

    def _injected_failure(self, rule: _Injection) -> Response:
        body = rule.body
        if body is None:
            if rule.status == 200:
                body = {"Status": 200, "Message": "Injected failure", "Value": None, "OpenInDialog": False,
                        "OpenInWindow": False, "RedirectURL": None, "JavaScript": None,
                        "UpdatedOn": self._now(), "UpdatedBy": self.username,
                        "Errors": [_error_item(None, "Injected failure")], "WasSuccessful": False}
            else:
                body = {"Message": "An error has occurred."}
        if isinstance(body, bytes):
            return Response(body, status_code=rule.status)
        if isinstance(body, str):
            return Response(body, status_code=rule.status, media_type="text/plain")
        return JSONResponse(body, status_code=rule.status)

    def _rate_limit(self, method: str) -> Response | None:
        now = self.monotonic()
        is_write = method in ("POST", "PUT", "DELETE")
        checks: list[tuple[deque[float], int]] = []
        if self.requests_per_minute is not None:
            checks.append((self._request_window, self.requests_per_minute))
        if is_write and self.writes_per_minute is not None:
            checks.append((self._write_window, self.writes_per_minute))
        for window, limit in checks:
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= limit:
                wait = window[0] + 60.0 - now if window else 60.0
                self.throttled += 1
                return Response(status_code=409, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if self.requests_per_minute is not None:
            self._request_window.append(now)
        if is_write:
            self._write_window.append(now)
            self.write_times.append(now)
        return None

    # ------------------------------------------------------------------ dispatch

    def _handle_api(
        self, method: str, path: str, params: dict[str, str], request: Request, body: bytes
    ) -> Response:
        if not self._authorized(request.headers.get("authorization", "")):
            return _message(401, "Authorization has been denied for this request.")
        injected = self._take_injection(method, path, is_token=False)
        if injected is not None:
            return injected
        limited = self._rate_limit(method)
        if limited is not None:
            return limited
        segments = [s for s in path.split("/") if s]
        spec = self._routes.get((segments[1].lower(), segments[2].lower())) if len(segments) >= 3 else None
        if spec is None or len(segments) > 4:
            return _message(404, "No HTTP resource was found that matches the request URI.")
        not_allowed = _message(405, f"The requested resource does not support http method '{method}'.")
        if len(segments) == 3:
            if method == "GET":
                return self._batch(spec, params["id"]) if "id" in params else self._list(spec, params)
            if method in ("POST", "PUT"):
                if not spec.api_writable:
                    return not_allowed
                payload = self._json_body(body)
                return self._create(spec, payload) if method == "POST" else self._update(spec, payload)
            return not_allowed
        tail = segments[3].lower()
        if tail == "commands":
            return JSONResponse([]) if method == "GET" else not_allowed
        if tail == "runcommand":
            if method != "POST":
                return not_allowed
            return _validation_response([_error_item("Key", "Command not found")])
        try:
            rid = int(tail)
        except ValueError:
            return _message(404, "No HTTP resource was found that matches the request URI.")
        if method == "GET":
            record = self.tables[spec.table].get(rid)
            if record is None:
                return _message(404, f"{spec.name} {rid} was not found.")
            return JSONResponse(self._full(spec, record))
        if method == "DELETE":
            if not spec.deletable or not spec.api_writable:
                return not_allowed
            if rid not in self.tables[spec.table]:
                return _validation_response([_error_item("Id", "Record not found", rid)], status=404)
            self._delete(spec, rid)
            self.writes += 1
            return self._envelope(spec, "deleted", rid, self._now())
        return not_allowed

    @staticmethod
    def _json_body(body: bytes) -> Record:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ApiError(_validation_response([_error_item(None, "The request is invalid.")]))
        return payload

    def _envelope(self, spec: EntitySpec, verb: str, rid: int, updated_on: str) -> JSONResponse:
        return JSONResponse({
            "Status": 200, "Message": f"{spec.name} was successfully {verb}.", "Value": {"Id": rid},
            "OpenInDialog": False, "OpenInWindow": False, "RedirectURL": None, "JavaScript": None,
            "UpdatedOn": updated_on, "UpdatedBy": self.username, "Errors": None, "WasSuccessful": True,
        })

    # ------------------------------------------------------------------ create / update

    def _bind(self, spec: EntitySpec, payload: Record) -> tuple[Record, set[str], list[Record]]:
        """Bind a body to the writable fields: omitted fields get their cleared value."""
        by_lower = {str(k).lower(): v for k, v in payload.items()}
        values: Record = {}
        present: set[str] = set()
        errors: list[Record] = []
        for name, kind in spec.writable.items():
            raw = by_lower.get(name.lower())
            if raw is None:
                values[name] = clear_value(kind)
                continue
            try:
                values[name] = self._coerce(kind, raw)
            except (TypeError, ValueError):
                errors.append(_error_item(name, "is not a valid value", raw))
                values[name] = clear_value(kind)
                continue
            if values[name] is not None and values[name] != "":
                present.add(name)
        if self.ignore_system_id:
            values["SystemId"] = None
            present.discard("SystemId")
        return values, present, errors

    @staticmethod
    def _coerce(kind: str, raw: Any) -> Any:
        if kind in (FK, INT):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            if isinstance(raw, int | float):
                return int(raw)
            if isinstance(raw, str):
                return int(raw.strip()) if raw.strip() else None
            raise TypeError(raw)
        if kind == BOOL:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            raise TypeError(raw)
        if kind == FLOAT:
            if isinstance(raw, bool):
                raise TypeError(raw)
            return float(raw)
        if kind == INTLIST:
            if not isinstance(raw, list):
                raise TypeError(raw)
            return [int(x) for x in raw]
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
        raise TypeError(raw)

    def _validate(self, spec: EntitySpec, values: Record, present: set[str], self_id: int | None) -> list[Record]:
        errors: list[Record] = []
        for name in spec.required:
            if name not in present:
                errors.append(_error_item(name, "is a required field", values.get(name)))
        for name, allowed in spec.enums.items():
            if name in present and values[name] not in allowed:
                errors.append(_error_item(name, "is not a valid value", values[name]))
        for name in spec.checked:
            value = values.get(name)
            if value is None:
                continue
            relation = self._relation_of(spec, name)
            target = spec.relations[relation][1]
            if value not in self.tables[target]:
                errors.append(_error_item(name, f"{SPEC_BY_TABLE[target].name} {value} does not exist", value))
        if spec.table == "courses" and values.get("Visibility") == VISIBILITY_PAID and values.get("TariffId") is None:
            errors.append(_error_item("TariffId", "is a required field when Visibility is Paid", None))
        if spec.table == "courselessons" and values.get("SectionId") is not None and not errors:
            section = self.coursesections.get(values["SectionId"])
            if section is not None and section["CourseId"] != values.get("CourseId"):
                errors.append(_error_item("SectionId", "does not belong to the course", values["SectionId"]))
        if spec.table == "coursemembers" and not self.allow_duplicate_enrolments and not errors:
            index = self._index["coursemembers"]
            same = index["CourseId"].get(values["CourseId"], set()) & index["CoworkerId"].get(
                values["CoworkerId"], set()
            )
            if same - {self_id}:
                errors.append(_error_item("CoworkerId", "is already a member of this course", values["CoworkerId"]))
        return errors

    def _create(self, spec: EntitySpec, payload: Record) -> Response:
        values, present, errors = self._bind(spec, payload)
        errors += self._validate(spec, values, present, None)
        if errors:
            return _validation_response(errors)
        values.update(dict.fromkeys(spec.readonly))
        record = self._insert(spec, values)
        self.writes += 1
        return self._envelope(spec, "created", record["Id"], record["UpdatedOn"])

    def _update(self, spec: EntitySpec, payload: Record) -> Response:
        raw_id = next((v for k, v in payload.items() if str(k).lower() == "id"), None)
        try:
            rid = self._coerce(FK, raw_id) if raw_id is not None else None
        except (TypeError, ValueError):
            rid = None
        if not rid:
            return _validation_response([_error_item("Id", "is a required field", raw_id)])
        record = self.tables[spec.table].get(rid)
        if record is None:
            return _validation_response([_error_item("Id", "Record not found", rid)])
        values, present, errors = self._bind(spec, payload)
        errors += self._validate(spec, values, present, rid)
        if errors:
            return _validation_response(errors)
        self._reindex(spec, record, values)
        record.update(values)
        record["UpdatedOn"] = self._now()
        record["UpdatedBy"] = self.username
        self.writes += 1
        return self._envelope(spec, "updated", rid, record["UpdatedOn"])

    # ------------------------------------------------------------------ reads

    def _batch(self, spec: EntitySpec, raw: str) -> Response:
        try:
            ids = [int(part) for part in raw.strip().strip("[]").split(",") if part.strip()]
        except ValueError:
            return _message(400, f"The value '{raw}' is not valid for id.")
        rows = self.tables[spec.table]
        return JSONResponse([self._full(spec, rows[i]) for i in ids if i in rows])

    def _accessor(self, spec: EntitySpec, parts: list[str]) -> _Accessor | None:
        """Resolve `Field`, `Relation`, `Relation_Field` (flattened derived name or followed FK)."""
        lower = [p.lower() for p in parts]
        stored = {name.lower(): name for name in ("Id", "UniqueId", "CreatedOn", "UpdatedOn", "UpdatedBy",
                                                   "IsNew", *spec.writable, *spec.readonly)
                  if name not in spec.hidden}
        derived = {name.lower(): name for name in self._derived[spec.table]}
        relations = {name.lower(): name for name in spec.relations}
        if len(lower) == 1 and lower[0] in relations:
            fk = spec.relations[relations[lower[0]]][0]
            getter = self._field_getter(spec, fk)
            return _Accessor(fk, getter, fk if fk in spec.indexed else None)
        flat = "".join(lower)
        if flat in stored:
            name = stored[flat]
            return _Accessor(name, self._field_getter(spec, name), name if name in spec.indexed else None)
        if flat in derived:
            return _Accessor(derived[flat], self._derived[spec.table][derived[flat]])
        if len(lower) > 1 and lower[0] in relations:
            fk, target = spec.relations[relations[lower[0]]]
            inner = self._accessor(SPEC_BY_TABLE[target], parts[1:])
            if inner is None:
                return None
            fk_get = self._field_getter(spec, fk)
            rows = self.tables[target]
            inner_get = inner.get

            def follow(record: Record) -> Any:
                linked = rows.get(fk_get(record))
                return None if linked is None else inner_get(linked)

            return _Accessor(f"{relations[lower[0]]}{inner.name}", follow)
        return None

    def _field_getter(self, spec: EntitySpec, name: str) -> Getter:
        derived = self._derived[spec.table].get(name)
        if derived is not None:
            return derived
        return lambda record: record.get(name)

    def _filters(self, spec: EntitySpec, params: dict[str, str]) -> tuple[list[set[int]], list[Predicate]]:
        sets: list[set[int]] = []
        predicates: list[Predicate] = []
        prefix = spec.name.lower() + "_"
        for key, raw in params.items():
            lowered = key.lower()
            if lowered in RESERVED_PARAMS or key == "id" or raw == "":
                continue
            mode, rest = "eq", key
            if lowered.startswith("from_"):
                mode, rest = "from", key[5:]
            elif lowered.startswith("to_"):
                mode, rest = "to", key[3:]
            if rest.lower() in ("id", "uniqueid"):
                parts = [rest]
            elif rest.lower().startswith(prefix):
                parts = rest[len(prefix):].split("_")
            else:
                continue  # unknown filter: silently ignored, like the real service
            accessor = self._accessor(spec, parts)
            if accessor is None:
                continue
            if mode == "eq":
                if accessor.name == "Id" or accessor.index_field is not None:
                    try:
                        wanted = int(raw.strip())
                    except ValueError:
                        sets.append(set())
                        continue
                    if accessor.name == "Id":
                        sets.append({wanted} if wanted in self.tables[spec.table] else set())
                    else:
                        assert accessor.index_field is not None
                        sets.append(self._index[spec.table][accessor.index_field].get(wanted, set()))
                    continue
                predicates.append(self._eq_predicate(accessor.get, raw))
            else:
                predicates.append(self._range_predicate(key, parts[-1].lower(), accessor.get, raw, mode))
        return sets, predicates

    @staticmethod
    def _eq_predicate(get: Getter, raw: str) -> Predicate:
        text = raw.strip()
        low = text.lower()

        def match(record: Record) -> bool:
            value = get(record)
            if value is None:
                return False
            if isinstance(value, bool):
                return low == ("true" if value else "false")
            if isinstance(value, int):
                return text == str(value)
            if isinstance(value, float):
                try:
                    return float(text) == value
                except ValueError:
                    return False
            if isinstance(value, list):
                return any(str(item) == text for item in value)
            return low in str(value).lower()  # text: partial, case-insensitive

        return match

    @staticmethod
    def _range_predicate(key: str, field_name: str, get: Getter, raw: str, mode: str) -> Predicate:
        try:
            if field_name in DATE_FIELDS:
                bound_text = parse_minute(raw)

                def in_date_range(record: Record) -> bool:
                    value = get(record)
                    if not isinstance(value, str):
                        return False
                    minute = value[:16]
                    return minute >= bound_text if mode == "from" else minute <= bound_text

                return in_date_range
            bound = float(raw)
        except ValueError:
            raise ApiError(_message(400, f"The value '{raw}' is not valid for {key}.")) from None

        def in_range(record: Record) -> bool:
            value = get(record)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return value >= bound if mode == "from" else value <= bound

        return in_range

    def _list(self, spec: EntitySpec, params: dict[str, str]) -> Response:
        lowered = {k.lower(): v for k, v in params.items()}
        page = _int_or(lowered.get("page"), 1, minimum=1)
        size = min(_int_or(lowered.get("size"), 25, minimum=1), self.page_size_max)
        direction = (lowered.get("dir") or "1").strip().lower()
        descending = direction in ("-1", "desc", "descending")
        order = self._accessor(spec, [lowered["orderby"]]) if lowered.get("orderby") else None
        if order is None:
            order = self._accessor(spec, [spec.default_order])
            assert order is not None

        sets, predicates = self._filters(spec, params)
        rows = self.tables[spec.table]
        ids: Iterable[int]
        if sets:
            sets.sort(key=len)
            chosen = set(sets[0])
            for other in sets[1:]:
                chosen &= other
            ids = sorted(chosen)
        else:
            ids = list(rows)  # insertion order == ascending Id
        if predicates:
            ids = [i for i in ids if all(p(rows[i]) for p in predicates)]
        ordered = list(ids)
        if order.name == "Id":
            if descending:
                ordered.reverse()
        else:
            get = order.get

            def sort_key(i: int) -> tuple[bool, Any]:
                value = get(rows[i])
                return (value is None, value.lower() if isinstance(value, str) else value)

            try:
                ordered.sort(key=sort_key, reverse=descending)
            except TypeError:
                ordered.sort(key=lambda i: str(get(rows[i])), reverse=descending)

        total = len(ordered)
        start = (page - 1) * size
        chunk = ordered[start:start + size]
        total_pages = math.ceil(total / size) if total else 0
        return JSONResponse({
            "Records": [self._partial(spec, rows[i]) for i in chunk],
            "CurrentPage": page,
            "CurrentPageSize": size,
            "CurrentOrderField": order.name,
            "CurrentSortDirection": -1 if descending else 1,
            "FirstItem": start + 1 if chunk else 0,
            "LastItem": start + len(chunk) if chunk else 0,
            "TotalItems": total,
            "TotalPages": total_pages,
            "HasNextPage": page < total_pages,
            "HasPreviousPage": page > 1,
        })


def _fast_uuid4() -> str:
    """A random version-4 UUID string, a few times faster than `str(uuid.uuid4())`."""
    n = (random.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _int_or(raw: str | None, default: int, minimum: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= minimum else default
