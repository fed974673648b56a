"""Nexudus Spaces adapter (`shared/reference/nexudus-api.md`).

What it is careful about, each from the reference:
- the token comes from a form-encoded POST /api/token and is renewed once on 401;
- lists are read page by page until HasNextPage is false (or a page is empty);
- an update GETs the full record, changes it, and PUTs the whole object back;
- a response is a success only if the HTTP status is 2xx AND WasSuccessful is not false
  AND Errors is empty; Errors[] becomes one sentence;
- writes wait for the shared write budget; 409/429 honour Retry-After;
- email matches are made exact and case-insensitive here, since the filter is partial;
- a create is never blindly retried: after an unclear failure it looks first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from bot.models import AccessState, CompletedLesson, Course, Enrolment, EnrolmentCounts, Lesson, Member, Visibility
from bot.pacing import Budget
from bot.platforms.base import Capability, CoursePlatform, NotFound, PlatformError
from bot.platforms.http import OutcomeUnknown, RetryingSender, RetryPolicy
from bot.platforms.nexudus_models import (
    CompletedLessonRecord,
    CourseMemberRecord,
    CourseRecord,
    CoworkerRecord,
    LessonRecord,
    Mutation,
    Page,
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
        max_concurrency: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self.writes = writes
        self.page_size = page_size
        # Few requests in flight at once: Nexudus throttles bursts, and httpx's pool spends
        # CPU on every queued request (encode/httpx#3215), which would slow the process's
        # acknowledgements. Waiting on a semaphore costs nothing.
        self._in_flight = asyncio.Semaphore(max_concurrency)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Accept": "application/json", "User-Agent": "coursebot"},
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._sender = RetryingSender(
            "Nexudus", policy or RetryPolicy(throttle_statuses=frozenset({409, 429}))
        )
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

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
            self._token = str(response.json()["access_token"])
            return self._token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        write: bool = False,
        idempotent: bool = True,
    ) -> httpx.Response:
        what = f"{method} {path}"
        if write:
            await self.writes.acquire()
        token = self._token or await self._login(None)
        for renewed in (False, True):
            current = token
            async with self._in_flight:
                response = await self._sender.send(
                    lambda current=current: self._client.request(  # type: ignore[misc]
                        method, path, params=params, json=json, headers={"Authorization": f"Bearer {current}"}
                    ),
                    what,
                    idempotent=idempotent,
                )
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

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._request("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise PlatformError(errors_sentence(_json(response), f"Nexudus answered {response.status_code}."))
        return response.json()

    async def _list(self, path: str, model: type[R], params: dict[str, Any] | None = None) -> list[R]:
        records: list[R] = []
        page = 1
        while True:
            query = {**(params or {}), "page": page, "size": self.page_size}
            body = await self._get_json(path, query)
            if body is None:
                return records
            parsed = Page[model].model_validate(body)  # type: ignore[valid-type]
            records.extend(parsed.Records)
            if not parsed.HasNextPage or not parsed.Records:
                return records
            page += 1

    async def _total(self, path: str, params: dict[str, Any]) -> int:
        body = await self._get_json(path, {**params, "page": 1, "size": 1})
        return int((body or {}).get("TotalItems") or 0)

    async def _mutate(self, method: str, path: str, body: Any, *, idempotent: bool = True) -> Mutation:
        response = await self._request(method, path, json=body, write=True, idempotent=idempotent)
        payload = _json(response)
        fallback = f"Nexudus answered {response.status_code} without saying why."
        if response.status_code >= 400:
            raise PlatformError(errors_sentence(payload, fallback))
        mutation = Mutation.model_validate(payload or {})
        if mutation.WasSuccessful is False or mutation.Errors:
            raise PlatformError(errors_sentence(payload, fallback))
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

    async def count_enrolments(self, course_id: str) -> EnrolmentCounts:
        records = await self._list(COURSE_MEMBERS, CourseMemberRecord, {"CourseMember_Course": course_id})
        states = [self._enrolment(r).state for r in records]
        return EnrolmentCounts(
            total=len(states),
            approved=states.count(AccessState.APPROVED),
            pending=states.count(AccessState.PENDING),
            blocked=states.count(AccessState.BLOCKED),
        )

    # ---- members ----------------------------------------------------------------------

    @staticmethod
    def _member(record: CoworkerRecord) -> Member:
        return Member(
            id=str(record.Id),
            email=(record.Email or "").strip(),
            full_name=record.FullName or "",
            company=record.CompanyName or "",
        )

    async def find_members_by_email(self, emails: Iterable[str]) -> dict[str, Member]:
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e.strip()))
        found: dict[str, Member] = {}
        for email in wanted:
            body = await self._get_json(COWORKERS, {"Coworker_Email": email, "size": 25})
            records = Page[CoworkerRecord].model_validate(body or {}).Records
            exact = [r for r in records if (r.Email or "").strip().lower() == email]
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
            COURSE_MEMBERS, CourseMemberRecord, {"CourseMember_Course": course_id, "CourseMember_Coworker": member_id}
        )
        # The filters may be loose on a real tenant: check the ids ourselves.
        matches = [r for r in records if str(r.CourseId) == course_id and str(r.CoworkerId) == member_id]
        return self._enrolment(min(matches, key=lambda r: r.Id)) if matches else None

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None:
        raw = await self._get_raw(COURSE_MEMBERS, enrolment_id)
        return self._enrolment(CourseMemberRecord.model_validate(raw)) if raw else None

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
        body = {"CourseId": int(course_id), "CoworkerId": int(member_id), "Approved": approved, "Blocked": False}
        for _ in range(3):
            existing = await self.find_enrolment(course_id, member_id)
            if existing is not None:
                return existing
            try:
                mutation = await self._mutate("POST", COURSE_MEMBERS, body, idempotent=False)
            except OutcomeUnknown:
                log.warning("nexudus: enrolment create unconfirmed; checking before trying again")
                continue
            new_id = str((mutation.Value or {}).get("Id", ""))
            enrolment = await self.get_enrolment(new_id) if new_id else None
            return enrolment or await self._must_find(course_id, member_id)
        return await self._must_find(course_id, member_id)

    async def _must_find(self, course_id: str, member_id: str) -> Enrolment:
        enrolment = await self.find_enrolment(course_id, member_id)
        if enrolment is None:
            raise PlatformError("Nexudus did not confirm the enrolment, and it is not there. Try again in a minute.")
        return enrolment

    async def set_access(
        self, enrolment_id: str, *, approved: bool | None = None, blocked: bool | None = None
    ) -> Enrolment:
        raw = await self._get_raw(COURSE_MEMBERS, enrolment_id)
        if raw is None:
            raise NotFound(f"Enrolment {enrolment_id} no longer exists on Nexudus.")
        if approved is not None:
            raw["Approved"] = approved
        if blocked is not None:
            raw["Blocked"] = blocked
        await self._mutate("PUT", COURSE_MEMBERS, raw)
        updated = await self.get_enrolment(enrolment_id)
        if updated is None:
            raise NotFound(f"Enrolment {enrolment_id} disappeared from Nexudus while it was being changed.")
        return updated

    # ---- lessons ----------------------------------------------------------------------

    async def list_lessons(self, course_id: str) -> list[Lesson]:
        records = await self._list(LESSONS, LessonRecord, {"CourseLesson_Course": course_id})
        lessons = [
            Lesson(
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
            for r in records
            if str(r.CourseId) == course_id
        ]
        return sorted(lessons, key=lambda le: (le.section_order, le.display_order, int(le.id)))

    async def list_completed_lessons(
        self, *, enrolment_id: str | None = None, since: datetime | None = None
    ) -> list[CompletedLesson]:
        params: dict[str, Any] = {}
        if enrolment_id:
            params["CourseCompletedLesson_CourseMember"] = enrolment_id
        if since:
            params["from_CourseCompletedLesson_CreatedOn"] = nexudus_time(since)
        records = await self._list(COMPLETED, CompletedLessonRecord, params)
        return [
            CompletedLesson(
                id=str(r.Id),
                enrolment_id=str(r.CourseMemberId),
                lesson_id=str(r.CourseLessonId),
                lesson_title=r.CourseLessonTitle or "",
                member_name=r.CourseMemberCoworkerFullName or "",
                created_on=r.CreatedOn,
            )
            for r in records
            if enrolment_id is None or str(r.CourseMemberId) == enrolment_id
        ]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
