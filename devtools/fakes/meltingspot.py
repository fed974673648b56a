"""In-process fake of the MeltingSpot public API (``/v1``), served over real HTTP in tests.

Behaviour follows ``/work/shared/reference/meltingspot-api.md``. Every point that doc marks
UNCONFIRMED is a constructor option here (auth scheme, page base, limits, bulk size, timestamp
format, rate limiting), so the bot's adapter can be tested against each variant.

Usage::

    fake = MeltingSpotFake(api_key="k", page_base=0)
    course = fake.add_course("Onboarding")
    alice = fake.add_member("alice@example.com", firstname="Alice")
    with fake.serve() as base_url:  # or ServerThread(fake.app)
        ...

The app runs on uvicorn's event-loop thread while the test thread seeds and inspects state, so
every read or write of shared state goes through ``self.lock``.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from devtools.servers import ServerThread

AuthScheme = Literal["raw", "bearer", "either"]
TimestampFormat = Literal["iso", "ms"]

PARTICIPANT_STATUSES = frozenset({"Invited", "Started", "Completed", "Unenrolled"})
MEMBER_STATUSES = frozenset(
    {"Accepted", "Deactivated", "DeclinedInvitation", "Invited", "Left", "Pending", "Rejected"}
)
ACTIVE_PARTICIPANT_STATUSES = frozenset({"Invited", "Started", "Completed"})
RATE_WINDOW_SECONDS = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(_as_utc(dt).timestamp() * 1000)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return _as_utc(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ----------------------------------------------------------------------------------------------
# Records (the public tables hold these; mutate them under `fake.lock` if a test runs a server)
# ----------------------------------------------------------------------------------------------


@dataclass
class Course:
    id: str
    title: str
    description: str = ""
    privacy: str = "Secret"
    status: str = "Published"
    navigation_mode: str = "Flexible"


@dataclass
class Member:
    id: str
    email: str
    firstname: str = ""
    lastname: str = ""
    status: str = "Accepted"
    role: str = "Member"
    title: str | None = None
    lang: str = "en"
    custom_role_id: str | None = None
    user_id: str | None = None
    warnings: int = 0
    updated_at: datetime = field(default_factory=_utcnow)
    last_activity_at: datetime | None = None


@dataclass
class Participant:
    id: str
    course_id: str
    member_id: str
    status: str = "Invited"
    invited_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    unenrolled_at: datetime | None = None
    last_activity_at: datetime | None = None
    completion_rate: int = 0
    invited_by: str | None = None


@dataclass
class Group:
    id: str
    name: str
    description: str = ""
    emoji: str | None = None
    icon: str | None = None


@dataclass
class _FailureRule:
    remaining: int
    status: int
    path_contains: str | None
    method: str | None
    body: Any
    headers: dict[str, str]

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in path


class ApiError(Exception):
    """Raised inside handlers; rendered as ``{"statusCode", "message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status_code=status, headers=headers)


MALFORMED = "Malformed payload"


# ----------------------------------------------------------------------------------------------
# Gate: recording, delay, auth, rate limit, failure injection (pure ASGI, runs before routing)
# ----------------------------------------------------------------------------------------------


class _Gate:
    def __init__(self, app: ASGIApp, fake: MeltingSpotFake) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fake = self.fake
        method: str = scope["method"]
        path: str = scope["path"]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        auth = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                auth = value.decode("latin-1")
                break
        early = fake._admit(method, path, query, auth)
        if fake.delay > 0:
            await asyncio.sleep(fake.delay)
        if early is not None:
            await early(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------


class MeltingSpotFake:
    """A MeltingSpot public API double. See the module docstring and the class attributes."""

    #: Member statuses that course invites reject with 400.
    uninvitable_member_statuses: frozenset[str] = frozenset({"Deactivated", "Left", "Pending"})

    def __init__(
        self,
        api_key: str = "ms_secret",
        *,
        auth_scheme: AuthScheme = "either",
        requests_per_10s: int | None = 100,
        max_bulk: int = 100,
        max_bulk_emails: int = 200,
        page_base: int = 1,
        default_limit: int = 20,
        max_limit: int = 100,
        limit_overflow: Literal["clamp", "error"] = "clamp",
        timestamps: TimestampFormat = "iso",
        delay: float = 0.0,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        spot_id: str | None = None,
        strict_query: bool = False,
    ) -> None:
        if auth_scheme not in ("raw", "bearer", "either"):
            raise ValueError(f"auth_scheme must be raw, bearer or either, not {auth_scheme!r}")
        if timestamps not in ("iso", "ms"):
            raise ValueError(f"timestamps must be iso or ms, not {timestamps!r}")
        if page_base not in (0, 1):
            raise ValueError("page_base must be 0 or 1")
        self.api_key = api_key
        self.auth_scheme: AuthScheme = auth_scheme
        self.requests_per_10s = requests_per_10s
        self.max_bulk = max_bulk
        self.max_bulk_emails = max_bulk_emails
        self.page_base = page_base
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.limit_overflow = limit_overflow
        self.timestamps: TimestampFormat = timestamps
        self.delay = delay
        self.clock = clock
        self.monotonic = monotonic
        self.spot_id = spot_id or _new_id()
        self.strict_query = strict_query

        self.lock = threading.Lock()
        # Public tables (insertion order == API order).
        self.courses: dict[str, Course] = {}
        self.members: dict[str, Member] = {}
        self.participants: dict[str, Participant] = {}
        self.groups: dict[str, Group] = {}
        self.course_groups: dict[str, list[str]] = {}
        # Indexes.
        self._email_index: dict[str, str] = {}
        self._by_course: dict[str, dict[str, str]] = {}  # course_id -> {member_id: participant_id}
        self._order: dict[str, int] = {}  # member/participant id -> creation sequence
        # Observability.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.request_times: list[float] = []
        self.json_bodies: list[tuple[str, str, Any]] = []
        self.invitation_emails: list[tuple[str, str, str | None]] = []
        """(course id, member email, inviter's member id): an invitation email the spot sent, i.e. a new or
        re-invited participant whose invitation said `withEmailNotification: true`."""
        self.throttled = 0
        self.unauthorized = 0
        self.injected_failures = 0
        self._window: deque[float] = deque()
        self._failures: list[_FailureRule] = []

        self.app = Starlette(
            routes=self._routes(),
            middleware=[Middleware(_Gate, fake=self)],
            exception_handlers={HTTPException: self._http_exception, ApiError: self._api_error},
        )

    # ------------------------------------------------------------------ serving / observability
    def serve(self) -> ServerThread:
        """``with fake.serve() as base_url:`` runs the app on a free loopback port."""
        return ServerThread(self.app)

    def reset(self, **options: Any) -> None:
        """Become a new `MeltingSpotFake(**options)` in place: no courses, members, recorded requests,
        injected failures or rate window, and the given options (the defaults for the others). `app`
        stays the same object, so one server serves a fresh fake to test after test. Call it while
        no request is in flight."""
        with self.lock:
            app, lock = self.app, self.lock
            MeltingSpotFake.__init__(self, **options)
            self.app, self.lock = app, lock

    def reset_counters(self, *, rate_window: bool = True) -> None:
        """Clear requests, request_times, json_bodies and the counters (and the rate window)."""
        with self.lock:
            self.requests.clear()
            self.request_times.clear()
            self.json_bodies.clear()
            self.invitation_emails.clear()
            self.throttled = 0
            self.unauthorized = 0
            self.injected_failures = 0
            if rate_window:
                self._window.clear()

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        path_contains: str | None = None,
        method: str | None = None,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` authorised, non-throttled requests that match with ``status``.

        Rules are checked in the order they were added. The default body is
        ``{"statusCode": status, "message": "Injected failure"}``; a 429 gets ``Retry-After: 1``
        unless ``headers`` says otherwise.
        """
        hdrs = dict(headers or {})
        if status == 429:
            hdrs.setdefault("Retry-After", "1")
        with self.lock:
            self._failures.append(_FailureRule(n, status, path_contains, method, body, hdrs))

    def paths(self, method: str | None = None) -> list[str]:
        """Recorded request paths, optionally only for one method."""
        with self.lock:
            return [p for m, p, _ in self.requests if method is None or m == method.upper()]

    def _authorised(self, header: str) -> bool:
        raw_ok = header == self.api_key
        scheme, _, token = header.partition(" ")
        bearer_ok = scheme.lower() == "bearer" and token.strip() == self.api_key
        if self.auth_scheme == "raw":
            return raw_ok
        if self.auth_scheme == "bearer":
            return bearer_ok
        return raw_ok or bearer_ok

    def _admit(self, method: str, path: str, query: dict[str, str], auth: str) -> Response | None:
        """Record the request; return an early response (401/429/injected) or None to route it."""
        with self.lock:
            now = self.monotonic()
            self.requests.append((method, path, query))
            self.request_times.append(now)
            if not self.api_key or not self._authorised(auth):
                self.unauthorized += 1
                return _error(401, "Unauthorized")
            if self.requests_per_10s is not None:
                window = self._window
                while window and window[0] <= now - RATE_WINDOW_SECONDS:
                    window.popleft()
                if len(window) >= self.requests_per_10s:
                    self.throttled += 1
                    wait = window[0] + RATE_WINDOW_SECONDS - now if window else 1.0
                    retry = max(1, math.ceil(wait))
                    return _error(429, "Too Many Requests", {"Retry-After": str(retry)})
                window.append(now)
            for rule in self._failures:
                if rule.remaining > 0 and rule.matches(method, path):
                    rule.remaining -= 1
                    self.injected_failures += 1
                    self._failures = [r for r in self._failures if r.remaining > 0]
                    if rule.status == 204:
                        return Response(status_code=204, headers=rule.headers)
                    body = rule.body if rule.body is not None else {
                        "statusCode": rule.status, "message": "Injected failure"}
                    return JSONResponse(body, status_code=rule.status, headers=rule.headers)
        return None

    # ------------------------------------------------------------------ seeding
    def add_course(
        self,
        title: str,
        privacy: str = "Secret",
        status: str = "Published",
        description: str = "",
        navigation_mode: str = "Flexible",
        *,
        id: str | None = None,
    ) -> str:
        course = Course(id or _new_id(), title, description, privacy, status, navigation_mode)
        with self.lock:
            if course.id in self.courses:
                raise ValueError(f"duplicate course id {course.id}")
            self.courses[course.id] = course
            self._by_course[course.id] = {}
            self.course_groups[course.id] = []
        return course.id

    def _make_member(
        self, email: str, firstname: str, lastname: str, status: str, role: str, id: str | None
    ) -> Member:
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown member status {status!r}")
        if self._email_index.get(email.lower()) is not None:
            raise ValueError(f"member {email} already exists")
        member = Member(
            id=id or _new_id(), email=email, firstname=firstname, lastname=lastname, status=status,
            role=role, user_id=None if status in ("Invited", "Pending") else _new_id(),
            updated_at=self.clock(),
        )
        if member.id in self.members:
            raise ValueError(f"duplicate member id {member.id}")
        self.members[member.id] = member
        self._email_index[email.lower()] = member.id
        self._order[member.id] = len(self._order)
        return member

    def add_member(
        self,
        email: str,
        firstname: str = "",
        lastname: str = "",
        status: str = "Accepted",
        role: str = "Member",
        *,
        id: str | None = None,
    ) -> str:
        """Add a spot member; returns its id. Emails are unique case-insensitively (ValueError)."""
        with self.lock:
            return self._make_member(email, firstname, lastname, status, role, id).id

    def add_members(
        self,
        emails: Iterable[str],
        *,
        status: str = "Accepted",
        role: str = "Member",
    ) -> list[str]:
        """Bulk-add members (names derived from the local part, e.g. ``ann.lee`` → Ann / Lee)."""
        ids: list[str] = []
        with self.lock:
            for email in emails:
                local = email.split("@", 1)[0]
                first, _, last = local.partition(".")
                ids.append(self._make_member(
                    email, first.capitalize(), last.capitalize(), status, role, None).id)
        return ids

    def seed_members(self, n: int, *, domain: str = "example.com", prefix: str = "user",
                     status: str = "Accepted") -> list[str]:
        """Add ``n`` members ``{prefix}{i:05d}@{domain}`` (firstname ``User``, lastname ``{i}``)."""
        ids: list[str] = []
        with self.lock:
            for i in range(n):
                ids.append(self._make_member(
                    f"{prefix}{i:05d}@{domain}", prefix.capitalize(), str(i), status, "Member", None).id)
        return ids

    def _make_participant(
        self,
        course_id: str,
        member_id: str,
        status: str,
        invited_at: datetime | None,
        started_at: datetime | None,
        completed_at: datetime | None,
        completion_rate: int | None,
        unenrolled_at: datetime | None = None,
        last_activity_at: datetime | None = None,
        invited_by: str | None = None,
    ) -> Participant:
        if course_id not in self.courses:
            raise KeyError(f"unknown course {course_id}")
        if member_id not in self.members:
            raise KeyError(f"unknown member {member_id}")
        if status not in PARTICIPANT_STATUSES:
            raise ValueError(f"unknown participant status {status!r}")
        if member_id in self._by_course[course_id]:
            raise ValueError(f"member {member_id} is already a participant of {course_id}")
        now = self.clock()
        invited_at = invited_at or now
        if status in ("Started", "Completed") and started_at is None:
            started_at = now
        if status == "Completed" and completed_at is None:
            completed_at = now
        if status == "Unenrolled" and unenrolled_at is None:
            unenrolled_at = now
        if completion_rate is None:
            completion_rate = 100 if status == "Completed" else 0
        if last_activity_at is None:
            activity = [t for t in (started_at, completed_at) if t is not None]
            last_activity_at = max(activity, key=_as_utc) if activity else None
        p = Participant(
            id=_new_id(), course_id=course_id, member_id=member_id, status=status,
            invited_at=invited_at, started_at=started_at, completed_at=completed_at,
            unenrolled_at=unenrolled_at, last_activity_at=last_activity_at,
            completion_rate=completion_rate, invited_by=invited_by,
        )
        self.participants[p.id] = p
        self._by_course[course_id][member_id] = p.id
        self._order[p.id] = len(self._order)
        return p

    def add_participant(
        self,
        course_id: str,
        member_id: str,
        status: str = "Invited",
        invited_at: datetime | None = None,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        completion_rate: int | None = None,
        *,
        unenrolled_at: datetime | None = None,
        last_activity_at: datetime | None = None,
    ) -> str:
        """Add a course participant; returns its id.

        Missing timestamps are filled from ``clock()`` to fit ``status`` (invitedAt always;
        startedAt for Started/Completed; completedAt for Completed; unenrolledAt for Unenrolled).
        ``completion_rate`` defaults to 100 for Completed, else 0.
        """
        with self.lock:
            return self._make_participant(
                course_id, member_id, status, invited_at, started_at, completed_at, completion_rate,
                unenrolled_at, last_activity_at).id

    def add_participants(
        self, course_id: str, member_ids: Iterable[str], status: str = "Invited",
        completion_rate: int | None = None,
    ) -> list[str]:
        """Bulk-add participants with one status; returns their ids."""
        with self.lock:
            return [
                self._make_participant(course_id, m, status, None, None, None, completion_rate).id
                for m in member_ids
            ]

    def set_participant_status(
        self, participant_id: str, status: str, *, at: datetime | None = None,
        completion_rate: int | None = None,
    ) -> None:
        """Simulate progress: set status and the matching timestamp (and lastActivityAt)."""
        if status not in PARTICIPANT_STATUSES:
            raise ValueError(f"unknown participant status {status!r}")
        with self.lock:
            p = self.participants[participant_id]
            when = at or self.clock()
            p.status = status
            if status == "Invited":
                p.invited_at, p.unenrolled_at = when, None
            elif status == "Started":
                p.started_at = p.started_at or when
                p.last_activity_at = when
            elif status == "Completed":
                p.started_at = p.started_at or when
                p.completed_at = p.last_activity_at = when
                p.completion_rate = 100
            else:
                p.unenrolled_at = when
            if completion_rate is not None:
                p.completion_rate = completion_rate

    def add_group(self, name: str, description: str = "") -> str:
        group = Group(_new_id(), name, description)
        with self.lock:
            self.groups[group.id] = group
        return group.id

    # ------------------------------------------------------------------ lookups (for assertions)
    def member_by_email(self, email: str) -> Member | None:
        with self.lock:
            mid = self._email_index.get(email.lower())
            return None if mid is None else self.members[mid]

    def participant_for(self, course_id: str, member_id: str) -> Participant | None:
        with self.lock:
            pid = self._by_course.get(course_id, {}).get(member_id)
            return None if pid is None else self.participants[pid]

    def course_participants(self, course_id: str) -> list[Participant]:
        with self.lock:
            return [self.participants[pid] for pid in self._by_course[course_id].values()]

    # ------------------------------------------------------------------ serialisation
    def _ts(self, dt: datetime | None) -> str | int | None:
        return _ms(dt) if self.timestamps == "ms" else _iso(dt)

    def participant_json(self, p: Participant) -> dict[str, Any]:
        m = self.members[p.member_id]
        return {
            "id": p.id,
            "courseId": p.course_id,
            "spotMemberId": p.member_id,
            "spotMemberEmail": m.email,
            "spotMemberFirstname": m.firstname or None,
            "spotMemberLastname": m.lastname or None,
            "status": p.status,
            "invitedAt": self._ts(p.invited_at),
            "startedAt": self._ts(p.started_at),
            "completedAt": self._ts(p.completed_at),
            "unenrolledAt": self._ts(p.unenrolled_at),
            "lastActivityAt": self._ts(p.last_activity_at),
            "completionRate": p.completion_rate,
        }

    def member_json(self, m: Member) -> dict[str, Any]:
        return {
            "id": m.id,
            "spotId": self.spot_id,
            "userId": m.user_id,
            "email": m.email,
            "title": m.title,
            "lang": m.lang,
            "role": m.role,
            "customRoleId": m.custom_role_id,
            "status": m.status,
            "firstname": m.firstname,
            "lastname": m.lastname,
            "warnings": m.warnings,
            "embedBaseUrls": {"default": f"https://{self.spot_id[:8]}.meltingspot.io"},
            "updatedAt": _ms(m.updated_at),
            "lastActivityAt": _ms(m.last_activity_at),
        }

    @staticmethod
    def course_json(c: Course) -> dict[str, Any]:
        return {
            "id": c.id, "title": c.title, "description": c.description, "privacy": c.privacy,
            "status": c.status, "navigationMode": c.navigation_mode,
        }

    @staticmethod
    def group_json(g: Group) -> dict[str, Any]:
        return {"id": g.id, "name": g.name, "description": g.description, "emoji": g.emoji, "icon": g.icon}

    # ------------------------------------------------------------------ request helpers
    def _check_query(self, request: Request, allowed: frozenset[str]) -> None:
        if not self.strict_query:
            return
        unknown = set(request.query_params.keys()) - allowed - {"page", "limit"}
        if unknown:
            raise ApiError(400, f"Unknown query parameter(s): {', '.join(sorted(unknown))}")

    def _page(self, request: Request) -> tuple[int, int]:
        """Return (offset, limit) from ``page``/``limit``."""
        qp = request.query_params
        try:
            page = int(qp["page"]) if qp.get("page") not in (None, "") else self.page_base
            limit = int(qp["limit"]) if qp.get("limit") not in (None, "") else self.default_limit
        except ValueError:
            raise ApiError(400, "page and limit must be integers") from None
        if page < self.page_base:
            raise ApiError(400, f"page must be >= {self.page_base}")
        if limit < 1:
            raise ApiError(400, "limit must be >= 1")
        if limit > self.max_limit:
            if self.limit_overflow == "error":
                raise ApiError(400, f"limit must be <= {self.max_limit}")
            limit = self.max_limit
        return (page - self.page_base) * limit, limit

    @staticmethod
    def _in_values(request: Request, key: str) -> list[str] | None:
        """Values of ``key`` (e.g. ``email[in]``): comma-separated, possibly repeated; None if absent."""
        raw = request.query_params.getlist(key)
        if not raw:
            return None
        return [v.strip() for chunk in raw for v in chunk.split(",") if v.strip()]

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise ApiError(400, MALFORMED) from None

    def _log_body(self, request: Request, body: Any) -> None:
        with self.lock:
            self.json_bodies.append((request.method, request.url.path, body))

    @staticmethod
    def _optional_bool(body: dict[str, Any], key: str) -> None:
        if key in body and not isinstance(body[key], bool):
            raise ApiError(400, MALFORMED)

    def _check_inviter(self, body: dict[str, Any]) -> str | None:
        inviter = body.get("invitedBySpotMemberId")
        if inviter is None:
            return None
        if not isinstance(inviter, str) or inviter not in self.members:
            raise ApiError(400, MALFORMED)
        return inviter

    def _email_invitations(self, body: dict[str, Any], participants: list[Participant]) -> None:
        """No email unless asked for (the course reference documents no default; the spot-member one is false)."""
        if body.get("withEmailNotification") is True:
            self.invitation_emails.extend((p.course_id, self.members[p.member_id].email, p.invited_by)
                                          for p in participants)

    def _invite_locked(self, course_id: str, member_id: str, inviter: str | None) -> Participant | None:
        """Invite one member (lock held). Returns the new/reactivated participant, or None if active."""
        pid = self._by_course[course_id].get(member_id)
        if pid is not None:
            p = self.participants[pid]
            if p.status in ACTIVE_PARTICIPANT_STATUSES:
                return None
            # Re-inviting an Unenrolled participant reactivates the same record.
            p.status, p.invited_at, p.unenrolled_at, p.invited_by = "Invited", self.clock(), None, inviter
            return p
        return self._make_participant(course_id, member_id, "Invited", None, None, None, None,
                                      invited_by=inviter)

    # ------------------------------------------------------------------ routes
    def _routes(self) -> list[Route]:
        return [
            Route("/v1/courses", self.list_courses, methods=["GET"]),
            Route("/v1/courses/{courseId}/participants", self.list_participants, methods=["GET"]),
            Route("/v1/courses/{courseId}/participants", self.invite_participant, methods=["POST"]),
            Route("/v1/courses/{courseId}/participants~bulkInvite", self.bulk_invite, methods=["POST"]),
            Route("/v1/courses/{courseId}/participants/{participantId}", self.get_participant,
                  methods=["GET"]),
            Route("/v1/courses/{courseId}/groups~bulkAdd", self.groups_bulk_add, methods=["POST"]),
            Route("/v1/courses/{courseId}/groups~bulkRemove", self.groups_bulk_remove, methods=["POST"]),
            Route("/v1/spotMembers", self.list_members, methods=["GET"]),
            Route("/v1/spotMembers", self.invite_member, methods=["POST"]),
            Route("/v1/spotMembers~bulkInvite", self.bulk_invite_members, methods=["POST"]),
            Route("/v1/spotMembers/{memberId}", self.get_member, methods=["GET"]),
            Route("/v1/groups", self.list_groups, methods=["GET"]),
        ]

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "Not Found" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, message, exc.headers)

    async def _api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.message)

    @staticmethod
    def _envelope(items: list[Any], total: int) -> JSONResponse:
        return JSONResponse({"items": items, "total": total})

    async def list_courses(self, request: Request) -> Response:
        self._check_query(request, frozenset({"status[eq]", "privacy[eq]"}))
        offset, limit = self._page(request)
        status = request.query_params.get("status[eq]")
        privacy = request.query_params.get("privacy[eq]")
        with self.lock:
            rows = [c for c in self.courses.values()
                    if (status is None or c.status == status) and (privacy is None or c.privacy == privacy)]
            items = [self.course_json(c) for c in rows[offset:offset + limit]]
        return self._envelope(items, len(rows))

    async def list_participants(self, request: Request) -> Response:
        self._check_query(request, frozenset(
            {"email[in]", "firstname[in]", "lastname[in]", "status[eq]", "status[in]"}))
        course_id = request.path_params["courseId"]
        offset, limit = self._page(request)
        emails = self._in_values(request, "email[in]")
        firsts = self._in_values(request, "firstname[in]")
        lasts = self._in_values(request, "lastname[in]")
        statuses = self._in_values(request, "status[in]")
        status_eq = request.query_params.get("status[eq]")
        wanted: set[str] | None = None
        if statuses is not None:
            wanted = set(statuses)
        if status_eq is not None:
            wanted = {status_eq} if wanted is None else wanted & {status_eq}
            statuses = [*(statuses or []), status_eq]
        if statuses and not set(statuses) <= PARTICIPANT_STATUSES:
            raise ApiError(400, "Invalid status filter")
        email_set = None if emails is None else {e.lower() for e in emails}
        first_set = None if firsts is None else set(firsts)
        last_set = None if lasts is None else set(lasts)
        with self.lock:
            index = self._by_course.get(course_id)
            if index is None:
                raise ApiError(404, "Course not found")
            members = self.members
            if email_set is not None:
                # Batch lookup by email through the index, kept in creation order.
                mids = (self._email_index.get(e) for e in email_set)
                pids = sorted((index[m] for m in mids if m is not None and m in index),
                              key=self._order.__getitem__)
                rows = [self.participants[pid] for pid in pids]
            else:
                rows = [self.participants[pid] for pid in index.values()]
            if first_set is not None:
                rows = [p for p in rows if members[p.member_id].firstname in first_set]
            if last_set is not None:
                rows = [p for p in rows if members[p.member_id].lastname in last_set]
            if wanted is not None:
                rows = [p for p in rows if p.status in wanted]
            items = [self.participant_json(p) for p in rows[offset:offset + limit]]
        return self._envelope(items, len(rows))

    async def get_participant(self, request: Request) -> Response:
        course_id = request.path_params["courseId"]
        pid = request.path_params["participantId"]
        with self.lock:
            if course_id not in self.courses:
                raise ApiError(404, "Course not found")
            p = self.participants.get(pid)
            if p is None or p.course_id != course_id:
                raise ApiError(404, "Course participant not found")
            return JSONResponse(self.participant_json(p))

    async def invite_participant(self, request: Request) -> Response:
        course_id = request.path_params["courseId"]
        body = await self._json_body(request)
        self._log_body(request, body)
        with self.lock:
            if course_id not in self.courses:
                raise ApiError(404, "Course not found")
            if not isinstance(body, dict) or not isinstance(body.get("spotMemberId"), str):
                raise ApiError(400, MALFORMED)
            self._optional_bool(body, "withEmailNotification")
            inviter = self._check_inviter(body)
            member = self.members.get(body["spotMemberId"])
            if member is None or member.status in self.uninvitable_member_statuses:
                raise ApiError(400, MALFORMED)
            p = self._invite_locked(course_id, member.id, inviter)
            if p is None:
                return JSONResponse({"message": "Member already invited"}, status_code=200)
            self._email_invitations(body, [p])
            return JSONResponse(self.participant_json(p), status_code=201)

    async def bulk_invite(self, request: Request) -> Response:
        course_id = request.path_params["courseId"]
        body = await self._json_body(request)
        self._log_body(request, body)
        with self.lock:
            if course_id not in self.courses:
                raise ApiError(404, "Course not found")
            ids = body.get("spotMemberIds") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise ApiError(400, MALFORMED)
            assert isinstance(body, dict)
            if len(ids) > self.max_bulk:
                raise ApiError(413, "Payload is too large")
            self._optional_bool(body, "withEmailNotification")
            inviter = self._check_inviter(body)
            unique = list(dict.fromkeys(ids))
            for mid in unique:
                member = self.members.get(mid)
                if member is None or member.status in self.uninvitable_member_statuses:
                    raise ApiError(400, MALFORMED)
            created = [p for mid in unique if (p := self._invite_locked(course_id, mid, inviter)) is not None]
            self._email_invitations(body, created)
            if not created:
                return JSONResponse({"message": "Members already invited"}, status_code=200)
            return JSONResponse([self.participant_json(p) for p in created], status_code=201)

    async def _group_ids(self, request: Request) -> tuple[str, list[str]]:
        course_id = request.path_params["courseId"]
        body = await self._json_body(request)
        self._log_body(request, body)
        ids = body.get("groupIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ApiError(400, MALFORMED)
        return course_id, ids

    async def groups_bulk_add(self, request: Request) -> Response:
        course_id, ids = await self._group_ids(request)
        with self.lock:
            if course_id not in self.courses:
                raise ApiError(404, "Course not found")
            if any(g not in self.groups for g in ids):
                raise ApiError(400, MALFORMED)
            linked = self.course_groups[course_id]
            linked.extend(g for g in dict.fromkeys(ids) if g not in linked)
        return Response(status_code=204)

    async def groups_bulk_remove(self, request: Request) -> Response:
        course_id, ids = await self._group_ids(request)
        with self.lock:
            if course_id not in self.courses:
                raise ApiError(404, "Course not found")
            self.course_groups[course_id] = [g for g in self.course_groups[course_id] if g not in ids]
        return Response(status_code=204)

    async def list_members(self, request: Request) -> Response:
        self._check_query(request, frozenset({
            "email[in]", "firstname[in]", "lastname[in]", "customRoleId[eq]", "invitationDate[before]",
            "invitationDate[after]", "registrationDate[before]", "registrationDate[after]"}))
        offset, limit = self._page(request)
        emails = self._in_values(request, "email[in]")
        firsts = self._in_values(request, "firstname[in]")
        lasts = self._in_values(request, "lastname[in]")
        with self.lock:
            if emails is not None:
                # Case-insensitive exact match through the email index, kept in creation order.
                ids = {self._email_index[e.lower()] for e in emails if e.lower() in self._email_index}
                rows = [self.members[i] for i in sorted(ids, key=self._order.__getitem__)]
            else:
                rows = list(self.members.values())
            if firsts is not None:
                fs = set(firsts)
                rows = [m for m in rows if m.firstname in fs]
            if lasts is not None:
                ls = set(lasts)
                rows = [m for m in rows if m.lastname in ls]
            items = [self.member_json(m) for m in rows[offset:offset + limit]]
        return self._envelope(items, len(rows))

    async def get_member(self, request: Request) -> Response:
        with self.lock:
            m = self.members.get(request.path_params["memberId"])
            if m is None:
                raise ApiError(404, "Spot member not found")
            return JSONResponse(self.member_json(m))

    @staticmethod
    def _valid_email(value: Any) -> bool:
        if not isinstance(value, str) or value != value.strip() or " " in value:
            return False
        local, at, domain = value.partition("@")
        return bool(local and at and "." in domain and not domain.startswith("."))

    async def invite_member(self, request: Request) -> Response:
        body = await self._json_body(request)
        self._log_body(request, body)
        if not isinstance(body, dict) or not self._valid_email(body.get("email")):
            raise ApiError(400, MALFORMED)
        self._optional_bool(body, "withEmailNotification")
        with self.lock:
            if body["email"].lower() in self._email_index:
                raise ApiError(409, "Member already exists")
            member = self._make_member(body["email"], "", "", "Invited", "Member", None)
            return JSONResponse(self.member_json(member), status_code=201)

    async def bulk_invite_members(self, request: Request) -> Response:
        body = await self._json_body(request)
        self._log_body(request, body)
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not emails or not all(isinstance(e, str) for e in emails):
            raise ApiError(400, MALFORMED)
        assert isinstance(body, dict)
        if len(emails) > self.max_bulk_emails:
            raise ApiError(413, "Payload is too large")
        self._optional_bool(body, "withEmailNotification")
        created: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        with self.lock:
            for email in emails:
                if not self._valid_email(email) or email.lower() in self._email_index:
                    failed.append({
                        "email": email, "firstname": None, "lastname": None, "title": None,
                        "role": "Member", "avatarUrl": None, "lang": "en", "theme": None, "timezone": None,
                    })
                    continue
                member = self._make_member(email, "", "", "Invited", "Member", None)
                created.append(self.member_json(member))
        return JSONResponse({"created": created, "failed": failed}, status_code=201)

    async def list_groups(self, request: Request) -> Response:
        offset, limit = self._page(request)
        with self.lock:
            rows = list(self.groups.values())
            items = [self.group_json(g) for g in rows[offset:offset + limit]]
        return self._envelope(items, len(rows))
