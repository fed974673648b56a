"""Nexudus Spaces adapter (`shared/reference/nexudus-api.md`).

What it is careful about, each from the reference:
- the token comes from a form-encoded POST /api/token and is renewed once on 401;
- lists are read page by page until HasNextPage is false (or a page is empty);
- an update GETs the full record, changes it, and PUTs the whole object back;
- a response is a success only if the HTTP status is 2xx AND WasSuccessful is not false
  AND Errors is empty; Errors[] becomes one sentence;
- writes wait for the shared write budget; 409/429 honour Retry-After;
- email matches are made exact and case-insensitive here, since the filter is partial;
- a create is never blindly retried: after an unclear failure it looks first. A new course is
  recognised by its exact title and its creation time (not by the unconfirmed `SystemId`), against
  Nexudus's own clock as its `Date` headers tell it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

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
from bot.core.pacing import Budget
from bot.platforms.base import (
    CoursePlatform,
    CreationUnclear,
    NotFound,
    PlatformError,
    ValidationFailed,
)
from bot.platforms.http import Lane, Lanes, OutcomeUnknown, RetryingSender, RetryPolicy, tls_context
from bot.platforms.nexudus_models import (
    BusinessRecord,
    CompletedLessonRecord,
    CourseMemberRecord,
    CourseRecord,
    CoworkerRecord,
    LessonRecord,
    Mutation,
    Page,
    SectionRecord,
    TariffRecord,
)

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)

VISIBILITY = {1: Visibility.PUBLIC, 2: Visibility.HIDDEN, 3: Visibility.PRIVATE, 4: Visibility.PAID}
UNLOCK = {1: "Immediate", 2: "Sequential", 3: "Timed"}
COMPLETION = {1: "None", 2: "Visited", 3: "Button", 4: "Video"}

COURSES = "/api/content/courses"
COURSE_MEMBERS = "/api/content/coursemembers"
COMPLETED = "/api/content/coursecompletedlessons"
LESSONS = "/api/content/courselessons"
COWORKERS = "/api/spaces/coworkers"
SECTIONS = "/api/content/coursesections"
TARIFFS = "/api/billing/tariffs"
BUSINESSES = "/api/sys/businesses"  # the official CLI's "Business … sys" entity; the fallback covers a refusal
VISIBILITY_CODE = {v: k for k, v in VISIBILITY.items()}
# How much older than the moment before a create a new course's CreatedOn may look and still be
# that create's: Date has whole seconds, and Nexudus's web and database clocks need not agree.
CREATED_SKEW = timedelta(minutes=5)
# Course properties Nexudus may blame in Errors[], and the CourseDraft field each one came from.
COURSE_FIELDS = {
    "title": "title", "businessid": "location_id", "business": "location_id", "hostid": "host_id",
    "host": "host_id", "displayorder": "display_order", "visibility": "visibility", "tariffid": "plan_id",
    "tariff": "plan_id", "summarytext": "summary", "fulldescription": "description", "groupname": "group_name",
    "showinhomepage": "show_on_home_page", "active": "active",
}


def _visibility(value: int | str | None) -> Visibility:
    if isinstance(value, str):
        if value.isdigit():
            value = int(value)
        else:
            return next((v for v in Visibility if v.value.lower() == value.lower()), Visibility.UNKNOWN)
    return VISIBILITY.get(value or 0, Visibility.UNKNOWN)


def nexudus_time(moment: datetime) -> str:
    """The documented range-filter format, minute precision, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def errors_sentence(body: Any, fallback: str) -> str:
    """Turn a Nexudus validation envelope into one sentence a manager can act on."""
    try:
        mutation = Mutation.model_validate(body)
    except Exception:
        return fallback
    parts = []
    for error in mutation.Errors or []:
        field = error.PropertyName or ""
        message = (error.Message or "").strip().rstrip(".")
        parts.append(f"{field} {message}".strip() if field and not message.startswith(field) else message)
    if parts:
        return "Nexudus refused it: " + "; ".join(p for p in parts if p) + "."
    if mutation.Message:
        return f"Nexudus refused it: {mutation.Message.strip()}"
    return fallback


def _refusal(body: Any, fallback: str) -> PlatformError:
    """A refused write: ValidationFailed (with each property's complaint) when Errors[] names any."""
    sentence = errors_sentence(body, fallback)
    try:
        errors = Mutation.model_validate(body).Errors or []
    except Exception:
        errors = []
    if not errors:
        return PlatformError(sentence)
    fields: dict[str, str] = {}
    for error in errors:
        name = error.PropertyName or ""
        message = (error.Message or "").strip().rstrip(".")
        fields[name] = f"{fields[name]}; {message}" if name in fields else message
    return ValidationFailed(sentence, fields)


def _inline(message: str) -> str:
    """A Nexudus complaint about one input, said under that input."""
    if message.lower().startswith(("is ", "must ", "should ", "cannot ", "can't ")):
        return f"Nexudus says this {message}."
    return f"Nexudus refused this: {message}."


class NexudusPlatform(CoursePlatform):
    name = "nexudus"
    display_name = "Nexudus"
    capabilities = frozenset(
        {
            Capability.ENROL,
            Capability.APPROVAL,
            Capability.BLOCK,
            Capability.BULK_INVITE,
            Capability.LESSONS,
            Capability.COMPLETIONS,
            Capability.CREATE_COURSE,
            Capability.LINK_BY_ID,
        }
    )

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        writes: Budget,
        *,
        policy: RetryPolicy | None = None,
        page_size: int = 500,
        timeout: float = 20.0,
        settle: float = 2.0,
        lanes: Lanes | None = None,
    ) -> None:
        """`settle`: seconds to wait, after a create's answer was lost, before looking for what it made."""
        self.base_url = base_url.rstrip("/")
        self.settle = settle
        self._skew = timedelta(0)  # Nexudus's clock minus ours, from the latest Date header
        self._username = username
        self._password = password
        self.writes = writes
        self.page_size = page_size
        # Few requests in flight at once, bounded per kind (see `Lanes`): Nexudus throttles bursts,
        # and a slow list must not keep a write or a look-up waiting.
        self.lanes = lanes or Lanes()
        self._lanes = self.lanes.semaphores()
        connections = self.lanes.total + 1  # + the token request
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            verify=tls_context(),
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Accept": "application/json", "User-Agent": "coursebot"},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._sender = RetryingSender(
            "Nexudus", policy or RetryPolicy(throttle_statuses=frozenset({409, 429}))
        )
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    def rate_budget(self) -> Budget:
        return self.writes

    async def check_access(self) -> str:
        """A token login (unless this adapter holds a token already) and one one-record read."""
        if self._token is None:
            await self._login(None)
        total = await self._total(COURSES, {})
        return f"logged in as {self._username}; {total} courses"

    # ---- HTTP plumbing -------------------------------------------------------------

    async def _login(self, stale: str | None) -> str:
        async with self._token_lock:
            if self._token and self._token != stale:
                return self._token
            response = await self._sender.send(
                lambda: self._client.post(
                    "/api/token",
                    data={"grant_type": "password", "username": self._username, "password": self._password},
                ),
                "token request",
            )
            if response.status_code != 200:
                raise PlatformError(
                    "Nexudus did not accept the API user's credentials (NEXUDUS_USERNAME / NEXUDUS_PASSWORD). "
                    "Check them, and that the user has API access and no two-factor prompt."
                )
            body = _json(response)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not token:
                raise PlatformError(f"Nexudus answered the login without a token ({_what(response)}). Check "
                                    "NEXUDUS_BASE_URL: it must be the API root, https://spaces.nexudus.com.",
                                    retryable=True)
            self._token = str(token)
            return self._token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        lane: Lane = Lane.READ,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One request (with retries) in its lane; a write first waits for the shared write budget."""
        what = f"{method} {path}"
        if lane is Lane.WRITE:
            await self.writes.acquire()
        token = self._token or await self._login(None)
        for renewed in (False, True):
            current = token
            async with self._lanes[lane]:
                response = await self._sender.send(
                    lambda current=current: self._client.request(  # type: ignore[misc]
                        method, path, params=params, json=json, headers={"Authorization": f"Bearer {current}"}
                    ),
                    what,
                    idempotent=idempotent,
                )
            self._note_clock(response)
            if response.status_code == 401 and not renewed:
                token = await self._login(current)
                continue
            break
        if response.status_code in (401, 403):
            raise PlatformError(
                "Nexudus refused the API user access to this. Give it the roles for courses, course members, "
                "completed lessons and coworkers (Admin Panel › Settings › Users › Access)."
            )
        return response

    async def _get_json(self, path: str, params: dict[str, Any] | None = None, *, lane: Lane = Lane.READ) -> Any:
        response = await self._request("GET", path, params=params, lane=lane)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise PlatformError(errors_sentence(_json(response), f"Nexudus answered {response.status_code}."))
        body = _json(response)
        if body is None:
            raise PlatformError(f"Nexudus answered a read with {_what(response)} instead of data, so nothing was "
                                "changed. Try again in a minute; if it lasts, check NEXUDUS_BASE_URL.",
                                retryable=True)
        return body

    async def _list(
        self, path: str, model: type[R], params: dict[str, Any] | None = None, *, lane: Lane = Lane.LIST
    ) -> list[R]:
        """Every record, page by page; `lane` READ for a filtered look-up that finds a few."""
        records: list[R] = []
        async for page in self._pages(path, model, params, lane=lane):
            records.extend(page)
        return records

    async def _pages(
        self, path: str, model: type[R], params: dict[str, Any] | None = None, *, lane: Lane = Lane.LIST
    ) -> AsyncIterator[list[R]]:
        page = 1
        while True:
            query = {**(params or {}), "page": page, "size": self.page_size}
            body = await self._get_json(path, query, lane=lane)
            if body is None:
                return
            parsed = Page[model].model_validate(body)  # type: ignore[valid-type]
            yield parsed.Records
            if not parsed.HasNextPage or not parsed.Records:
                return
            page += 1

    async def _total(self, path: str, params: dict[str, Any]) -> int:
        body = await self._get_json(path, {**params, "page": 1, "size": 1})
        return int((body or {}).get("TotalItems") or 0)

    async def _mutate(
        self, method: str, path: str, body: Any = None, *, idempotent: bool = True, missing_ok: bool = False
    ) -> Mutation:
        """One write, checked by HTTP status AND the envelope; `missing_ok`: a 404 means already done."""
        response = await self._request(method, path, json=body, lane=Lane.WRITE, idempotent=idempotent)
        if missing_ok and response.status_code == 404:
            return Mutation()
        payload = _json(response)
        fallback = f"Nexudus answered {response.status_code} without saying why."
        if response.status_code >= 400:
            raise _refusal(payload, fallback)
        if not isinstance(payload, dict):
            raise PlatformError(f"Nexudus answered the change with {_what(response)} instead of its confirmation, "
                                "so the bot cannot tell whether it was made. Check it in the admin panel before "
                                "trying again.")
        mutation = Mutation.model_validate(payload or {})
        if mutation.WasSuccessful is False or mutation.Errors:
            raise _refusal(payload, fallback)
        return mutation

    # ---- courses ----------------------------------------------------------------------

    def _course(self, record: CourseRecord) -> Course:
        return Course(
            id=str(record.Id),
            title=record.Title,
            visibility=_visibility(record.Visibility),
            active=record.Active is not False,
            summary=record.SummaryText or "",
            admin_url=f"{self.base_url}/content/courses/{record.Id}",
        )

    async def list_courses(self) -> list[Course]:
        records = await self._list(COURSES, CourseRecord, {"orderBy": "Title", "dir": 1})
        return sorted((self._course(r) for r in records), key=lambda c: c.title.lower())

    async def get_course(self, course_id: str) -> Course | None:
        if not course_id.isdigit():
            return None
        body = await self._get_json(f"{COURSES}/{course_id}")
        return self._course(CourseRecord.model_validate(body)) if body else None

    def looks_like_course_id(self, query: str) -> bool:
        return query.strip().isdigit()

    async def count_enrolments(self, course_id: str) -> EnrolmentCounts:
        records = await self._list(COURSE_MEMBERS, CourseMemberRecord, {"CourseMember_Course": course_id})
        return _counts(self._enrolment(r).state for r in records)

    async def count_enrolments_by_course(self, course_ids: Iterable[str]) -> dict[str, EnrolmentCounts]:
        """One read of the whole enrolment table when it has no more pages than there are courses
        (its pages then come together), else one count per course.

        The table's first page tells how many pages it has; it is the only request wasted when
        the per-course counts turn out cheaper."""
        ids = list(dict.fromkeys(course_ids))
        if len(ids) < 2:
            return await super().count_enrolments_by_course(ids)
        params: dict[str, Any] = {"orderBy": "Id", "dir": 1, "size": self.page_size}
        first = Page[CourseMemberRecord].model_validate(
            await self._get_json(COURSE_MEMBERS, {**params, "page": 1}, lane=Lane.LIST) or {})
        pages = first.TotalPages
        if pages is None and first.TotalItems is not None:
            pages = -(-first.TotalItems // self.page_size)
        if pages is None and first.HasNextPage:
            return await super().count_enrolments_by_course(ids)
        pages = max(1, pages or 1)
        if pages > len(ids):
            return await super().count_enrolments_by_course(ids)

        async def page(number: int) -> list[CourseMemberRecord]:
            body = await self._get_json(COURSE_MEMBERS, {**params, "page": number}, lane=Lane.LIST)
            return Page[CourseMemberRecord].model_validate(body or {}).Records

        records = {r.Id: r for r in first.Records}
        for rest in await asyncio.gather(*(page(n) for n in range(2, pages + 1))):
            records.update((r.Id, r) for r in rest)  # by id: a record that moved between pages counts once
        states: dict[str, list[AccessState]] = {cid: [] for cid in ids}
        for record in records.values():
            found = states.get(str(record.CourseId))
            if found is not None:
                found.append(self._enrolment(record).state)
        return {cid: _counts(found) for cid, found in states.items()}

    # ---- members ----------------------------------------------------------------------

    @staticmethod
    def _member(record: CoworkerRecord) -> Member:
        return Member(
            id=str(record.Id),
            email=(record.Email or "").strip(),
            full_name=record.FullName or "",
            company=record.CompanyName or "",
        )

    async def find_members_by_email(self, emails: Iterable[str], *, create_missing: bool = True) -> dict[str, Member]:
        """One filtered GET per email; for many emails, the whole coworker list when that is fewer pages."""
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e.strip()))
        records: list[CoworkerRecord] = []
        if len(wanted) > 3 and await self._total(COWORKERS, {}) <= len(wanted) * self.page_size:
            records = await self._list(COWORKERS, CoworkerRecord, {"orderBy": "Id", "dir": 1})
        else:
            async def one(email: str) -> list[CoworkerRecord]:
                body = await self._get_json(COWORKERS, {"Coworker_Email": email, "size": 25})
                return Page[CoworkerRecord].model_validate(body or {}).Records

            for page in await asyncio.gather(*(one(email) for email in wanted)):
                records.extend(page)
        by_email: dict[str, list[CoworkerRecord]] = {}
        for record in records:
            by_email.setdefault((record.Email or "").strip().lower(), []).append(record)
        found: dict[str, Member] = {}
        for email in wanted:
            exact = by_email.get(email)
            if exact:
                # One person may have several profiles: prefer an active, default one.
                exact.sort(key=lambda r: (r.Archived is True, r.Active is False, r.IsDefaultProfile is False, r.Id))
                found[email] = self._member(exact[0])
        return found

    async def get_member(self, member_id: str) -> Member | None:
        if not member_id.isdigit():
            return None
        body = await self._get_json(f"{COWORKERS}/{member_id}")
        return self._member(CoworkerRecord.model_validate(body)) if body else None

    async def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        ids = [i for i in dict.fromkeys(member_ids) if i.isdigit()]
        found: dict[str, Member] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            body = await self._get_json(f"{COWORKERS}/", {"id": "[" + ",".join(chunk) + "]"})
            for raw in body or []:
                member = self._member(CoworkerRecord.model_validate(raw))
                found[member.id] = member
        return found

    # ---- enrolments -------------------------------------------------------------------

    @staticmethod
    def _enrolment(record: CourseMemberRecord) -> Enrolment:
        teams = tuple(t.strip() for t in (record.CoworkerTeamNames or "").split(",") if t.strip())
        return Enrolment(
            id=str(record.Id),
            course_id=str(record.CourseId),
            member_id=str(record.CoworkerId),
            course_title=record.CourseTitle or "",
            member_name=record.CoworkerFullName or "",
            member_company=record.CoworkerCompanyName or "",
            member_teams=teams,
            approved=bool(record.Approved),
            blocked=bool(record.Blocked),
            created_on=record.CreatedOn,
            updated_on=record.UpdatedOn,
            last_access=record.LastAccess,
            last_completed_lesson=record.LastCompletedLessonTitle,
        )

    async def find_enrolment(self, course_id: str, member_id: str) -> Enrolment | None:
        if not (course_id.isdigit() and member_id.isdigit()):
            return None
        records = await self._list(
            COURSE_MEMBERS, CourseMemberRecord, {"CourseMember_Course": course_id, "CourseMember_Coworker": member_id},
            lane=Lane.READ,
        )
        # The filters may be loose on a real tenant: check the ids ourselves.
        matches = [r for r in records if str(r.CourseId) == course_id and str(r.CoworkerId) == member_id]
        return self._enrolment(min(matches, key=lambda r: r.Id)) if matches else None

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        raw = await self._get_raw(COURSE_MEMBERS, enrolment_id)
        if not raw:
            return None
        return self._enrolment(CourseMemberRecord.model_validate(raw)).model_copy(update={"record": raw})

    async def _get_raw(self, path: str, record_id: str) -> dict[str, Any] | None:
        if not record_id.isdigit():
            return None
        body = await self._get_json(f"{path}/{record_id}")
        return body if isinstance(body, dict) else None

    async def list_enrolments(
        self,
        *,
        course_id: str | None = None,
        pending_only: bool = False,
        updated_since: datetime | None = None,
        created_since: datetime | None = None,
    ) -> list[Enrolment]:
        params: dict[str, Any] = {"orderBy": "Id", "dir": 1}
        if course_id:
            params["CourseMember_Course"] = course_id
        if pending_only:
            params["CourseMember_Approved"] = "false"
            params["CourseMember_Blocked"] = "false"
        if updated_since:
            params["from_CourseMember_UpdatedOn"] = nexudus_time(updated_since)
        if created_since:
            params["from_CourseMember_CreatedOn"] = nexudus_time(created_since)
        enrolments = [self._enrolment(r) for r in await self._list(COURSE_MEMBERS, CourseMemberRecord, params)]
        # Filters the docs do not settle are applied again here, so a tenant that ignores them is harmless.
        if course_id:
            enrolments = [e for e in enrolments if e.course_id == course_id]
        if pending_only:
            enrolments = [e for e in enrolments if e.state is AccessState.PENDING]
        if updated_since:
            floor = updated_since - timedelta(minutes=1)
            enrolments = [e for e in enrolments if e.updated_on is None or e.updated_on >= floor]
        return enrolments

    async def create_enrolment(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment:
        return await self._create_enrolment(course_id, member_id, approved=approved, look_first=True)

    async def enrol_absent(self, course_id: str, member_id: str, *, approved: bool = True) -> Enrolment:
        """One POST and no reads when all goes well (bulk jobs list the course once instead)."""
        return await self._create_enrolment(course_id, member_id, approved=approved, look_first=False)

    async def _create_enrolment(self, course_id: str, member_id: str, *, approved: bool, look_first: bool) -> Enrolment:
        body = {"CourseId": int(course_id), "CoworkerId": int(member_id), "Approved": approved, "Blocked": False}
        for attempt in range(3):
            if look_first or attempt > 0:
                existing = await self.find_enrolment(course_id, member_id)
                if existing is not None:
                    return existing
            try:
                mutation = await self._mutate("POST", COURSE_MEMBERS, body, idempotent=False)
            except OutcomeUnknown:
                log.warning("nexudus: enrolment create unconfirmed; checking before trying again")
                continue
            new_id = str((mutation.Value or {}).get("Id", ""))
            if new_id and not look_first:
                return Enrolment(id=new_id, course_id=course_id, member_id=member_id, approved=approved)
            enrolment = await self.get_enrolment(new_id) if new_id else None
            return enrolment or await self._must_find(course_id, member_id)
        return await self._must_find(course_id, member_id)

    async def _must_find(self, course_id: str, member_id: str) -> Enrolment:
        enrolment = await self.find_enrolment(course_id, member_id)
        if enrolment is None:
            raise PlatformError("Nexudus did not confirm the enrolment, and it is not there. Try again in a minute.")
        return enrolment

    async def set_access(
        self, enrolment: Enrolment, *, approved: bool | None = None, blocked: bool | None = None
    ) -> Enrolment:
        # The whole object goes back (reference: never PUT from list data), so a record read by
        # id is used as it is; one that came from a list is read in full first.
        raw = dict(enrolment.record) if enrolment.record else await self._get_raw(COURSE_MEMBERS, enrolment.id)
        if raw is None:
            raise NotFound(f"Enrolment {enrolment.id} no longer exists on Nexudus.")
        if approved is not None:
            raw["Approved"] = approved
        if blocked is not None:
            raw["Blocked"] = blocked
        mutation = await self._mutate("PUT", COURSE_MEMBERS, raw)
        written = self._enrolment(CourseMemberRecord.model_validate(raw))
        updated_on = _datetime(getattr(mutation, "UpdatedOn", None)) or written.updated_on
        return written.model_copy(update={"updated_on": updated_on, "record": raw})

    # ---- lessons ----------------------------------------------------------------------

    @staticmethod
    def _lesson(r: LessonRecord) -> Lesson:
        return Lesson(
            id=str(r.Id),
            course_id=str(r.CourseId),
            title=r.Title,
            display_order=r.DisplayOrder or 0,
            section_id=str(r.SectionId) if r.SectionId else None,
            section_title=r.SectionTitle,
            section_order=r.SectionDisplayOrder or 0,
            unlock_type=UNLOCK.get(r.UnlockType or 0),
            completion_type=COMPLETION.get(r.CompletionType or 0),
            active=r.Active is not False,
        )

    async def list_lessons(self, course_id: str) -> list[Lesson]:
        # One course's lessons are a look-up (a few records), not a long list.
        records = await self._list(LESSONS, LessonRecord, {"CourseLesson_Course": course_id}, lane=Lane.READ)
        lessons = [self._lesson(r) for r in records if str(r.CourseId) == course_id]
        return sorted(lessons, key=lambda le: (le.section_order, le.display_order, int(le.id)))

    async def list_all_lessons(self) -> list[Lesson]:
        return [self._lesson(r) for r in await self._list(LESSONS, LessonRecord, {"orderBy": "Id", "dir": 1})]

    async def list_completed_lessons(
        self, *, enrolment_id: str | None = None, since: datetime | None = None
    ) -> list[CompletedLesson]:
        params: dict[str, Any] = {}
        if enrolment_id:
            params["CourseCompletedLesson_CourseMember"] = enrolment_id
        if since:
            params["from_CourseCompletedLesson_CreatedOn"] = nexudus_time(since)
        # One enrolment's completions are a look-up; the whole table is a long list.
        records = await self._list(COMPLETED, CompletedLessonRecord, params,
                                   lane=Lane.READ if enrolment_id else Lane.LIST)
        return [
            self._completed(r) for r in records if enrolment_id is None or str(r.CourseMemberId) == enrolment_id
        ]

    @staticmethod
    def _completed(r: CompletedLessonRecord) -> CompletedLesson:
        return CompletedLesson(
            id=str(r.Id),
            enrolment_id=str(r.CourseMemberId),
            lesson_id=str(r.CourseLessonId),
            lesson_title=r.CourseLessonTitle or "",
            member_name=r.CourseMemberCoworkerFullName or "",
            created_on=r.CreatedOn,
        )

    async def completed_lesson_pages(self, since: datetime | None = None) -> AsyncIterator[list[CompletedLesson]]:
        # Ascending ids: a record added while the pages are read lands after them, so none is skipped.
        params: dict[str, Any] = {"orderBy": "Id", "dir": 1}
        if since:
            params["from_CourseCompletedLesson_CreatedOn"] = nexudus_time(since)
        async for page in self._pages(COMPLETED, CompletedLessonRecord, params):
            yield [self._completed(r) for r in page]

    async def list_enrolments_created(self, start: datetime, end: datetime | None = None) -> list[Enrolment]:
        # The range filters are minute-precise and their bounds' exactness is undocumented:
        # ask for a minute more on each side, then cut exactly here.
        params: dict[str, Any] = {"orderBy": "Id", "dir": 1, "from_CourseMember_CreatedOn": nexudus_time(start)}
        if end is not None:
            params["to_CourseMember_CreatedOn"] = nexudus_time(end + timedelta(minutes=1))
        records = await self._list(COURSE_MEMBERS, CourseMemberRecord, params)
        return [e for e in (self._enrolment(r) for r in records)
                if e.created_on is not None and e.created_on >= start and (end is None or e.created_on < end)]

    # ---- sections, lesson details, completion writes --------------------------------------

    async def _batch(self, path: str, ids: list[str], model: type[R]) -> list[R]:
        """GET `path/?id=[..]` (full records, a bare array) in chunks of 100."""
        records: list[R] = []
        wanted = [i for i in dict.fromkeys(ids) if i.isdigit()]
        for start in range(0, len(wanted), 100):
            body = await self._get_json(f"{path}/", {"id": "[" + ",".join(wanted[start:start + 100]) + "]"})
            records.extend(model.model_validate(raw) for raw in body or [])
        return records

    async def list_sections(self, course_id: str) -> list[Section]:
        if not course_id.isdigit():
            return []
        records = await self._list(SECTIONS, SectionRecord, {"CourseSection_Course": course_id}, lane=Lane.READ)
        sections = [
            Section(id=str(r.Id), course_id=str(r.CourseId), title=r.Title, display_order=r.DisplayOrder or 0,
                    unlock_type=UNLOCK.get(r.UnlockType or 0), active=r.Active is not False)
            for r in records if str(r.CourseId) == course_id
        ]
        return sorted(sections, key=lambda s: (s.display_order, int(s.id)))

    async def lessons_with_types(self, course_id: str) -> list[Lesson]:
        # List records omit UnlockType and CompletionType (reference section 4): one batch GET per
        # hundred lessons fills them in, instead of one GET per lesson.
        lessons = await self.list_lessons(course_id)
        missing = [le.id for le in lessons if le.unlock_type is None or le.completion_type is None]
        if not missing:
            return lessons
        full = {str(r.Id): self._lesson(r) for r in await self._batch(LESSONS, missing, LessonRecord)}
        return [
            le.model_copy(update={"unlock_type": le.unlock_type or full[le.id].unlock_type,
                                  "completion_type": le.completion_type or full[le.id].completion_type})
            if le.id in full else le
            for le in lessons
        ]

    async def list_lesson_completions(self, lesson_id: str) -> list[CompletedLesson]:
        if not lesson_id.isdigit():
            return []
        records = await self._list(COMPLETED, CompletedLessonRecord, {"CourseCompletedLesson_CourseLesson": lesson_id})
        return [self._completed(r) for r in records if str(r.CourseLessonId) == lesson_id]

    async def _completions_of(self, enrolment_id: str, lesson_id: str) -> list[CompletedLesson]:
        records = await self._list(COMPLETED, CompletedLessonRecord, {
            "CourseCompletedLesson_CourseMember": enrolment_id, "CourseCompletedLesson_CourseLesson": lesson_id,
        }, lane=Lane.READ)
        return [self._completed(r) for r in records
                if str(r.CourseMemberId) == enrolment_id and str(r.CourseLessonId) == lesson_id]

    async def create_completed_lesson(self, enrolment_id: str, lesson_id: str) -> CompletedLesson:
        # The caller has just looked (that is how it knows the write is needed); after an unclear
        # failure this looks again before it tries a second time.
        if not (enrolment_id.isdigit() and lesson_id.isdigit()):
            raise NotFound("That enrolment or lesson id is not a Nexudus id.")
        body = {"CourseLessonId": int(lesson_id), "CourseMemberId": int(enrolment_id)}
        for attempt in range(2):
            if attempt:
                existing = await self._completions_of(enrolment_id, lesson_id)
                if existing:
                    return existing[0]
            try:
                mutation = await self._mutate("POST", COMPLETED, body, idempotent=False)
            except OutcomeUnknown:
                log.warning("nexudus: completed-lesson create unconfirmed; checking before trying again")
                continue
            new_id = str((mutation.Value or {}).get("Id", ""))
            raw = await self._get_raw(COMPLETED, new_id) if new_id else None
            if raw:
                return self._completed(CompletedLessonRecord.model_validate(raw))
            break
        existing = await self._completions_of(enrolment_id, lesson_id)
        if existing:
            return existing[0]
        raise PlatformError("Nexudus did not confirm the completed lesson, and it is not there. Try again in a minute.")

    async def delete_completed_lesson(self, completed_id: str) -> None:
        if not completed_id.isdigit():
            return
        await self._mutate("DELETE", f"{COMPLETED}/{completed_id}", missing_ok=True)  # gone already: fine

    # ---- course creation ------------------------------------------------------------------

    async def list_locations(self) -> list[Location]:
        try:
            records = await self._list(BUSINESSES, BusinessRecord, {"orderBy": "Name", "dir": 1})
        except PlatformError as exc:
            log.info("nexudus: locations list refused (%s); using the locations of courses and plans", exc.message)
            records = []
        locations = [Location(id=str(r.Id), name=r.Name or f"Location {r.Id}")
                     for r in records if r.Active is not False]
        if locations:
            return sorted(locations, key=lambda loc: loc.name.lower())
        # Fallback: every course and plan carries its location's id (and usually its name).
        names: dict[str, str] = {}
        for course in await self._list(COURSES, CourseRecord):
            if course.BusinessId:
                names[str(course.BusinessId)] = course.BusinessName or names.get(str(course.BusinessId), "")
        try:
            tariffs = await self._list(TARIFFS, TariffRecord)
        except PlatformError:
            tariffs = []
        for tariff in tariffs:
            if tariff.BusinessId:
                key = str(tariff.BusinessId)
                names[key] = names.get(key) or tariff.BusinessName or ""
        return sorted((Location(id=i, name=n or f"Location {i}") for i, n in names.items()),
                      key=lambda loc: loc.name.lower())

    async def list_price_plans(self) -> list[PricePlan]:
        records = await self._list(TARIFFS, TariffRecord, {"orderBy": "Name", "dir": 1})
        plans = [
            PricePlan(id=str(r.Id), name=r.Name or f"Plan {r.Id}",
                      location_id=str(r.BusinessId) if r.BusinessId else None, location_name=r.BusinessName or "",
                      price=r.Price, currency=r.CurrencyCode or "", visible=r.Visible is not False)
            for r in records
        ]
        return sorted(plans, key=lambda p: (p.location_name.lower(), p.name.lower(), int(p.id)))

    async def search_members(self, query: str, *, limit: int = 20) -> list[Member]:
        text = query.strip()
        if not text:
            return []
        filters = ["Coworker_Email"] if "@" in text else ["Coworker_FullName", "Coworker_Email"]

        async def one(field: str) -> list[CoworkerRecord]:
            body = await self._get_json(COWORKERS, {field: text, "page": 1, "size": limit})
            return Page[CoworkerRecord].model_validate(body or {}).Records

        found: dict[int, CoworkerRecord] = {}
        for records in await asyncio.gather(*(one(f) for f in filters)):
            for record in records:
                if record.Archived is not True:
                    found.setdefault(record.Id, record)
        lowered = text.lower()
        ranked = sorted(found.values(), key=lambda r: (
            (r.Email or "").strip().lower() != lowered, r.Active is False, r.IsDefaultProfile is False,
            (r.FullName or "").lower(), r.Id))
        return [self._member(r) for r in ranked[:limit]]

    # ---- creating a course, at most once --------------------------------------------------

    def _note_clock(self, response: httpx.Response) -> None:
        """Keep how far Nexudus's clock is from ours, from the response's Date header."""
        for value in reversed(response.headers.get_list("date")):  # a proxy may add its own before
            try:
                stamp = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            if stamp.tzinfo is not None:
                self._skew = stamp - datetime.now(UTC)
                return

    def platform_now(self) -> datetime:
        """Nexudus's time now, as its latest Date header told it (our clock until one was seen)."""
        return datetime.now(UTC) + self._skew

    async def _titled(self, title: str) -> list[CourseRecord]:
        # The title filter narrows the search (it may match partially, or be ignored): exact match here.
        wanted = " ".join(title.split()).lower()
        records = await self._list(COURSES, CourseRecord, {"Course_Title": title}, lane=Lane.READ)
        return [r for r in records if " ".join(r.Title.split()).lower() == wanted]

    async def begin_course_creation(self, title: str) -> CreationAttempt:
        same = await self._titled(title)  # this answer's Date sets platform_now()
        return CreationAttempt(title=title, since=self.platform_now() - CREATED_SKEW,
                               existing=[str(r.Id) for r in same])

    async def find_course_created_by(self, request_key: str, attempt: CreationAttempt) -> Course | None:
        """The course with the attempt's exact title that was not there before it and was created since
        (by CreatedOn, against Nexudus's clock). None: no new course has that title. Several, or one
        whose creation time says it is older than the attempt: CreationUnclear. The SystemId mark the
        create wrote settles it only where Nexudus kept it, which is unconfirmed."""
        new = [r for r in await self._titled(attempt.title) if str(r.Id) not in attempt.existing]
        if not new:
            return None
        matches = [r for r in new if r.CreatedOn is None or r.CreatedOn >= attempt.since]
        if len(matches) == 1:
            return self._course(matches[0])
        unread = [str(r.Id) for r in new if "SystemId" not in r.model_fields_set]
        full = {r.Id: r for r in await self._batch(COURSES, unread, CourseRecord)} if unread else {}
        marked = [r for r in new if (full.get(r.Id) or r).SystemId == request_key]
        if len(marked) == 1:
            return self._course(marked[0])
        found = len(matches) or len(new)
        raise CreationUnclear(_unclear(attempt.title, f"{found} courses titled like it appeared on Nexudus meanwhile"
                                       if found > 1 else "a course titled like it appeared, but Nexudus dates it "
                                       "before the form was sent"))

    async def create_course(self, draft: CourseDraft, *, request_key: str,
                            attempt: CreationAttempt | None = None) -> Course:
        body: dict[str, Any] = {
            "BusinessId": int(draft.location_id), "HostId": int(draft.host_id), "Title": draft.title,
            "DisplayOrder": draft.display_order, "Visibility": VISIBILITY_CODE[draft.visibility],
            "Active": draft.active, "ShowInHomePage": draft.show_on_home_page,
            "SystemId": request_key,  # a hint for find_course_created_by; nothing depends on Nexudus keeping it
        }
        if draft.visibility is Visibility.PAID and draft.plan_id:
            body["TariffId"] = int(draft.plan_id)
        for name, value in (("SummaryText", draft.summary), ("FullDescription", draft.description),
                            ("GroupName", draft.group_name)):
            if value:
                body[name] = value
        attempt = attempt or await self.begin_course_creation(draft.title)
        for sent in range(1, 3):
            try:
                mutation = await self._mutate("POST", COURSES, body, idempotent=False)
            except OutcomeUnknown as exc:
                log.warning("nexudus: course create unconfirmed (%s); looking for it before anything else",
                            exc.reason)
                await asyncio.sleep(self.settle)  # a create that was slow to answer may land meanwhile
                found = await self._look(request_key, attempt)
                if found is not None:
                    return found
                if exc.may_still_land:
                    raise CreationUnclear(_unclear(draft.title, "Nexudus did not answer in time, so the course "
                                                   "may still appear")) from None
                if sent == 2:
                    raise CreationUnclear(_unclear(draft.title, "Nexudus failed twice")) from None
                continue  # Nexudus answered with an error and made nothing: send it once more
            except ValidationFailed as exc:
                fields: dict[str, str] = {}
                for prop, message in exc.fields.items():
                    name = COURSE_FIELDS.get(prop.lower(), "")
                    text = _inline(message) if name else f"Nexudus refused it: {prop} {message}".replace("  ", " ")
                    fields[name] = f"{fields[name]} {text}" if name in fields else text
                raise ValidationFailed(exc.message, fields) from None
            new_id = str((mutation.Value or {}).get("Id", ""))
            if new_id:
                try:
                    course = await self.get_course(new_id)
                except PlatformError:
                    course = None  # made, but not readable right now: what was sent describes it
                return course or Course(id=new_id, title=draft.title, visibility=draft.visibility,
                                        active=draft.active, summary=draft.summary,
                                        admin_url=f"{self.base_url}/content/courses/{new_id}")
            found = await self._look(request_key, attempt)
            if found is not None:
                return found
            raise CreationUnclear(_unclear(draft.title, "Nexudus said it was saved but did not say which course "
                                           "it is, and it is not there yet"))
        raise AssertionError("unreachable")

    async def _look(self, request_key: str, attempt: CreationAttempt) -> Course | None:
        try:
            return await self.find_course_created_by(request_key, attempt)
        except CreationUnclear:
            raise
        except PlatformError as exc:
            raise CreationUnclear(_unclear(attempt.title, f"Nexudus is still failing ({exc.message})")) from None


def _unclear(title: str, why: str) -> str:
    return (f"The bot cannot tell whether “{title}” was created: {why}. It may or may not exist now, so it was not "
            "sent again. Check `/course courses` before you try again (submitting this same form again is safe: "
            "it looks for the course first).")


def _datetime(value: Any) -> datetime | None:
    """A timestamp from an envelope (`UpdatedOn`), if it reads as one."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _counts(states: Iterable[AccessState]) -> EnrolmentCounts:
    listed = list(states)
    return EnrolmentCounts(
        total=len(listed),
        approved=listed.count(AccessState.APPROVED),
        pending=listed.count(AccessState.PENDING),
        blocked=listed.count(AccessState.BLOCKED),
    )


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not (an HTML page, a cut-off answer, nothing)."""
    try:
        return response.json()
    except ValueError:
        return None


def _what(response: httpx.Response) -> str:
    """What came back instead of JSON, in words (never the body itself)."""
    if not response.content:
        return "an empty answer"
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if "html" in kind or response.content.lstrip()[:1] == b"<":
        return "a web page"
    return "a cut-off or unreadable answer"
