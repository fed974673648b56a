"""The MeltingSpot adapter against the local fake (devtools/fakes/meltingspot.py) over real HTTP.

Each UNCONFIRMED point of the reference that the adapter has to cope with (auth scheme, page
base, bulk size, timestamp format, throttling) is exercised against the fake's matching option.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage
from starlette.requests import Request
from starlette.responses import Response

from bot.core.capabilities import Capability
from bot.core.models import CourseDraft, Enrolment, Visibility
from bot.core.pacing import Budget, make_storage, smooth_per_seconds
from bot.platforms.base import NotFound, NotSupported, PlatformError
from bot.platforms.http import RetryPolicy
from bot.platforms.meltingspot import KEY_REFUSED, MeltingSpotPlatform, _query
from bot.platforms.meltingspot_models import parse_time
from devtools.fakes.meltingspot import MeltingSpotFake
from tests.conftest import REDIS_URL, SERVERS

API_KEY = "ms_test_secret_key_5f2c9a"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=5.0)
UNPACED = 1000  # per 10 s: for tests that do not look at pacing (the fake allows 100; none sends that many)


class CountingBudget(Budget):
    """The adapter's budget, counting how often a request waited for it."""

    def __init__(self, storage: Any = None, name: str = "t", per_10s: int = 100) -> None:
        super().__init__(storage or MemoryStorage(), name, smooth_per_seconds(per_10s, 10))
        self.acquired = 0

    async def acquire(self, *, max_wait: float | None = None) -> None:
        await super().acquire(max_wait=max_wait)
        self.acquired += 1


class Recorder:
    """ASGI wrapper around the fake that keeps (method, path, JSON body, response status) of each POST."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.posts: list[tuple[str, Any, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def receive_body() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                # Recorded before the answer leaves: once the client has it, the test may look.
                body = b"".join(chunks)
                self.posts.append((scope["path"], json.loads(body) if body else None, message["status"]))
            await send(message)

        await self.app(scope, receive_body, send_status)

    def bulk(self, statuses: Iterable[int] | None = None) -> list[list[str]]:
        """The spotMemberIds of each bulk invitation (only those answered with one of `statuses`)."""
        return [
            list(body["spotMemberIds"]) for path, body, status in self.posts
            if path.endswith("participants~bulkInvite") and (statuses is None or status in set(statuses))
        ]


@asynccontextmanager
async def serve(
    fake: MeltingSpotFake, recorder: Recorder | None = None, **options: Any
) -> AsyncIterator[MeltingSpotPlatform]:
    budget = options.pop("budget", None) or CountingBudget()
    options.setdefault("policy", FAST)
    with SERVERS.serve(recorder or fake.app) as url:
        platform = MeltingSpotPlatform(url, options.pop("api_key", API_KEY), budget, **options)
        try:
            yield platform
        finally:
            await platform.aclose()


def gets(fake: MeltingSpotFake, path: str) -> list[dict[str, str]]:
    with fake.lock:
        return [q for m, p, q in fake.requests if m == "GET" and p == path]


# ---------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("server_scheme", ["raw", "bearer"])
async def test_auto_auth_finds_the_scheme_once_and_keeps_it(server_scheme: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    fake = MeltingSpotFake(API_KEY, auth_scheme=server_scheme)  # type: ignore[arg-type]
    fake.add_course("Onboarding", privacy="Public")
    member = fake.add_member("ada@example.com", "Ada", "Lovelace")
    budget = CountingBudget()
    async with serve(fake, budget=budget) as ms:
        assert [c.title for c in await ms.list_courses()] == ["Onboarding"]
        assert (await ms.get_member(member)) is not None
        assert ms.detected_auth_scheme == server_scheme
    # Bearer is tried first; a raw-key spot costs exactly one 401, and only once.
    assert fake.unauthorized == (1 if server_scheme == "raw" else 0)
    assert budget.acquired == len(fake.requests)  # the 401 attempt spent budget too
    assert API_KEY not in caplog.text


async def test_a_fixed_scheme_is_used_as_configured_and_a_refused_key_is_a_sentence(caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    fake = MeltingSpotFake(API_KEY, auth_scheme="bearer")
    fake.add_course("Onboarding")
    async with serve(fake, auth_scheme="raw") as ms:
        with pytest.raises(PlatformError) as refused:
            await ms.list_courses()
    assert refused.value.message == KEY_REFUSED
    assert "MELTINGSPOT_API_KEY" in refused.value.message and "premium" in refused.value.message
    assert fake.unauthorized == 1  # no second scheme tried when one is configured

    async with serve(fake, api_key="wrong-key-123456") as ms:
        with pytest.raises(PlatformError, match="MELTINGSPOT_API_KEY"):
            await ms.list_courses()
        assert ms.detected_auth_scheme is None  # nothing worked, nothing remembered
    assert API_KEY not in caplog.text and "wrong-key-123456" not in caplog.text


async def test_403_is_the_premium_sentence() -> None:
    fake = MeltingSpotFake(API_KEY)
    fake.fail_next(1, 403, path_contains="/v1/courses", body={"statusCode": 403, "message": "Forbidden"})
    async with serve(fake) as ms:
        with pytest.raises(PlatformError, match="premium"):
            await ms.list_courses()


# ---------------------------------------------------------------------------- members


class LooseEmailFake(MeltingSpotFake):
    """Matches `email[in]` as a substring, as a loose real filter might (the fake itself is exact)."""

    async def list_members(self, request: Request) -> Response:
        wanted = [e.lower() for e in (self._in_values(request, "email[in]") or [])]
        offset, limit = self._page(request)
        with self.lock:
            rows = [m for m in self.members.values() if not wanted or any(w in m.email.lower() for w in wanted)]
            items = [self.member_json(m) for m in rows[offset : offset + limit]]
        return self._envelope(items, len(rows))


async def test_email_lookup_is_batched_deduplicated_and_exact() -> None:
    fake = LooseEmailFake(API_KEY)
    emails = [f"user{i:03d}@example.com" for i in range(120)]
    fake.add_members(emails)
    fake.add_member("joann@example.com", "Jo", "Ann")
    fake.add_member("Mixed.Case@Example.com", "Mixed", "Case")
    asked = [e.upper() for e in emails] + emails[:10] + ["ann@example.com", " mixed.case@example.COM "]
    async with serve(fake) as ms:
        found = await ms.find_members_by_email(asked)
    assert set(found) == set(emails) | {"mixed.case@example.com"}
    assert "ann@example.com" not in found  # joann@ came back from the loose filter but is not a match
    assert found["user007@example.com"].full_name == "User007"
    assert found["mixed.case@example.com"].email == "Mixed.Case@Example.com"
    # 122 distinct emails -> 3 batches of at most 50, lower-cased, each email in one batch
    # (the first batch is sent twice: page=0 is refused by this base-1 server, then page=1).
    batches = {q["email[in]"] for q in gets(fake, "/v1/spotMembers")}
    sent = [e for b in batches for e in b.split(",")]
    assert len(batches) == 3 and all(len(b.split(",")) <= 50 for b in batches)
    assert len(sent) == len(set(sent)) == 122 and all(e == e.lower() for e in sent)


async def test_missing_members_are_created_and_a_409_is_looked_up_again() -> None:
    fake = MeltingSpotFake(API_KEY)
    fake.add_member("exists@example.com", "Ex", "Ists")
    async with serve(fake, create_missing_members=True) as ms:
        found = await ms.find_members_by_email(["New.Person@example.com"])
        assert found["new.person@example.com"].id == fake.member_by_email("new.person@example.com").id  # type: ignore[union-attr]
        # The first lookup "misses" someone who exists: the create answers 409 and the adapter looks again.
        fake.fail_next(1, 200, path_contains="/v1/spotMembers", method="GET", body={"items": [], "total": 0})
        again = await ms.find_members_by_email(["exists@example.com"])
        assert again["exists@example.com"].full_name == "Ex Ists"
    with fake.lock:
        posts = [b for m, p, b in fake.json_bodies if m == "POST" and p == "/v1/spotMembers"]
    assert posts == [
        {"email": "new.person@example.com", "withEmailNotification": False},
        {"email": "exists@example.com", "withEmailNotification": False},
    ]


async def test_lookup_without_create_leaves_missing_members_out() -> None:
    fake = MeltingSpotFake(API_KEY)
    async with serve(fake) as ms:
        assert await ms.find_members_by_email(["nobody@example.com"]) == {}
        assert await ms.get_member("00000000-0000-0000-0000-000000000000") is None
        assert await ms.get_member("not an id/..") is None
    assert not [p for p in fake.paths("POST")]


# ---------------------------------------------------------------------------- pagination


@pytest.mark.parametrize(("page_base", "max_limit", "pages"), [
    (0, 100, ["0", "1", "2"]),
    (1, 100, ["0", "1", "2", "3"]),  # page=0 is refused (400), then 1..3
    (1, 40, ["0", "1", "2", "3", "4", "5", "6", "7"]),  # the server clamps limit to 40: 7 pages of 40
])
async def test_lists_are_read_to_total_whatever_the_page_base(page_base: int, max_limit: int, pages: list[str]) -> None:
    fake = MeltingSpotFake(API_KEY, page_base=page_base, max_limit=max_limit)
    course = fake.add_course("Big course")
    fake.add_participants(course, fake.seed_members(250))
    path = f"/v1/courses/{course}/participants"
    async with serve(fake, budget=CountingBudget(per_10s=UNPACED)) as ms:
        enrolments = await ms.list_enrolments(course_id=course)
        assert ms.page_base == page_base
        first = gets(fake, path)
        fake.reset_counters()
        assert len(await ms.list_enrolments(course_id=course)) == 250
        second = gets(fake, path)
    assert len(enrolments) == 250 and len({e.id for e in enrolments}) == 250
    # The probe pages are used as data, and no page past `total` is asked for.
    assert [q["page"] for q in first] == pages
    assert all(q["limit"] == "100" for q in first)
    # Once known, the base is not probed again.
    assert [q["page"] for q in second] == (pages if page_base == 0 else pages[1:])


class PageZeroIsOneFake(MeltingSpotFake):
    """A base-1 server that answers page=0 as if it were page 1 instead of refusing it."""

    def _page(self, request: Request) -> tuple[int, int]:
        page = max(int(request.query_params.get("page") or 1), 1)
        limit = min(int(request.query_params.get("limit") or self.default_limit), self.max_limit)
        return (page - 1) * limit, limit


async def test_a_server_answering_page_zero_as_page_one_is_read_as_base_one() -> None:
    fake = PageZeroIsOneFake(API_KEY)
    course = fake.add_course("Big course")
    fake.add_participants(course, fake.seed_members(150))
    async with serve(fake) as ms:
        enrolments = await ms.list_enrolments(course_id=course)
        assert ms.page_base == 1
    assert len(enrolments) == 150 and len({e.member_id for e in enrolments}) == 150
    assert [q["page"] for q in gets(fake, f"/v1/courses/{course}/participants")] == ["0", "1", "2"]


async def test_an_empty_list_decides_nothing() -> None:
    fake = MeltingSpotFake(API_KEY, page_base=0)
    async with serve(fake) as ms:
        assert await ms.list_courses() == []
        assert ms.page_base is None
        fake.add_course("Later")
        assert [c.title for c in await ms.list_courses()] == ["Later"]
        assert ms.page_base == 0


def test_filters_keep_their_brackets_and_commas() -> None:
    query = _query({"email[in]": "a+b@x.com,c@y.com", "page": 1})
    assert query == "email[in]=a%2Bb@x.com,c@y.com&page=1"


# ---------------------------------------------------------------------------- courses and enrolments


async def test_courses_map_privacy_and_draft_status() -> None:
    fake = MeltingSpotFake(API_KEY)
    public = fake.add_course("Public one", privacy="Public", description="Hello")
    secret = fake.add_course("Secret one", privacy="Secret", status="Draft")
    fake.add_course("Odd one", privacy="Unlisted")
    async with serve(fake) as ms:
        courses = {c.title: c for c in await ms.list_courses()}
        assert (await ms.get_course(secret)) == courses["Secret one"]
        assert await ms.get_course("no-such-course") is None
    assert courses["Public one"].visibility is Visibility.PUBLIC and courses["Public one"].summary == "Hello"
    assert courses["Public one"].id == public and courses["Public one"].active
    assert courses["Secret one"].visibility is Visibility.PRIVATE and not courses["Secret one"].active
    assert courses["Odd one"].visibility is Visibility.UNKNOWN


@pytest.mark.parametrize("timestamps", ["iso", "ms"])
async def test_participants_map_to_enrolments_whatever_the_timestamp_format(timestamps: str) -> None:
    fake = MeltingSpotFake(API_KEY, timestamps=timestamps)  # type: ignore[arg-type]
    course = fake.add_course("Onboarding")
    ada = fake.add_member("ada@example.com", "Ada", "Lovelace")
    invited = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    started = invited + timedelta(days=1)
    activity = invited + timedelta(days=3, minutes=7)
    pid = fake.add_participant(course, ada, "Started", invited_at=invited, started_at=started,
                               completion_rate=42, last_activity_at=activity)
    async with serve(fake) as ms:
        await ms.list_courses()
        enrolment = await ms.find_enrolment(course, ada)
        assert enrolment is not None
        assert await ms.get_enrolment(enrolment.id) == enrolment
    assert enrolment.id == f"{course}/{pid}"
    assert (enrolment.course_id, enrolment.member_id, enrolment.member_name) == (course, ada, "Ada Lovelace")
    assert enrolment.course_title == "Onboarding"
    assert enrolment.approved and not enrolment.blocked and enrolment.status == "Started"
    assert enrolment.created_on == invited and enrolment.last_access == activity
    assert enrolment.updated_on == activity and enrolment.completion_rate == 42


def test_one_parser_reads_iso_milliseconds_and_seconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05Z") == moment
    assert parse_time("2026-01-02T03:04:05") == moment  # naive means UTC
    assert parse_time("2026-01-02T04:04:05+01:00") == moment
    assert parse_time(int(moment.timestamp() * 1000)) == moment
    assert parse_time(int(moment.timestamp())) == moment
    assert parse_time(str(int(moment.timestamp() * 1000))) == moment
    assert parse_time(1737116975) == datetime(2025, 1, 17, 12, 29, 35, tzinfo=UTC)  # webhook seconds
    assert parse_time(None) is None and parse_time("") is None and parse_time("soon") is None


async def test_enrolment_lookups_counts_and_filters() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    other = fake.add_course("Other")
    people = fake.seed_members(6)
    old = datetime(2025, 1, 1, tzinfo=UTC)
    fake.add_participant(course, people[0], "Invited", invited_at=old)
    fake.add_participant(course, people[1], "Completed")
    fake.add_participant(course, people[2], "Unenrolled")
    fake.add_participant(other, people[3], "Started")
    async with serve(fake, budget=CountingBudget(per_10s=UNPACED)) as ms:
        counts = await ms.count_enrolments(course)
        assert (counts.total, counts.approved, counts.pending, counts.blocked) == (2, 2, 0, 0)
        assert await ms.find_enrolment(course, people[4]) is None
        gone = await ms.find_enrolment(course, people[2])
        assert gone is not None and not gone.approved and gone.status == "Unenrolled"
        everything = await ms.list_enrolments()
        assert {e.member_id for e in everything} == set(people[:4])
        recent = await ms.list_enrolments(course_id=course, created_since=old + timedelta(days=1))
        assert {e.member_id for e in recent} == {people[1], people[2]}
        assert await ms.list_enrolments(course_id=course, pending_only=True) == []
        assert await ms.get_enrolment("no-slash") is None
        assert await ms.get_enrolment(f"{course}/00000000-0000-0000-0000-000000000000") is None
        with pytest.raises(NotFound, match="could not find course"):
            await ms.list_enrolments(course_id="00000000-0000-0000-0000-000000000000")


async def test_create_enrolment_invites_once_and_returns_the_existing_one_after() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    admin = fake.add_member("admin@example.com", "Ad", "Min", role="Admin")
    ada = fake.add_member("ada@example.com", "Ada", "Lovelace")
    gone = fake.add_member("gone@example.com", "Gone", "Away", status="Deactivated")
    async with serve(fake, invited_by=admin, send_email=True) as ms:
        first = await ms.create_enrolment(course, ada)
        second = await ms.create_enrolment(course, ada)  # 200 "Member already invited"
        with pytest.raises(PlatformError) as refused:
            await ms.create_enrolment(course, gone)
    assert first == second and first.status == "Invited"
    assert refused.value.message.startswith("MeltingSpot refused it: Malformed payload.")
    assert "deactivated" in refused.value.message
    with fake.lock:
        bodies = [b for m, p, b in fake.json_bodies if p.endswith("/participants")]
    assert bodies[0] == {"spotMemberId": ada, "withEmailNotification": True, "invitedBySpotMemberId": admin}
    assert len(fake.course_participants(course)) == 1


# ---------------------------------------------------------------------------- bulk invite


def assert_nobody_invited_twice(recorder: Recorder, already: Iterable[str]) -> None:
    sent = [m for ids in recorder.bulk(statuses=(200, 201, 204)) for m in ids]
    assert len(sent) == len(set(sent)), "a member was in two accepted invitations"
    assert not set(sent) & set(already), "an existing participant was invited again"
    assert all(body["withEmailNotification"] is False for _, body, _ in recorder.posts if body is not None)


async def test_bulk_invite_of_250_in_chunks_skipping_existing_participants() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    members = fake.seed_members(250)
    already = members[:20]
    fake.add_participants(course, already[:10], "Invited")
    fake.add_participants(course, already[10:], "Completed")
    unenrolled = members[20:25]
    fake.add_participants(course, unenrolled, "Unenrolled")
    recorder = Recorder(fake.app)
    async with serve(fake, recorder) as ms:
        results = await ms.invite_members(course, [*members, *members[:5]])  # duplicates are ignored
    assert list(results) == members
    assert all(not isinstance(r, PlatformError) for r in results.values())
    assert all(r.member_id == m and r.course_id == course for m, r in results.items())  # type: ignore[union-attr]
    assert {results[m].status for m in already[10:]} == {"Completed"}  # type: ignore[union-attr]
    assert {results[m].status for m in unenrolled} == {"Invited"}  # type: ignore[union-attr]
    sizes = [len(ids) for ids in recorder.bulk()]
    assert sizes == [100, 100, 30] and max(sizes) <= 100
    assert_nobody_invited_twice(recorder, already)
    assert len(fake.course_participants(course)) == 250


async def test_bulk_invite_splits_on_413_and_learns_the_size() -> None:
    fake = MeltingSpotFake(API_KEY, max_bulk=40)
    course = fake.add_course("Onboarding")
    members = fake.seed_members(250)
    fake.add_participants(course, members[:30])
    recorder = Recorder(fake.app)
    async with serve(fake, recorder) as ms:
        results = await ms.invite_members(course, members)
    assert all(not isinstance(r, PlatformError) for r in results.values())
    sizes = [len(ids) for ids in recorder.bulk()]
    assert max(sizes) <= 100 and sizes[0] == 100
    assert sizes.count(100) == 1  # after the first 413 no chunk of 100 is tried again
    assert sum(s for s in sizes if s <= 40) == 220
    assert ms.bulk_invite_size == 25  # what the bulk service should send from now on
    assert_nobody_invited_twice(recorder, members[:30])
    assert len(fake.course_participants(course)) == 250


async def test_one_uninvitable_member_fails_alone_with_the_servers_reason() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    members = fake.seed_members(40)
    left = fake.add_member("left@example.com", status="Left")
    recorder = Recorder(fake.app)
    async with serve(fake, recorder, budget=CountingBudget(per_10s=UNPACED)) as ms:
        results = await ms.invite_members(course, [*members[:20], left, *members[20:], "bad id!"])
    error = results[left]
    assert isinstance(error, PlatformError) and "Malformed payload" in error.message and left in error.message
    assert isinstance(results["bad id!"], NotFound)
    assert all(not isinstance(results[m], PlatformError) for m in members)
    assert_nobody_invited_twice(recorder, [])


async def test_bulk_invite_after_an_unclear_failure_looks_before_sending_again() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    members = fake.seed_members(60)
    fake.fail_next(1, 502, path_contains="~bulkInvite")
    recorder = Recorder(fake.app)
    async with serve(fake, recorder, chunk_size=25) as ms:
        results = await ms.invite_members(course, members)
    assert all(not isinstance(r, PlatformError) for r in results.values())
    assert_nobody_invited_twice(recorder, [])
    assert len(fake.course_participants(course)) == 60


async def test_a_checked_bulk_invite_skips_the_listing_and_still_maps_everyone() -> None:
    fake = MeltingSpotFake(API_KEY)
    course = fake.add_course("Onboarding")
    members = fake.seed_members(30)
    fake.add_participants(course, members[:5])  # invited by someone else since the caller looked
    budget = CountingBudget()
    async with serve(fake, budget=budget) as ms:
        assert ms.rate_budget() is budget and ms.bulk_invite_size == 100
        results = await ms.invite_members(course, members, checked=True)
    assert all(not isinstance(r, PlatformError) for r in results.values())
    assert {results[m].status for m in members} == {"Invited"}  # type: ignore[union-attr]
    # One bulk POST; the five the answer did not list are found by one listing afterwards.
    participants = f"/v1/courses/{course}/participants"
    assert fake.paths("POST") == [f"{participants}~bulkInvite"]
    assert len(fake.course_participants(course)) == 30


async def test_bulk_invite_to_a_missing_course_is_not_found() -> None:
    fake = MeltingSpotFake(API_KEY)
    members = fake.seed_members(3)
    async with serve(fake) as ms:
        with pytest.raises(NotFound, match="could not find course"):
            await ms.invite_members("00000000-0000-0000-0000-000000000000", members)


# ---------------------------------------------------------------------------- pacing and throttling


async def test_429_waits_for_retry_after_and_every_attempt_spends_budget() -> None:
    fake = MeltingSpotFake(API_KEY)
    fake.add_course("Onboarding")
    fake.fail_next(1, 429, path_contains="/v1/courses", headers={"Retry-After": "1"})
    budget = CountingBudget()
    async with serve(fake, budget=budget, auth_scheme="bearer", page_base=1) as ms:
        started = time.monotonic()
        assert len(await ms.list_courses()) == 1
        elapsed = time.monotonic() - started
    assert fake.injected_failures == 1
    assert elapsed >= 1.0
    assert budget.acquired == len(fake.requests) == 2


async def test_two_adapters_share_one_redis_budget() -> None:
    fake = MeltingSpotFake(API_KEY, requests_per_10s=None)
    members = fake.seed_members(15)

    def shared() -> Budget:  # 20 requests per second for the whole spot, in Redis
        return Budget(make_storage(REDIS_URL), "meltingspot:shared-test", smooth_per_seconds(20, 1))

    async with serve(fake, budget=shared(), auth_scheme="bearer") as one, \
            serve(fake, budget=shared(), auth_scheme="bearer") as two:
        started = time.monotonic()
        found = await asyncio.gather(one.get_members(members), two.get_members(members))
        elapsed = time.monotonic() - started
    assert all(len(f) == 15 for f in found)
    # 30 requests at 20/s together take at least a second (each alone would fit in one burst of 20;
    # a lower bound: a busy machine only adds).
    assert elapsed >= 0.9
    with fake.lock:
        assert len(fake.request_times) == 30


# ---------------------------------------------------------------------------- what MeltingSpot cannot do


async def test_unsupported_operations_say_so_in_a_sentence() -> None:
    fake = MeltingSpotFake(API_KEY)
    async with serve(fake) as ms:
        assert ms.capabilities == {Capability.ENROL, Capability.BULK_INVITE, Capability.LINK_BY_ID}
        for capability in (Capability.APPROVAL, Capability.BLOCK, Capability.LESSONS, Capability.COMPLETIONS,
                           Capability.CREATE_COURSE):
            assert not ms.supports(capability)
        calls = [
            ms.set_access(Enrolment(id="c/p", course_id="c", member_id="p"), approved=True),
            ms.set_access(Enrolment(id="c/p", course_id="c", member_id="p"), blocked=True),
            ms.list_lessons("c"),
            ms.list_completed_lessons(),
            ms.create_course(CourseDraft(title="New", location_id="l", host_id="h"), request_key="k"),
            ms.create_enrolment("c", "m", approved=False),
        ]
        for call in calls:
            with pytest.raises(NotSupported) as refused:
                await call
            assert refused.value.message.startswith("MeltingSpot has no API for ")
            assert refused.value.message.endswith("so the bot cannot do it there.")
    assert fake.requests == []  # none of these touched the network
