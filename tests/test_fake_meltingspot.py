"""Behaviour of the MeltingSpot fake, exercised over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.platforms.http import tls_context
from devtools.fakes.meltingspot import MeltingSpotFake
from tests.conftest import SERVERS

KEY = "ms_secret"
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@contextmanager
def client_for(fake: MeltingSpotFake, auth: str | None = KEY) -> Iterator[httpx.Client]:
    headers = {} if auth is None else {"Authorization": auth}
    with SERVERS.serve(fake.app) as base_url, httpx.Client(base_url=base_url, headers=headers,
                                                                       verify=tls_context()) as client:
        yield client


def raw_get(base_url: str, target: str, auth: str = KEY) -> tuple[int, bytes]:
    """Send a request line byte-for-byte (httpx would normalise the target)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def fetch_all(client: httpx.Client, path: str, page_base: int, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = page_base
    while True:
        r = client.get(path, params={**params, "page": page, "limit": limit})
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["items"])
        if not body["items"] or len(items) >= body["total"]:
            return items
        page += 1


# ---------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("scheme", "header", "ok"),
    [
        ("either", KEY, True),
        ("either", f"Bearer {KEY}", True),
        ("raw", KEY, True),
        ("raw", f"Bearer {KEY}", False),
        ("bearer", f"Bearer {KEY}", True),
        ("bearer", f"bearer {KEY}", True),
        ("bearer", KEY, False),
        ("either", "wrong", False),
        ("either", "Bearer wrong", False),
        ("either", None, False),
    ],
)
def test_auth_schemes(scheme: Any, header: str | None, ok: bool) -> None:
    fake = MeltingSpotFake(api_key=KEY, auth_scheme=scheme)
    with client_for(fake, auth=header) as client:
        r = client.get("/v1/courses")
    if ok:
        assert r.status_code == 200
        assert r.json() == {"items": [], "total": 0}
    else:
        assert r.status_code == 401
        assert r.json() == {"statusCode": 401, "message": "Unauthorized"}
        assert fake.unauthorized == 1


def test_unknown_path_is_404_json() -> None:
    fake = MeltingSpotFake()
    with client_for(fake) as client:
        r = client.get("/v1/nope")
        assert r.status_code == 404
        assert r.json()["statusCode"] == 404
        assert client.get("/v1/courses/abc").status_code == 404  # no single-course endpoint


# ---------------------------------------------------------------------------------------------- pagination


@pytest.mark.parametrize("page_base", [0, 1])
def test_pagination_with_total(page_base: int) -> None:
    fake = MeltingSpotFake(page_base=page_base, default_limit=20, max_limit=100)
    course = fake.add_course("Python 101")
    members = fake.seed_members(45)
    fake.add_participants(course, members)
    with client_for(fake) as client:
        r = client.get(f"/v1/courses/{course}/participants")
        assert r.json()["total"] == 45 and len(r.json()["items"]) == 20  # default limit, first page
        first = client.get(f"/v1/courses/{course}/participants", params={"page": page_base, "limit": 20}).json()
        assert [i["spotMemberId"] for i in first["items"]] == members[:20]
        last = client.get(f"/v1/courses/{course}/participants",
                          params={"page": page_base + 2, "limit": 20}).json()
        assert last["total"] == 45 and len(last["items"]) == 5
        beyond = client.get(f"/v1/courses/{course}/participants", params={"page": page_base + 3, "limit": 20})
        assert beyond.json() == {"items": [], "total": 45}
        if page_base == 1:
            assert client.get("/v1/spotMembers", params={"page": 0}).status_code == 400
        # limit above max is clamped by default
        assert len(client.get("/v1/spotMembers", params={"limit": 500}).json()["items"]) == 45
        got = fetch_all(client, f"/v1/courses/{course}/participants", page_base, 7)
        assert [i["spotMemberId"] for i in got] == members
        assert [m["id"] for m in fetch_all(client, "/v1/spotMembers", page_base, 10)] == members


def test_limit_overflow_error_option() -> None:
    fake = MeltingSpotFake(max_limit=50, limit_overflow="error")
    with client_for(fake) as client:
        assert client.get("/v1/spotMembers", params={"limit": 51}).status_code == 400
        assert client.get("/v1/spotMembers", params={"limit": 50}).status_code == 200


def test_course_list_filters() -> None:
    fake = MeltingSpotFake()
    a = fake.add_course("A")
    fake.add_course("B", status="Draft")
    fake.add_course("C", privacy="Public")
    with client_for(fake) as client:
        body = client.get("/v1/courses", params={"status[eq]": "Published", "privacy[eq]": "Secret"}).json()
    assert body["total"] == 1
    assert body["items"] == [{"id": a, "title": "A", "description": "", "privacy": "Secret",
                              "status": "Published", "navigationMode": "Flexible"}]


# ---------------------------------------------------------------------------------------------- lookups


def test_email_in_batch_lookup_is_case_insensitive_and_bracket_agnostic() -> None:
    fake = MeltingSpotFake()
    alice = fake.add_member("Alice@Example.com", firstname="Alice", lastname="Liddell")
    bob = fake.add_member("bob@example.com", firstname="Bob")
    fake.seed_members(50)
    with SERVERS.serve(fake.app) as base_url, httpx.Client(
        base_url=base_url, headers={"Authorization": KEY}
    ) as client:
        # percent-encoded (httpx params), mixed case, plus an unknown email
        r = client.get("/v1/spotMembers",
                       params={"email[in]": "BOB@example.com,alice@EXAMPLE.com,ghost@example.com"})
        body = r.json()
        assert body["total"] == 2
        assert [m["id"] for m in body["items"]] == [alice, bob]  # spot order
        m = body["items"][0]
        assert m["email"] == "Alice@Example.com" and m["firstname"] == "Alice" and m["lastname"] == "Liddell"
        assert isinstance(m["updatedAt"], int) and m["lastActivityAt"] is None
        assert set(m) >= {"id", "spotId", "userId", "title", "lang", "role", "customRoleId", "status",
                          "warnings", "embedBaseUrls"}
        # literal brackets on the wire
        status, raw = raw_get(base_url, "/v1/spotMembers?email[in]=bob@example.com")
        assert status == 200 and b'"total":1' in raw
        status, raw = raw_get(base_url, "/v1/spotMembers?email%5Bin%5D=bob@example.com,alice@example.com")
        assert status == 200 and b'"total":2' in raw
        assert client.get(f"/v1/spotMembers/{bob}").json()["email"] == "bob@example.com"
        assert client.get("/v1/spotMembers/nope").status_code == 404
    assert ("GET", "/v1/spotMembers", {"email[in]": "bob@example.com"}) in fake.requests


def test_participant_filters_and_get() -> None:
    fake = MeltingSpotFake()
    course = fake.add_course("C")
    ids = fake.add_members(["ann.lee@x.io", "bo.ng@x.io", "cy.oh@x.io"])
    p_ann = fake.add_participant(course, ids[0], status="Completed")
    fake.add_participant(course, ids[1], status="Started")
    fake.add_participant(course, ids[2])
    with client_for(fake) as client:
        url = f"/v1/courses/{course}/participants"
        by_email = client.get(url, params={"email[in]": "ANN.LEE@x.io,cy.oh@x.io"}).json()
        assert by_email["total"] == 2
        assert [p["spotMemberEmail"] for p in by_email["items"]] == ["ann.lee@x.io", "cy.oh@x.io"]
        assert client.get(url, params={"status[in]": "Started,Completed"}).json()["total"] == 2
        assert client.get(url, params={"status[eq]": "Invited"}).json()["total"] == 1
        assert client.get(url, params={"firstname[in]": "Bo"}).json()["items"][0]["status"] == "Started"
        assert client.get(url, params={"lastname[in]": "Lee,Oh"}).json()["total"] == 2
        assert client.get(url, params={"status[eq]": "Bogus"}).status_code == 400
        one = client.get(f"{url}/{p_ann}").json()
        assert one["status"] == "Completed" and one["completionRate"] == 100
        assert one["spotMemberFirstname"] == "Ann" and one["courseId"] == course
        assert client.get(f"{url}/nope").status_code == 404
        r = client.get("/v1/courses/nope/participants")
        assert r.status_code == 404 and r.json()["statusCode"] == 404


# ---------------------------------------------------------------------------------------------- invites


def test_bulk_invite_new_only_then_already_invited() -> None:
    fake = MeltingSpotFake(clock=lambda: T0)
    course = fake.add_course("C")
    a, b, c = fake.seed_members(3)
    fake.add_participant(course, a, status="Started")
    with client_for(fake) as client:
        url = f"/v1/courses/{course}/participants~bulkInvite"
        r = client.post(url, json={"spotMemberIds": [a, b, c, b], "withEmailNotification": False})
        assert r.status_code == 201
        created = r.json()
        assert isinstance(created, list)
        assert [p["spotMemberId"] for p in created] == [b, c]
        assert all(p["status"] == "Invited" and p["invitedAt"] == "2025-03-01T12:00:00.000Z" for p in created)
        assert created[0]["startedAt"] is None
        r = client.post(url, json={"spotMemberIds": [a, b, c]})
        assert r.status_code == 200
        assert r.json() == {"message": "Members already invited"}
    assert len(fake.course_participants(course)) == 3
    assert fake.json_bodies[0] == ("POST", url, {"spotMemberIds": [a, b, c, b], "withEmailNotification": False})


def test_bulk_invite_too_large_and_malformed() -> None:
    fake = MeltingSpotFake(max_bulk=100)
    course = fake.add_course("C")
    members = fake.seed_members(101)
    gone = fake.add_member("left@example.com", status="Left")
    with client_for(fake) as client:
        url = f"/v1/courses/{course}/participants~bulkInvite"
        r = client.post(url, json={"spotMemberIds": members})
        assert r.status_code == 413
        assert r.json() == {"statusCode": 413, "message": "Payload is too large"}
        malformed = {"statusCode": 400, "message": "Malformed payload"}
        payloads: list[dict[str, Any]] = [
            {}, {"spotMemberIds": members[0]}, {"spotMemberIds": []},
            {"spotMemberIds": [members[0], "not-a-member"]}, {"spotMemberIds": [gone]},
            {"spotMemberIds": [members[0]], "withEmailNotification": "yes"},
        ]
        for payload in payloads:
            r = client.post(url, json=payload)
            assert (r.status_code, r.json()) == (400, malformed), payload
        assert client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}
                           ).status_code == 400
        assert fake.course_participants(course) == []  # nothing half-applied
        assert client.post(url, json={"spotMemberIds": members[:100]}).status_code == 201
        assert client.post("/v1/courses/nope/participants~bulkInvite",
                           json={"spotMemberIds": [members[0]]}).status_code == 404


def test_single_invite_and_reinvite_unenrolled() -> None:
    fake = MeltingSpotFake()
    course = fake.add_course("C")
    a, b = fake.seed_members(2)
    pending = fake.add_member("p@example.com", status="Pending")
    with client_for(fake) as client:
        url = f"/v1/courses/{course}/participants"
        r = client.post(url, json={"spotMemberId": a, "invitedBySpotMemberId": b, "withEmailNotification": True})
        assert r.status_code == 201 and r.json()["spotMemberId"] == a
        pid = r.json()["id"]
        r = client.post(url, json={"spotMemberId": a})
        assert (r.status_code, r.json()) == (200, {"message": "Member already invited"})
        assert client.post(url, json={"spotMemberId": pending}).status_code == 400
        assert client.post(url, json={"spotMemberId": "nope"}).status_code == 400
        assert client.post(url, json={}).status_code == 400
        fake.set_participant_status(pid, "Unenrolled")
        assert client.get(f"{url}/{pid}").json()["unenrolledAt"] is not None
        r = client.post(url, json={"spotMemberId": a})
        assert r.status_code == 201 and r.json()["id"] == pid and r.json()["status"] == "Invited"


def test_spot_member_invites() -> None:
    fake = MeltingSpotFake(max_bulk_emails=200)
    fake.add_member("old@example.com")
    with client_for(fake) as client:
        r = client.post("/v1/spotMembers", json={"email": "new@example.com", "withEmailNotification": False})
        assert r.status_code == 201
        assert r.json()["status"] == "Invited" and r.json()["email"] == "new@example.com"
        r = client.post("/v1/spotMembers", json={"email": "OLD@example.com"})
        assert (r.status_code, r.json()) == (409, {"statusCode": 409, "message": "Member already exists"})
        assert client.post("/v1/spotMembers", json={"email": "nope"}).status_code == 400
        r = client.post("/v1/spotMembers~bulkInvite", json={"emails": ["x@example.com", "old@example.com"]})
        assert r.status_code == 201
        body = r.json()
        assert [m["email"] for m in body["created"]] == ["x@example.com"]
        assert [f["email"] for f in body["failed"]] == ["old@example.com"]
        too_many = [f"u{i}@example.com" for i in range(201)]
        assert client.post("/v1/spotMembers~bulkInvite", json={"emails": too_many}).status_code == 413
    member = fake.member_by_email("X@EXAMPLE.COM")
    assert member is not None and member.status == "Invited"


def test_groups_minimal() -> None:
    fake = MeltingSpotFake()
    course = fake.add_course("C")
    g = fake.add_group("Cohort 1")
    with client_for(fake) as client:
        assert client.get("/v1/groups").json()["items"][0]["name"] == "Cohort 1"
        r = client.post(f"/v1/courses/{course}/groups~bulkAdd", json={"groupIds": [g]})
        assert r.status_code == 204
        assert client.post(f"/v1/courses/{course}/groups~bulkAdd", json={"groupIds": ["x"]}).status_code == 400
    assert fake.course_groups[course] == [g]


# ---------------------------------------------------------------------------------------------- limits & faults


def test_rate_limit_429_with_retry_after() -> None:
    fake = MeltingSpotFake(requests_per_10s=5)
    with client_for(fake) as client:
        codes = [client.get("/v1/courses").status_code for _ in range(5)]
        assert codes == [200] * 5
        r = client.get("/v1/courses")
        assert r.status_code == 429
        retry_after = int(r.headers["Retry-After"])
        assert 1 <= retry_after <= 10
        assert r.json()["statusCode"] == 429
        assert client.get("/v1/courses").status_code == 429
    assert fake.throttled == 2
    assert len(fake.requests) == len(fake.request_times) == 7
    fake.reset_counters()
    assert fake.throttled == 0 and fake.requests == [] and fake.request_times == []


def test_rate_window_slides() -> None:
    now = [1000.0]
    fake = MeltingSpotFake(requests_per_10s=2, monotonic=lambda: now[0])
    with client_for(fake) as client:
        assert client.get("/v1/courses").status_code == 200
        now[0] += 6
        assert client.get("/v1/courses").status_code == 200
        r = client.get("/v1/courses")
        assert r.status_code == 429 and r.headers["Retry-After"] == "4"
        now[0] += 4.5  # first request left the window
        assert client.get("/v1/courses").status_code == 200
        assert client.get("/v1/courses").status_code == 429


def test_no_rate_limit_when_none() -> None:
    fake = MeltingSpotFake(requests_per_10s=None)
    with client_for(fake) as client:
        assert all(client.get("/v1/courses").status_code == 200 for _ in range(150))
    assert fake.throttled == 0


def test_fail_next_and_delay() -> None:
    fake = MeltingSpotFake(delay=0.05)
    course = fake.add_course("C")
    with client_for(fake) as client:
        fake.fail_next(2, status=503, path_contains="/participants", method="GET")
        assert client.get("/v1/courses").status_code == 200  # not matching
        assert client.post(f"/v1/courses/{course}/participants", json={}).status_code == 400  # wrong method
        assert client.get(f"/v1/courses/{course}/participants").status_code == 503
        assert client.get(f"/v1/courses/{course}/participants").status_code == 503
        assert client.get(f"/v1/courses/{course}/participants").status_code == 200
        fake.fail_next(1, status=429)
        r = client.get("/v1/courses")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        start = time.monotonic()
        client.get("/v1/courses")
        assert time.monotonic() - start >= 0.05
    assert fake.injected_failures == 3


# ---------------------------------------------------------------------------------------------- timestamps


def test_ms_timestamps_option() -> None:
    fake = MeltingSpotFake(timestamps="ms", clock=lambda: T0)
    course = fake.add_course("C")
    (m,) = fake.seed_members(1)
    done = datetime(2025, 3, 2, tzinfo=UTC)
    pid = fake.add_participant(course, m, status="Completed", completed_at=done, completion_rate=100)
    with client_for(fake) as client:
        p = client.get(f"/v1/courses/{course}/participants/{pid}").json()
    t0_ms = int(T0.timestamp() * 1000)
    assert p["invitedAt"] == t0_ms and p["startedAt"] == t0_ms
    assert p["completedAt"] == int(done.timestamp() * 1000)
    assert p["unenrolledAt"] is None
    assert isinstance(p["lastActivityAt"], int)


def test_iso_timestamps_default() -> None:
    fake = MeltingSpotFake(clock=lambda: T0)
    course = fake.add_course("C")
    (m,) = fake.seed_members(1)
    fake.add_participant(course, m)
    with client_for(fake) as client:
        p = client.get(f"/v1/courses/{course}/participants").json()["items"][0]
    assert p["invitedAt"] == "2025-03-01T12:00:00.000Z"
    assert p["startedAt"] is None and p["completedAt"] is None and p["lastActivityAt"] is None
    assert datetime.fromisoformat(p["invitedAt"]) == T0


# ---------------------------------------------------------------------------------------------- scale


def test_5000_members_page_and_filter_in_batches() -> None:
    fake = MeltingSpotFake(requests_per_10s=None, page_base=0)
    course = fake.add_course("Big")
    members = fake.seed_members(5000)
    fake.add_participants(course, members)
    with client_for(fake) as client:
        got = fetch_all(client, f"/v1/courses/{course}/participants", 0, 100)
        assert len(got) == 5000
        emails = ",".join(f"user{i:05d}@example.com" for i in range(0, 5000, 50))
        assert client.get("/v1/spotMembers", params={"email[in]": emails, "limit": 100}).json()["total"] == 100
        assert client.get(f"/v1/courses/{course}/participants",
                          params={"email[in]": emails, "limit": 100}).json()["total"] == 100


def test_reset_makes_a_new_fake_in_place() -> None:
    fake = MeltingSpotFake(requests_per_10s=1, page_base=0)
    app = fake.app
    course = fake.add_course("Onboarding")
    fake.add_participants(course, fake.seed_members(3))
    fake.fail_next(5)
    fake.reset(api_key="other-key")
    assert fake.app is app  # what a server already serves
    assert (fake.courses, fake.members, fake.requests, fake.json_bodies) == ({}, {}, [], [])
    assert (fake.api_key, fake.requests_per_10s, fake.page_base) == ("other-key", 100, 1)
    with client_for(fake, auth="other-key") as client:
        for _ in range(2):  # neither the injected failures nor the old limit are left
            assert client.get("/v1/courses").json() == {"items": [], "total": 0}
