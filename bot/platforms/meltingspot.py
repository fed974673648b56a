"""MeltingSpot adapter (`shared/reference/meltingspot-api.md`).

An "enrolment" here is a course participant: a spot member invited to a course. MeltingSpot has
no approval step and documents no way to unenrol or block, so the adapter offers enrolling,
bulk invites and linking by member id, and says so plainly for everything else.

What it is careful about, each from the reference:
- every HTTP request (retries included) first waits for the shared per-request budget
  (100 requests / 10 s for the whole spot, shared by every bot process);
- the Authorization header is either the raw key or `Bearer <key>` (the docs do not say which):
  in "auto" mode the first request tries Bearer, on 401 tries the raw key once, and the scheme
  that worked is kept for the life of the adapter;
- lists are read with page/limit until a page is empty or `total` items were read; whether
  pages start at 0 or 1 is found out once (see `_list`);
- filters are sent with literal brackets (`email[in]=a@x.com,b@y.com`), as in the docs' own
  example, rather than the percent-encoded form an HTTP library would produce;
- timestamps are read as ISO strings, epoch milliseconds or epoch seconds;
- no error body shape is documented: the raw body is logged (truncated; never headers or the
  key) and the status becomes a sentence a community manager can act on;
- invitations are never blindly re-sent: after an unclear failure the adapter looks at the
  course's participants first, and a bulk invite skips everyone who is already in the course.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bot.core.capabilities import Capability
from bot.core.models import CompletedLesson, Course, Enrolment, EnrolmentCounts, Lesson, Member, Visibility
from bot.core.pacing import Budget
from bot.platforms.base import CoursePlatform, InviteOptions, NotFound, PlatformError
from bot.platforms.http import Lane, Lanes, OutcomeUnknown, RetryingSender, RetryPolicy, tls_context
from bot.platforms.meltingspot_models import CourseRecord, ParticipantRecord, RawPage, SpotMemberRecord

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)

AuthScheme = Literal["auto", "raw", "bearer"]

COURSES = "/v1/courses"
MEMBERS = "/v1/spotMembers"

EMAIL_BATCH = 50  # emails per `email[in]` lookup
ACTIVE = ("Invited", "Started", "Completed")  # participant statuses that mean "in the course"
UNENROLLED = "Unenrolled"
INACTIVE_MEMBER = frozenset({"Deactivated", "Left", "DeclinedInvitation", "Rejected"})

VISIBILITY = {"public": Visibility.PUBLIC, "secret": Visibility.PRIVATE, "private": Visibility.PRIVATE}

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")

KEY_REFUSED = (
    "MeltingSpot refused the API key (MELTINGSPOT_API_KEY). Check that it is the spot's current secret key "
    "(Spot settings › API Access) and that the spot still has API access: it is a premium feature."
)
INVITE_HINT = "Members who are deactivated, have left the spot or are still pending cannot be invited."


def _visibility(privacy: str | None) -> Visibility:
    return VISIBILITY.get((privacy or "").strip().lower(), Visibility.UNKNOWN)


def _valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def _query(params: dict[str, Any]) -> str:
    """A query string with literal brackets and commas, values otherwise percent-encoded."""
    return "&".join(f"{quote(str(k), safe='[]')}={quote(str(v), safe='@,:')}" for k, v in params.items())


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    """Whatever reason the server gave, from a JSON body of any shape or from plain text."""
    body = _json(response)
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "error", "title"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value if v)
            if isinstance(value, str) and value.strip():
                return _clip(value.strip())
        return ""
    if isinstance(body, str):
        return _clip(body.strip())
    text = response.text.strip()
    if text and not text.startswith("<") and "html" not in response.headers.get("content-type", ""):
        return _clip(text)
    return ""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_enrolment_id(enrolment_id: str) -> tuple[str, str] | None:
    course_id, sep, participant_id = enrolment_id.partition("/")
    if not sep or not _valid_id(course_id) or not _valid_id(participant_id):
        return None
    return course_id, participant_id


class MeltingSpotPlatform(CoursePlatform):
    name = "meltingspot"
    display_name = "MeltingSpot"
    capabilities = frozenset({Capability.ENROL, Capability.BULK_INVITE, Capability.LINK_BY_ID})
    single_course_read = False  # no single-course GET is documented: `get_course` filters the list

    def __init__(
        self,
        base_url: str,
        api_key: str,
        budget: Budget,
        *,
        auth_scheme: AuthScheme = "auto",
        invited_by: str | None = None,
        send_email: bool = False,
        create_missing_members: bool = False,
        chunk_size: int = 100,
        page_limit: int = 100,
        policy: RetryPolicy | None = None,
        timeout: float = 20.0,
        page_base: Literal[0, 1] | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        """`page_base` None means "find out" (see `_list`); set it once a live spot has settled it."""
        if auth_scheme not in ("auto", "raw", "bearer"):
            raise ValueError("auth_scheme must be 'auto', 'raw' or 'bearer'")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.budget = budget
        self.auth_scheme: AuthScheme = auth_scheme
        self._scheme: Literal["raw", "bearer"] | None = None if auth_scheme == "auto" else auth_scheme
        self.invited_by = invited_by
        self.send_email = send_email
        self.invitation_email = send_email
        self.create_missing_members = create_missing_members
        self.chunk_size = max(1, chunk_size)
        self.page_limit = max(1, page_limit)
        self._page_base: int | None = page_base
        self._bulk_limit: int | None = None  # learned from a 413: the server's largest bulk size
        self.bulk_invite_size = self.chunk_size
        self._titles: dict[str, str] = {}
        self._auth_lock = asyncio.Lock()
        # Few requests in flight at once, bounded per kind (see `Lanes`): a slow list must not
        # keep a write or a look-up waiting.
        self.lanes = lanes or Lanes()
        self._lanes = self.lanes.semaphores()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            verify=tls_context(),
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            headers={"Accept": "application/json", "User-Agent": "coursebot"},
            limits=httpx.Limits(max_connections=self.lanes.total, max_keepalive_connections=self.lanes.total),
        )
        self._sender = RetryingSender("MeltingSpot", policy or RetryPolicy(throttle_statuses=frozenset({429})))

    def __repr__(self) -> str:  # never show the key
        return f"MeltingSpotPlatform({self.base_url!r}, auth={self._scheme or self.auth_scheme})"

    @property
    def page_base(self) -> int | None:
        """0 or 1 once known (configured or detected), else None."""
        return self._page_base

    @property
    def detected_auth_scheme(self) -> Literal["raw", "bearer"] | None:
        return self._scheme

    async def aclose(self) -> None:
        await self._client.aclose()

    def rate_budget(self) -> Budget:
        """Every MeltingSpot request, read or write, spends this one budget."""
        return self.budget

    async def check_access(self) -> str:
        """One page of the course list: the key is accepted unless it raises (401/403 -> KEY_REFUSED)."""
        page = await self._page(COURSES, {}, self._page_base if self._page_base is not None else 1, "the course list",
                                probe=True)
        known = f"; {page.total} courses" if page is not None and page.total is not None else ""
        return f"the API key was accepted{known}"

    # ---- HTTP plumbing -------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
        lane: Lane | None = None,
    ) -> httpx.Response:
        """Send one request (with retries) in its lane (by default READ for a GET, else WRITE);
        raise on 401/403, return every other response."""
        url = f"{path}?{_query(params)}" if params else path
        what = f"{method} {path}"
        lane = lane or (Lane.READ if method == "GET" else Lane.WRITE)
        scheme = self._scheme
        if scheme is None:
            async with self._auth_lock:
                scheme = self._scheme
                if scheme is None:
                    return self._authorised(
                        await self._detect_scheme(method, url, json, what, idempotent, lane), what)
        return self._authorised(await self._send(method, url, json, scheme, what, idempotent, lane), what)

    async def _detect_scheme(
        self, method: str, url: str, json: Any, what: str, idempotent: bool, lane: Lane
    ) -> httpx.Response:
        """Bearer first (what the only public client sends); on 401 the raw key, once."""
        response = await self._send(method, url, json, "bearer", what, idempotent, lane)
        if response.status_code != 401:
            self._scheme = "bearer"
            log.info("meltingspot: the API key is accepted as 'Bearer <key>'")
            return response
        response = await self._send(method, url, json, "raw", what, idempotent, lane)
        if response.status_code != 401:
            self._scheme = "raw"
            log.info("meltingspot: the API key is accepted as the raw Authorization header")
        return response

    async def _send(
        self, method: str, url: str, json: Any, scheme: Literal["raw", "bearer"], what: str, idempotent: bool,
        lane: Lane,
    ) -> httpx.Response:
        header = f"Bearer {self._api_key}" if scheme == "bearer" else self._api_key

        async def once() -> httpx.Response:
            async with self._lanes[lane]:
                await self.budget.acquire()  # every attempt spends one unit of the spot's budget
                return await self._client.request(method, url, json=json, headers={"Authorization": header})

        return await self._sender.send(once, what, idempotent=idempotent)

    def _authorised(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code in (401, 403):
            self._log_body(response, what)
            raise PlatformError(KEY_REFUSED)
        return response

    def _log_body(self, response: httpx.Response, what: str) -> None:
        body = _clip(response.text, 500)
        if self._api_key:
            body = body.replace(self._api_key, "[redacted]")
        log.warning("meltingspot: %s answered %s: %s", what, response.status_code, body or "(empty body)")

    def _error(
        self, response: httpx.Response, what: str, *, missing: str | None = None, hint: str = ""
    ) -> PlatformError:
        """The sentence for a failed response (the raw body goes to the log)."""
        self._log_body(response, what)
        status = response.status_code
        if status in (401, 403):
            return PlatformError(KEY_REFUSED)
        if status == 404:
            return NotFound(f"MeltingSpot could not find {missing or 'what was asked for'}.")
        if status == 413:
            return PlatformError("MeltingSpot said the request was too large. Try again with fewer people at once.")
        message = _message(response)
        text = f"MeltingSpot refused it: {_sentence(message)}" if message else (
            f"MeltingSpot refused it (HTTP {status}) without saying why."
        )
        return PlatformError(f"{text} {hint}".strip())

    async def _get_json(
        self, path: str, params: dict[str, Any] | None = None, *, missing: str | None = None, lane: Lane = Lane.READ
    ) -> Any:
        """The JSON body; None on 404 unless `missing` names what must exist (then NotFound)."""
        response = await self._request("GET", path, params=params, lane=lane)
        if response.status_code == 404 and missing is None:
            return None
        if response.status_code >= 400:
            raise self._error(response, f"GET {path}", missing=missing)
        return _json(response)

    async def _page(
        self, path: str, params: dict[str, Any], page: int, missing: str | None, *, probe: bool = False,
        lane: Lane = Lane.LIST,
    ) -> RawPage | None:
        """One page; None when probing and the server refuses the page number (400)."""
        query = {**params, "page": page, "limit": self.page_limit}
        response = await self._request("GET", path, params=query, lane=lane)
        if probe and response.status_code in (400, 422):
            return None
        if response.status_code >= 400:
            raise self._error(response, f"GET {path}", missing=missing or "that list")
        try:
            return RawPage.model_validate(_json(response) or {})
        except ValidationError:
            raise PlatformError("MeltingSpot answered a list request with something that is not a list.") from None

    async def _list(
        self, path: str, model: type[R], params: dict[str, Any] | None = None, *, missing: str | None = None,
        lane: Lane = Lane.LIST,
    ) -> list[R]:
        """Every item of a paged list, validated as `model` (invalid items are logged and skipped).

        Page base (UNCONFIRMED in the docs), found once per adapter and then remembered: the
        first list asks for page=0. A 400 means pages start at 1. Items identical to page=1's
        mean the server treats 0 as 1, so pages start at 1. An empty page 0 of a non-empty list
        also means 1. Anything else means pages start at 0. The probe pages are used as data,
        so detection costs at most one extra request, once.

        Stops when a page is empty, when `total` items were read, or when a page brings nothing
        new (a server that ignores `page` would otherwise loop).
        """
        query = dict(params or {})
        raw: list[Any] = []
        seen: set[str] = set()
        total: int | None = None

        def take(page: RawPage) -> bool:
            """Add a page's items; True when the next page is worth asking for."""
            nonlocal total
            if page.total is not None:
                total = page.total
            added = 0
            for item in page.items:
                key = str(item.get("id")) if isinstance(item, dict) and item.get("id") is not None else None
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                raw.append(item)
                added += 1
            if added == 0:
                return False
            return total is None or len(raw) < total

        number: int
        if self._page_base is None:
            zero = await self._page(path, query, 0, missing, probe=True, lane=lane)
            if zero is None or (not zero.items and (zero.total or 0) > 0):
                self._page_base = 1
                log.info("meltingspot: list pages start at 1")
                number = 1
            elif not zero.items:
                return []  # an empty list says nothing about the page base
            else:
                one = await self._page(path, query, 1, missing, lane=lane)
                assert one is not None
                if one.items == zero.items:
                    self._page_base = 1
                    log.info("meltingspot: list pages start at 1")
                    if not take(one):
                        return self._validate(raw, model, path)
                else:
                    self._page_base = 0
                    log.info("meltingspot: list pages start at 0")
                    if not take(zero) or not take(one):
                        return self._validate(raw, model, path)
                number = 2
        else:
            number = self._page_base
        while True:
            page = await self._page(path, query, number, missing, lane=lane)
            assert page is not None
            if not take(page):
                return self._validate(raw, model, path)
            number += 1

    @staticmethod
    def _validate(raw: list[Any], model: type[R], path: str) -> list[R]:
        records: list[R] = []
        skipped = 0
        for item in raw:
            try:
                records.append(model.model_validate(item))
            except ValidationError:
                skipped += 1
        if skipped:
            log.warning("meltingspot: skipped %d unreadable item(s) from GET %s", skipped, path)
        return records

    # ---- courses ----------------------------------------------------------------------

    @staticmethod
    def _course(record: CourseRecord) -> Course:
        return Course(
            id=record.id,
            title=(record.title or "").strip() or f"Course {record.id}",
            visibility=_visibility(record.privacy),
            active=(record.status or "").strip().lower() != "draft",
            summary=(record.description or "").strip(),
        )

    async def list_courses(self) -> list[Course]:
        courses = sorted(
            (self._course(r) for r in await self._list(COURSES, CourseRecord)), key=lambda c: c.title.lower()
        )
        self._titles = {c.id: c.title for c in courses}
        return courses

    def looks_like_course_id(self, query: str) -> bool:
        return bool(_UUID.match(query.strip()))

    async def get_course(self, course_id: str) -> Course | None:
        """There is no single-course GET: the list is filtered here."""
        if not _valid_id(course_id):
            return None
        return next((c for c in await self.list_courses() if c.id == course_id), None)

    async def count_enrolments(self, course_id: str) -> EnrolmentCounts:
        """Participants who are Invited, Started or Completed, usually in one request.

        Asks for `status[in]=Invited,Started,Completed` and trusts `total` when every item on
        that page has one of those statuses; if the server ignored the filter, counts a full
        listing instead. Nothing is ever pending or blocked on MeltingSpot.
        """
        path = self._participants_path(course_id)
        body = await self._get_json(
            path, {"status[in]": ",".join(ACTIVE), "limit": self.page_limit}, missing=f"course {course_id}",
            lane=Lane.LIST,
        )
        try:
            page = RawPage.model_validate(body or {})
        except ValidationError:
            page = RawPage()
        items = self._validate(page.items, ParticipantRecord, path)
        if page.total is not None and all(r.status in ACTIVE for r in items):
            count = max(page.total, len(items))
        else:
            records = await self._participants(course_id)
            count = sum(1 for r in records if r.status != UNENROLLED)
        return EnrolmentCounts(total=count, approved=count, pending=0, blocked=0)

    # ---- members ----------------------------------------------------------------------

    @staticmethod
    def _member(record: SpotMemberRecord) -> Member:
        return Member(id=record.id, email=(record.email or "").strip(), full_name=record.full_name)

    async def _lookup(self, emails: list[str]) -> dict[str, Member]:
        found: dict[str, tuple[bool, Member]] = {}
        for start in range(0, len(emails), EMAIL_BATCH):
            batch = emails[start : start + EMAIL_BATCH]
            wanted = set(batch)
            records = await self._list(MEMBERS, SpotMemberRecord, {"email[in]": ",".join(batch)}, lane=Lane.READ)
            for record in records:
                email = (record.email or "").strip().lower()
                if email not in wanted:
                    continue  # the filter may be looser than exact: match here
                inactive = record.status in INACTIVE_MEMBER
                if email not in found or (found[email][0] and not inactive):
                    found[email] = (inactive, self._member(record))
        return {email: member for email, (_, member) in found.items()}

    async def find_members_by_email(self, emails: Iterable[str], *, create_missing: bool = True) -> dict[str, Member]:
        """Exact, case-insensitive matches keyed by the lower-cased email, looked up 50 at a time.

        With `create_missing_members`, an email with no member is added to the spot
        (`POST /v1/spotMembers`; a 409 means it exists after all, so it is looked up again).
        When several emails are asked for, one the server refuses to add is logged and left
        out; a single email's refusal is raised as a sentence.
        """
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        usable = [e for e in wanted if "," not in e]  # a comma would split the `email[in]` filter
        found = await self._lookup(usable)
        if self.create_missing_members and create_missing:
            for email in [e for e in usable if e not in found]:
                try:
                    member = await self._create_member(email)
                except PlatformError as exc:
                    if len(usable) == 1 or exc.message == KEY_REFUSED:
                        raise
                    log.warning("meltingspot: could not add a member to the spot: %s", exc.message)
                    continue
                if member is not None:
                    found[email] = member
        return {e: found[e] for e in usable if e in found}

    async def _create_member(self, email: str) -> Member | None:
        # Adding someone to the spot stays silent: the course invitation (withEmailNotification as
        # MELTINGSPOT_INVITE_EMAIL and --no-email say) is what tells them.
        body = {"email": email, "withEmailNotification": False}
        try:
            response: httpx.Response | None = await self._request("POST", MEMBERS, json=body, idempotent=False)
        except OutcomeUnknown:
            log.warning("meltingspot: adding a member was not confirmed; looking before trying again")
            response = None
        if response is not None and response.status_code in (200, 201):
            try:
                return self._member(SpotMemberRecord.model_validate(_json(response)))
            except ValidationError:
                pass  # created, but unreadable: look it up
        elif response is not None and response.status_code != 409:
            raise self._error(response, f"POST {MEMBERS}", hint=f"({email} could not be added to the spot.)")
        member = (await self._lookup([email])).get(email)
        if member is None and response is None:
            raise PlatformError(
                f"MeltingSpot did not confirm that {email} was added to the spot, and they are not there yet. "
                "Try again in a minute.",
                retryable=True,
            )
        return member

    async def get_member(self, member_id: str) -> Member | None:
        if not _valid_id(member_id):
            return None
        body = await self._get_json(f"{MEMBERS}/{quote(member_id)}")
        if not body:
            return None
        try:
            return self._member(SpotMemberRecord.model_validate(body))
        except ValidationError:
            log.warning("meltingspot: unreadable spot member %s", member_id)
            return None

    async def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        """No batch GET by id is documented: one GET each, a few at a time."""
        ids = [i for i in dict.fromkeys(member_ids) if _valid_id(i)]
        members = await asyncio.gather(*(self.get_member(i) for i in ids))
        return {i: m for i, m in zip(ids, members, strict=True) if m is not None}

    # ---- enrolments -------------------------------------------------------------------

    @staticmethod
    def _participants_path(course_id: str) -> str:
        return f"{COURSES}/{quote(course_id)}/participants"

    async def _participants(self, course_id: str, filters: dict[str, Any] | None = None) -> list[ParticipantRecord]:
        """Every participant of a course (a long list), or those `filters` pick (a look-up)."""
        return await self._list(
            self._participants_path(course_id), ParticipantRecord, filters, missing=f"course {course_id}",
            lane=Lane.READ if filters else Lane.LIST,
        )

    def _enrolment(self, record: ParticipantRecord, course_id: str) -> Enrolment:
        cid = record.course_id or course_id
        return Enrolment(
            id=f"{cid}/{record.id}",
            course_id=cid,
            member_id=record.spot_member_id,
            course_title=self._titles.get(cid, ""),
            member_name=record.member_name,
            approved=record.status != UNENROLLED,
            blocked=record.status == UNENROLLED,
            created_on=record.invited_at,
            updated_on=record.latest_change,
            last_access=record.last_activity_at,
            completion_rate=record.completion_rate,
            status=record.status,
        )

    async def find_enrolment(self, course_id: str, member_id: str) -> Enrolment | None:
        """The member's participant record in the course, found through their email."""
        if not (_valid_id(course_id) and _valid_id(member_id)):
            return None
        member = await self.get_member(member_id)
        if member is None:
            return None
        email = member.email.strip()
        filters = {"email[in]": email} if email and "," not in email else None
        records = [r for r in await self._participants(course_id, filters) if r.spot_member_id == member_id]
        if not records:
            return None
        records.sort(key=lambda r: r.status == UNENROLLED)  # an active record first
        return self._enrolment(records[0], course_id)

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        """`enrolment_id` is "<courseId>/<participantId>", as this adapter writes it."""
        parsed = _parse_enrolment_id(enrolment_id)
        if parsed is None:
            return None
        course_id, participant_id = parsed
        body = await self._get_json(f"{self._participants_path(course_id)}/{quote(participant_id)}")
        if not body:
            return None
        try:
            return self._enrolment(ParticipantRecord.model_validate(body), course_id)
        except ValidationError:
            log.warning("meltingspot: unreadable course participant %s", enrolment_id)
            return None

    async def list_enrolments(
        self,
        *,
        course_id: str | None = None,
        pending_only: bool = False,
        updated_since: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[Enrolment]:
        """Participants of one course, or of every course. Date filters are applied here (the API
        has none for participants); nothing is ever pending on MeltingSpot."""
        if pending_only:
            return []
        if course_id is not None:
            if not _valid_id(course_id):
                return []
            course_ids = [course_id]
        else:
            course_ids = [c.id for c in await self.list_courses()]
        enrolments: list[Enrolment] = []
        for cid in course_ids:
            try:
                records = await self._participants(cid)
            except NotFound:
                if course_id is not None:
                    raise
                continue  # deleted while we were reading
            enrolments.extend(self._enrolment(r, cid) for r in records)
        if created_since is not None:
            floor = _aware(created_since)
            enrolments = [e for e in enrolments if e.created_on is None or e.created_on >= floor]
        if updated_since is not None:
            floor = _aware(updated_since)
            enrolments = [e for e in enrolments if e.updated_on is None or e.updated_on >= floor]
        return enrolments

    def _invite_body(self, options: InviteOptions | None = None, **ids: Any) -> dict[str, Any]:
        send_email = options.send_email if options and options.send_email is not None else self.send_email
        body: dict[str, Any] = {**ids, "withEmailNotification": send_email}
        invited_by = (options.invited_by if options else None) or self.invited_by
        if invited_by:
            body["invitedBySpotMemberId"] = invited_by
        return body

    async def create_enrolment(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment:
        """Invite one member (201 → the new participant; 200 "already invited" → the existing one)."""
        if not approved:
            raise self.unsupported(
                "enrolments waiting for approval (it has no approval step: an invited member is in the course)"
            )
        if not _valid_id(course_id):
            raise NotFound(f"MeltingSpot could not find course {course_id}.")
        if not _valid_id(member_id):
            raise NotFound(f"MeltingSpot could not find member {member_id}.")
        path = self._participants_path(course_id)
        body = self._invite_body(spotMemberId=member_id)
        for _ in range(2):
            try:
                response = await self._request("POST", path, json=body, idempotent=False)
            except OutcomeUnknown:
                log.warning("meltingspot: invitation not confirmed; looking before trying again")
                existing = await self.find_enrolment(course_id, member_id)
                if existing is not None and existing.approved:
                    return existing
                continue
            if response.status_code == 201:
                try:
                    return self._enrolment(ParticipantRecord.model_validate(_json(response)), course_id)
                except ValidationError:
                    return await self._must_find(course_id, member_id)
            if response.status_code in (200, 204):
                return await self._must_find(course_id, member_id)
            raise self._error(
                response, f"POST {path}", missing=f"course {course_id} (or member {member_id})", hint=INVITE_HINT
            )
        return await self._must_find(course_id, member_id)

    async def _must_find(self, course_id: str, member_id: str) -> Enrolment:
        enrolment = await self.find_enrolment(course_id, member_id)
        if enrolment is None:
            raise PlatformError(
                "MeltingSpot did not confirm the invitation, and the member is not among the course's "
                "participants. Try again in a minute.",
                retryable=True,
            )
        return enrolment

    async def invite_members(
        self, course_id: str, member_ids: list[str], *, checked: bool = False, options: InviteOptions | None = None
    ) -> dict[str, Enrolment | PlatformError]:
        """Invite many members to a course: every requested id maps to its participant or an error.

        One listing of the course's participants first (skipped when `checked`: the caller has
        just listed the course): members already Invited, Started or Completed are not invited
        again (Unenrolled ones are re-invited). The rest go to
        `participants~bulkInvite` in chunks of at most `chunk_size`. A 413 or 400 splits the chunk
        in half (a 413 also lowers the chunk size for the rest); a single member still refused
        gets the server's reason. 201 (the new participants) and 200/204 ("already invited")
        are successes. Afterwards a listing of the course finds whoever the answers did not
        show. A chunk whose outcome is unknown (5xx or timeout) is re-sent, once, only for the
        members that listing does not show. `options` sets `withEmailNotification` (default: the
        `send_email` this adapter was made with) and `invitedBySpotMemberId` for every chunk.
        """
        wanted = list(dict.fromkeys(m.strip() for m in member_ids if m and m.strip()))
        results: dict[str, Enrolment | PlatformError] = {
            m: NotFound(f"{m} is not a MeltingSpot member id.") for m in wanted if not _valid_id(m)
        }
        valid = [m for m in wanted if m not in results]
        if valid:
            current = {} if checked else {r.spot_member_id: r for r in await self._participants(course_id)}
            to_invite: list[str] = []
            for m in valid:
                record = current.get(m)
                if record is not None and record.status != UNENROLLED:
                    results[m] = self._enrolment(record, course_id)
                else:
                    to_invite.append(m)
            pending = to_invite
            for round_ in range(2):
                if not pending:
                    break
                created: dict[str, ParticipantRecord] = {}
                uncertain: list[str] = []
                await self._invite_all(course_id, pending, created, results, uncertain, options)
                for m, record in created.items():
                    results[m] = self._enrolment(record, course_id)
                unresolved = [m for m in pending if m not in results]
                if not unresolved:
                    break
                listed = {r.spot_member_id: r for r in await self._participants(course_id)}
                for m in unresolved:
                    record = listed.get(m)
                    if record is not None and record.status != UNENROLLED:
                        results[m] = self._enrolment(record, course_id)
                # Only a chunk whose fate is unknown is worth sending again, and only once.
                pending = [m for m in uncertain if m not in results] if round_ == 0 else []
            for m in to_invite:
                if m not in results:
                    results[m] = PlatformError(
                        f"MeltingSpot did not confirm the invitation of member {m}, and they are not among the "
                        "course's participants. Try again in a minute.",
                        retryable=True,
                    )
        return {m: results[m] for m in wanted}

    async def _invite_all(
        self,
        course_id: str,
        member_ids: list[str],
        created: dict[str, ParticipantRecord],
        results: dict[str, Enrolment | PlatformError],
        uncertain: list[str],
        options: InviteOptions | None,
    ) -> None:
        rest = list(member_ids)
        while rest:
            size = min(self.chunk_size, self._bulk_limit or self.chunk_size)
            chunk, rest = rest[:size], rest[size:]
            await self._invite_chunk(course_id, chunk, created, results, uncertain, options)

    async def _invite_chunk(
        self,
        course_id: str,
        chunk: list[str],
        created: dict[str, ParticipantRecord],
        results: dict[str, Enrolment | PlatformError],
        uncertain: list[str],
        options: InviteOptions | None,
    ) -> None:
        path = f"{self._participants_path(course_id)}~bulkInvite"
        try:
            response = await self._request(
                "POST", path, json=self._invite_body(options, spotMemberIds=chunk), idempotent=False
            )
        except OutcomeUnknown:
            log.warning("meltingspot: a bulk invitation of %d member(s) was not confirmed", len(chunk))
            uncertain.extend(chunk)
            return
        status = response.status_code
        if status == 201:
            wanted = set(chunk)
            body = _json(response)
            for item in body if isinstance(body, list) else []:
                try:
                    record = ParticipantRecord.model_validate(item)
                except ValidationError:
                    continue
                if record.spot_member_id in wanted:
                    created[record.spot_member_id] = record
            return
        if status in (200, 204):
            return  # "already invited": the listing afterwards finds them
        if status in (400, 413) and len(chunk) > 1:
            if status == 413:
                self._bulk_limit = max(1, min(self._bulk_limit or len(chunk), len(chunk) // 2))
                self.bulk_invite_size = min(self.chunk_size, self._bulk_limit)
                log.info("meltingspot: bulk invite of %d was too large; sending at most %d", len(chunk),
                         self._bulk_limit)
            half = len(chunk) // 2
            await self._invite_all(course_id, chunk[:half], created, results, uncertain, options)
            await self._invite_all(course_id, chunk[half:], created, results, uncertain, options)
            return
        if status in (400, 413):
            error = self._error(response, f"POST {path}", hint=INVITE_HINT)
            results[chunk[0]] = PlatformError(f"Member {chunk[0]} was not invited. {error.message}")
            return
        raise self._error(response, f"POST {path}", missing=f"course {course_id}")

    async def set_access(
        self, enrolment: Enrolment, *, approved: bool | None = None, blocked: bool | None = None
    ) -> Enrolment:
        raise self.unsupported(
            "approving, blocking or unenrolling participants (it has no approval step, and no unenrol or block "
            "endpoint is documented; do it in the spot's admin pages)"
        )

    # ---- lessons ----------------------------------------------------------------------

    async def list_lessons(self, course_id: str) -> list[Lesson]:
        raise self.unsupported("listing a course's lessons (course steps are not in its public API)")

    async def list_completed_lessons(
        self, *, enrolment_id: str | None = None, since: datetime | None = None
    ) -> list[CompletedLesson]:
        raise self.unsupported(
            "completed lessons (it reports only each participant's status and completion rate)"
        )
