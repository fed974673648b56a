"""Behaviour of the fake Nexudus API (devtools/fakes/nexudus.py) over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.platforms.http import tls_context
from devtools.fakes.nexudus import NexudusFake
from tests.conftest import SERVERS

USER, PASSWORD = "api@example.com", "secret"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def token(client: httpx.Client) -> str:
    resp = client.post("/api/token", data={"grant_type": "password", "username": USER, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def serve(fake: NexudusFake) -> Iterator[httpx.Client]:
    with SERVERS.serve(fake.app) as base_url, httpx.Client(base_url=base_url, timeout=10,
                                                                       verify=tls_context()) as client:
        client.headers["Authorization"] = f"Bearer {token(client)}"
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC))


@pytest.fixture
def fake(clock: Clock) -> NexudusFake:
    return NexudusFake(clock=clock)


@pytest.fixture
def client(fake: NexudusFake) -> Iterator[httpx.Client]:
    yield from serve(fake)


def seed_course(fake: NexudusFake) -> dict[str, Any]:
    biz = fake.add_business("Main St")
    host = fake.add_coworker("Hana Host", "host@x.com")
    course = fake.add_course("Python 101", business_id=biz["Id"], host_id=host["Id"], SummaryText="Intro")
    section = fake.add_section(course["Id"], "Week 1", 1)
    lesson = fake.add_lesson(course["Id"], "Variables", 1, section_id=section["Id"], LessonContents="<p>x</p>")
    return {"biz": biz, "host": host, "course": course, "section": section, "lesson": lesson}


# ---------------------------------------------------------------------------- auth


def test_token_flow_and_401s(fake: NexudusFake) -> None:
    fake.add_coworker("Ann", "ann@x.com")
    with SERVERS.serve(fake.app) as base_url, httpx.Client(base_url=base_url) as client:
        assert client.get("/api/spaces/coworkers").status_code == 401
        assert client.get("/api/spaces/coworkers", headers={"Authorization": "Bearer nope"}).status_code == 401

        resp = client.post("/api/token", json={"grant_type": "password", "username": USER, "password": PASSWORD})
        assert resp.status_code == 400
        assert resp.json() == {"error": "unsupported_grant_type"}

        resp = client.post("/api/token", data={"grant_type": "password", "username": USER, "password": "bad"})
        assert resp.status_code == 400
        assert resp.json() == {
            "error": "invalid_grant", "error_description": "The user name or password is incorrect.",
        }

        resp = client.post("/api/token", data={"grant_type": "password", "username": USER, "password": PASSWORD})
        body = resp.json()
        assert resp.status_code == 200
        assert body["token_type"] == "bearer" and body["expires_in"] == 604799
        assert body["access_token"] and body["refresh_token"]
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert client.get("/api/spaces/coworkers", headers=bearer).status_code == 200
        assert client.get("/api/spaces/coworkers", auth=(USER, PASSWORD)).status_code == 200
        assert client.get("/api/spaces/coworkers", auth=(USER, "wrong")).status_code == 401

        fake.expire_tokens()
        assert client.get("/api/spaces/coworkers", headers=bearer).status_code == 401

        # refresh needs the client_id header (the username when none was sent at login)
        refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        assert client.post("/api/token", data=refresh).status_code == 400
        resp = client.post("/api/token", data=refresh, headers={"client_id": USER})
        assert resp.status_code == 200
        renewed = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        assert client.get("/api/spaces/coworkers", headers=renewed).status_code == 200
        # the old refresh token was rotated out
        assert client.post("/api/token", data=refresh, headers={"client_id": USER}).status_code == 400
        assert fake.token_requests == 6


# ---------------------------------------------------------------------------- list / paging / filters


def test_pagination_envelope(fake: NexudusFake, client: httpx.Client) -> None:
    for i in range(30):
        fake.add_coworker(f"Person {i:02d}", f"p{i}@x.com")
    first = client.get("/api/spaces/coworkers").json()
    assert first["CurrentPage"] == 1 and first["CurrentPageSize"] == 25
    assert first["CurrentOrderField"] == "FullName" and first["CurrentSortDirection"] == 1
    assert (first["FirstItem"], first["LastItem"], first["TotalItems"], first["TotalPages"]) == (1, 25, 30, 2)
    assert first["HasNextPage"] is True and first["HasPreviousPage"] is False
    assert len(first["Records"]) == 25

    second = client.get("/api/spaces/coworkers", params={"page": 2, "size": 25}).json()
    assert len(second["Records"]) == 5
    assert (second["FirstItem"], second["LastItem"]) == (26, 30)
    assert second["HasNextPage"] is False and second["HasPreviousPage"] is True

    desc = client.get("/api/spaces/coworkers", params={"orderBy": "Id", "dir": -1, "size": 3}).json()
    assert [r["Id"] for r in desc["Records"]] == [30, 29, 28]
    assert desc["CurrentSortDirection"] == -1

    fake.page_size_max = 10
    capped = client.get("/api/spaces/coworkers", params={"size": 500}).json()
    assert capped["CurrentPageSize"] == 10 and capped["TotalPages"] == 3

    beyond = client.get("/api/spaces/coworkers", params={"page": 9}).json()
    assert beyond["Records"] == [] and beyond["HasNextPage"] is False


def test_email_filter_is_partial_and_case_insensitive(fake: NexudusFake, client: httpx.Client) -> None:
    fake.add_coworker("Ann", "ann@x.com")
    fake.add_coworker("Jo Ann", "JoAnn@X.com")
    fake.add_coworker("Bob", "bob@x.com")
    records = client.get("/api/spaces/coworkers", params={"Coworker_Email": "ann@x.com"}).json()["Records"]
    assert sorted(r["Email"] for r in records) == ["JoAnn@X.com", "ann@x.com"]
    # list records are partial: no Teams/Businesses; GET by id has them
    assert "Teams" not in records[0] and "Businesses" not in records[0]
    full = client.get(f"/api/spaces/coworkers/{records[0]['Id']}").json()
    assert full["Teams"] == [] and full["Businesses"] == []
    # unknown filters are silently ignored
    everyone = client.get("/api/spaces/coworkers", params={"UpdatedSince": "2030-01-01"}).json()
    assert everyone["TotalItems"] == 3


def test_foreign_key_filters_and_derived_fields(fake: NexudusFake, client: httpx.Client) -> None:
    s = seed_course(fake)
    other = fake.add_course("Other")
    ann = fake.add_coworker("Ann Lee", "ann@x.com", company_name="Acme", team_names="Red, Blue")
    bob = fake.add_coworker("Bob", "bob@x.com")
    member = fake.add_enrolment(s["course"]["Id"], ann["Id"])
    fake.add_enrolment(other["Id"], ann["Id"])
    fake.add_enrolment(s["course"]["Id"], bob["Id"], approved=False)
    fake.add_completed_lesson(member["Id"], s["lesson"]["Id"])

    found = client.get("/api/content/coursemembers", params={
        "CourseMember_Course": s["course"]["Id"], "CourseMember_Coworker": ann["Id"],
    }).json()["Records"]
    assert [r["Id"] for r in found] == [member["Id"]]
    rec = found[0]
    assert rec["CourseTitle"] == "Python 101" and rec["CoworkerFullName"] == "Ann Lee"
    assert rec["CoworkerCompanyName"] == "Acme" and rec["CoworkerTeamNames"] == "Red, Blue"
    assert rec["LastCompletedLessonId"] == s["lesson"]["Id"] and rec["LastCompletedLessonTitle"] == "Variables"
    assert rec["LastAccess"] == "2026-03-01T09:00:00Z"

    pending = client.get("/api/content/coursemembers", params={"CourseMember_Approved": "false"}).json()
    assert [r["CoworkerId"] for r in pending["Records"]] == [bob["Id"]]
    by_title = client.get("/api/content/coursemembers", params={"CourseMember_Course_Title": "python"}).json()
    assert by_title["TotalItems"] == 2

    done = client.get("/api/content/coursecompletedlessons", params={
        "CourseCompletedLesson_CourseMember": member["Id"],
    }).json()["Records"]
    assert done[0]["CourseLessonTitle"] == "Variables" and done[0]["CourseMemberCoworkerFullName"] == "Ann Lee"

    lessons = client.get("/api/content/courselessons", params={"CourseLesson_Course": s["course"]["Id"]}).json()
    listed = lessons["Records"][0]
    assert listed["SectionTitle"] == "Week 1" and listed["SectionDisplayOrder"] == 1
    assert not {"LessonContents", "UnlockType", "CompletionType"} & set(listed)
    full = client.get(f"/api/content/courselessons/{listed['Id']}").json()
    assert full["LessonContents"] == "<p>x</p>" and full["UnlockType"] == 1 and full["CompletionType"] == 2

    course = client.get(f"/api/content/courses/{s['course']['Id']}").json()
    assert course["BusinessName"] == "Main St" and course["HostFullName"] == "Hana Host"
    assert client.get("/api/content/courses/999").status_code == 404


def test_date_range_filter(fake: NexudusFake, clock: Clock, client: httpx.Client) -> None:
    s = seed_course(fake)
    created: list[int] = []
    for minute, second in [(0, 10), (5, 59), (10, 0), (15, 30)]:
        clock.now = datetime(2026, 3, 2, 12, minute, second, tzinfo=UTC)
        coworker = fake.add_coworker(f"P{minute}", f"p{minute}@x.com")
        created.append(fake.add_enrolment(s["course"]["Id"], coworker["Id"])["Id"])

    def ids(**params: str) -> list[int]:
        body = client.get("/api/content/coursemembers", params=params).json()
        return [r["Id"] for r in body["Records"]]

    # inclusive at minute precision: 12:05:59 is in "to 12:05"
    assert ids(from_CourseMember_CreatedOn="2026-03-02T12:05", to_CourseMember_CreatedOn="2026-03-02T12:10") == (
        created[1:3]
    )
    assert ids(from_CourseMember_CreatedOn="2026-03-02T12:05:45Z") == created[1:]
    assert ids(From_CourseMember_CreatedOn="2026-03-02T12:10:00") == created[2:]
    assert ids(To_CourseMember_CreatedOn="2026-03-02T12:00") == created[:1]
    # an offset is converted to UTC
    assert ids(from_CourseMember_CreatedOn="2026-03-02T13:15+01:00") == created[3:]
    bad = client.get("/api/content/coursemembers", params={"from_CourseMember_CreatedOn": "yesterday"})
    assert bad.status_code == 400


def test_batch_get(fake: NexudusFake, client: httpx.Client) -> None:
    people = [fake.add_coworker(f"P{i}", f"p{i}@x.com") for i in range(4)]
    resp = client.get("/api/spaces/coworkers/", params={"id": f"[{people[0]['Id']},{people[2]['Id']},999]"})
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body, list)
    assert [r["Email"] for r in body] == ["p0@x.com", "p2@x.com"]
    assert "Teams" in body[0]  # batch returns full records


# ---------------------------------------------------------------------------- writes


def test_create_envelope_and_validation_errors(fake: NexudusFake, client: httpx.Client) -> None:
    s = seed_course(fake)
    ann = fake.add_coworker("Ann", "ann@x.com")

    resp = client.post("/api/content/coursemembers", json={"CoworkerId": ann["Id"], "Approved": True})
    assert resp.status_code == 400
    assert resp.json() == {
        "Message": "CourseId: is a required field", "Value": None,
        "Errors": [{"AttemptedValue": None, "Message": "is a required field", "PropertyName": "CourseId"}],
        "WasSuccessful": False,
    }
    resp = client.post("/api/content/coursemembers", json={"CourseId": s["course"]["Id"], "CoworkerId": 999})
    assert resp.status_code == 400 and resp.json()["Errors"][0]["PropertyName"] == "CoworkerId"

    resp = client.post("/api/content/coursemembers", json={
        "CourseId": s["course"]["Id"], "CoworkerId": ann["Id"], "Approved": True, "Blocked": False,
    })
    assert resp.status_code == 200
    envelope = resp.json()
    assert envelope["WasSuccessful"] is True and envelope["Errors"] is None
    assert envelope["Message"] == "CourseMember was successfully created."
    member_id = envelope["Value"]["Id"]
    assert fake.coursemembers[member_id]["CoworkerId"] == ann["Id"]
    assert fake.writes == 1

    # CourseMemberId must be an enrolment id, not a coworker id
    resp = client.post("/api/content/coursecompletedlessons", json={
        "CourseLessonId": s["lesson"]["Id"], "CourseMemberId": ann["Id"] + 100,
    })
    assert resp.status_code == 400 and resp.json()["Errors"][0]["PropertyName"] == "CourseMemberId"
    ok = client.post("/api/content/coursecompletedlessons", json={
        "CourseLessonId": s["lesson"]["Id"], "CourseMemberId": member_id,
    })
    assert ok.json()["Message"] == "CourseCompletedLesson was successfully created."

    paid = {"BusinessId": s["biz"]["Id"], "HostId": s["host"]["Id"], "Title": "Paid", "DisplayOrder": 0,
            "Visibility": 4}
    resp = client.post("/api/content/courses", json=paid)
    assert resp.status_code == 400 and [e["PropertyName"] for e in resp.json()["Errors"]] == ["TariffId"]
    tariff = fake.add_tariff("Course fee", s["biz"]["Id"], price=50)
    assert client.post("/api/content/courses", json={**paid, "TariffId": tariff["Id"]}).json()["WasSuccessful"]

    lesson = client.post("/api/content/courselessons", json={"CourseId": s["course"]["Id"], "Title": "L"})
    missing = {e["PropertyName"] for e in lesson.json()["Errors"]}
    assert missing == {"DisplayOrder", "UnlockAfterDays", "UnlockType", "CompletionType"}


def test_duplicate_enrolments_toggle(fake: NexudusFake, client: httpx.Client) -> None:
    s = seed_course(fake)
    ann = fake.add_coworker("Ann", "ann@x.com")
    body = {"CourseId": s["course"]["Id"], "CoworkerId": ann["Id"], "Approved": True}
    assert client.post("/api/content/coursemembers", json=body).status_code == 200
    assert client.post("/api/content/coursemembers", json=body).status_code == 200
    fake.allow_duplicate_enrolments = False
    resp = client.post("/api/content/coursemembers", json=body)
    assert resp.status_code == 400 and resp.json()["Errors"][0]["PropertyName"] == "CoworkerId"


def test_put_is_full_object_and_clears_omitted_fields(
    fake: NexudusFake, clock: Clock, client: httpx.Client
) -> None:
    s = seed_course(fake)
    ann = fake.add_coworker("Ann", "ann@x.com")
    member = fake.add_enrolment(s["course"]["Id"], ann["Id"], approved=False, blocked=True)
    clock.now += timedelta(hours=1)

    resp = client.put("/api/content/coursemembers", json={
        "Id": member["Id"], "CourseId": s["course"]["Id"], "CoworkerId": ann["Id"], "Approved": True,
    })
    assert resp.status_code == 200
    assert resp.json()["Message"] == "CourseMember was successfully updated."
    stored = fake.coursemembers[member["Id"]]
    assert stored["Approved"] is True and stored["Blocked"] is False
    assert stored["UpdatedOn"] == "2026-03-01T10:00:00Z" and stored["CreatedOn"] == "2026-03-01T09:00:00Z"

    course = client.get(f"/api/content/courses/{s['course']['Id']}").json()
    assert course["SummaryText"] == "Intro"
    partial = {k: course[k] for k in ("Id", "BusinessId", "HostId", "Title", "DisplayOrder", "Visibility")}
    assert client.put("/api/content/courses", json=partial).json()["WasSuccessful"] is True
    after = client.get(f"/api/content/courses/{s['course']['Id']}").json()
    assert after["SummaryText"] is None and after["Active"] is False

    # GET -> change -> PUT round trip keeps everything
    after["SummaryText"] = "Back"
    after["Active"] = True
    assert client.put("/api/content/courses", json=after).status_code == 200
    assert fake.courses[s["course"]["Id"]]["SummaryText"] == "Back"

    # required fields still validated; unknown Id is a 400 with Errors
    resp = client.put("/api/content/coursemembers", json={"Id": member["Id"], "Approved": True})
    assert resp.status_code == 400
    assert {e["PropertyName"] for e in resp.json()["Errors"]} == {"CourseId", "CoworkerId"}
    resp = client.put("/api/content/coursemembers", json={
        "Id": 999, "CourseId": s["course"]["Id"], "CoworkerId": ann["Id"],
    })
    assert resp.status_code == 400 and resp.json()["Errors"][0]["PropertyName"] == "Id"


def test_delete_and_methods(fake: NexudusFake, client: httpx.Client) -> None:
    s = seed_course(fake)
    ann = fake.add_coworker("Ann", "ann@x.com")
    member = fake.add_enrolment(s["course"]["Id"], ann["Id"])
    fake.add_completed_lesson(member["Id"], s["lesson"]["Id"])
    resp = client.delete(f"/api/content/coursemembers/{member['Id']}")
    assert resp.status_code == 200 and resp.json()["Message"] == "CourseMember was successfully deleted."
    assert member["Id"] not in fake.coursemembers
    assert fake.coursecompletedlessons == {}  # cascaded
    assert client.get(f"/api/content/coursemembers/{member['Id']}").status_code == 404
    assert client.delete(f"/api/spaces/coworkers/{ann['Id']}").status_code == 405
    assert client.get("/api/sys/businesses").json()["TotalItems"] == 1
    assert client.get("/api/billing/tariffs").json()["TotalItems"] == 0


# ---------------------------------------------------------------------------- throttling / injection


def test_write_limit_returns_409_with_retry_after(clock: Clock) -> None:
    fake = NexudusFake(clock=clock, writes_per_minute=2)
    s = seed_course(fake)
    people = [fake.add_coworker(f"P{i}", f"p{i}@x.com") for i in range(3)]
    for client in serve(fake):
        codes = []
        for person in people:
            resp = client.post("/api/content/coursemembers", json={
                "CourseId": s["course"]["Id"], "CoworkerId": person["Id"], "Approved": True,
            })
            codes.append(resp.status_code)
        assert codes == [200, 200, 409]
        assert resp.content == b""
        retry_after = int(resp.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert client.get("/api/content/coursemembers").status_code == 200  # reads are not write-limited
        assert fake.throttled == 1 and fake.writes == 2 and len(fake.write_times) == 2
        assert len(fake.coursemembers) == 2


def test_request_limit_and_forced_throttles(fake: NexudusFake, client: httpx.Client) -> None:
    fake.throttle_next(1, retry_after=3)
    resp = client.get("/api/spaces/coworkers")
    assert resp.status_code == 409 and resp.headers["Retry-After"] == "3" and resp.content == b""
    fake.status_429_next(1, retry_after=2)
    resp = client.get("/api/spaces/coworkers")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert client.get("/api/spaces/coworkers").status_code == 200
    assert fake.throttled == 2

    fake.requests_per_minute = 1
    fake.reset_counters()
    assert client.get("/api/spaces/coworkers").status_code == 200
    assert client.get("/api/spaces/coworkers").status_code == 409
    assert fake.throttled == 1
    assert [(m, p) for m, p, _ in fake.requests] == [("GET", "/api/spaces/coworkers")] * 2


def test_fail_next_injection(fake: NexudusFake, client: httpx.Client) -> None:
    s = seed_course(fake)
    ann = fake.add_coworker("Ann", "ann@x.com")
    body = {"CourseId": s["course"]["Id"], "CoworkerId": ann["Id"], "Approved": True}
    fake.fail_next(1, status=200, method="POST", path_contains="coursemembers")
    assert client.get("/api/content/coursemembers").status_code == 200  # GET does not match
    resp = client.post("/api/content/coursemembers", json=body)
    assert resp.status_code == 200
    assert resp.json()["WasSuccessful"] is False and resp.json()["Errors"]
    assert fake.coursemembers == {} and fake.writes == 0

    fake.fail_next(2, status=503, body="down")
    assert client.get("/api/spaces/coworkers").status_code == 503
    resp = client.post("/api/content/coursemembers", json=body)
    assert resp.status_code == 503 and resp.text == "down"
    assert client.post("/api/content/coursemembers", json=body).json()["WasSuccessful"] is True


def test_delay_and_request_log(clock: Clock) -> None:
    fake = NexudusFake(clock=clock, delay=0.2)
    for client in serve(fake):
        start = time.monotonic()
        client.get("/api/spaces/coworkers", params={"Coworker_Email": "a@x.com"})
        assert time.monotonic() - start >= 0.2
        assert fake.requests[-1] == ("GET", "/api/spaces/coworkers", {"Coworker_Email": "a@x.com"})
        assert fake.requests[0][1] == "/api/token"


# ---------------------------------------------------------------------------- scale


def test_large_tables_filter_by_their_indexes_and_page_through_everything(fake: NexudusFake) -> None:
    """Correct answers from the indexes on a large tenant; how fast they are: `python -m bench.fake_scale`."""
    course = fake.add_course("Big")
    lessons = [fake.add_lesson(course["Id"], f"L{i}", i)["Id"] for i in range(10)]
    members: list[int] = []
    coworkers: list[int] = []
    for i in range(2_000):
        coworkers.append(fake.add_coworker(f"P{i}", f"p{i}@x.com")["Id"])
        members.append(fake.add_enrolment(course["Id"], coworkers[-1])["Id"])
    for member_id in members:
        for lesson_id in lessons:
            fake.add_completed_lesson(member_id, lesson_id)
    assert len(fake.coursecompletedlessons) == 20_000

    for client in serve(fake):
        body = client.get("/api/content/coursecompletedlessons", params={
            "CourseCompletedLesson_CourseMember": members[1234], "size": 100,
        }).json()
        assert body["TotalItems"] == 10
        assert {r["CourseMemberId"] for r in body["Records"]} == {members[1234]}
        page = client.get("/api/content/coursemembers", params={
            "CourseMember_Course": course["Id"], "CourseMember_Coworker": coworkers[5], "size": 1000,
        }).json()
        assert [r["Id"] for r in page["Records"]] == [members[5]]
        last = client.get("/api/content/coursecompletedlessons", params={"size": 1000, "page": 20}).json()
        assert last["TotalItems"] == 20_000 and len(last["Records"]) == 1000 and not last["HasNextPage"]


def test_reset_makes_a_new_fake_in_place(clock: Clock) -> None:
    fake = NexudusFake(clock=clock, writes_per_minute=1, delay=0.2)
    app = fake.app
    seed_course(fake)
    fake.fail_next(5)
    with SERVERS.serve(fake.app) as base_url, httpx.Client(base_url=base_url) as client:
        token(client)
    fake.reset()
    assert fake.app is app  # what a server already serves
    assert (fake.courses, fake.coworkers, fake.requests, fake.token_requests) == ({}, {}, [], 0)
    assert (fake.delay, fake.writes_per_minute, fake.clock is clock) == (0.0, None, False)
    with SERVERS.serve(fake.app) as base_url, httpx.Client(base_url=base_url) as client:
        client.headers["Authorization"] = f"Bearer {token(client)}"
        assert client.get("/api/content/courses").json()["Records"] == []  # no injected failure left
        course = seed_course(fake)["course"]
        assert course["Id"] == 1  # ids start again
        for name in ("ann", "bob"):  # no write limit left
            member = fake.add_coworker(name, f"{name}@x.com")
            body = {"CourseId": course["Id"], "CoworkerId": member["Id"]}
            resp = client.post("/api/content/coursemembers", json=body)
            assert resp.status_code == 200 and resp.json()["WasSuccessful"]
