"""What a manager's answer costs the platform, end to end: signed `/course` requests in, the local
Nexudus's request log (and its holds, which keep chosen requests waiting until released) out.

No assertion here measures time: where something must happen "while" something else is slow, the
slow requests are held at the fake and the test looks at what reached it meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from bot.platforms.cache import CachedPlatform
from devtools import requests as slack_requests
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, Tenant
from tests.test_bulk_meltingspot import API_KEY, bulk_settings
from tests.test_course_admin import form_values, open_form, submit

COURSES = "/api/content/courses"
MEMBERS = "/api/content/coursemembers"
LESSONS = "/api/content/courselessons"


def text_of(lines: list[str]) -> str:
    return "\n".join(lines)


def api_requests(tenant: Tenant, since: int = 0) -> list[tuple[str, str, dict[str, str]]]:
    with tenant.fake.lock:
        return [r for r in tenant.fake.requests[since:] if r[1] != "/api/token"]


def mark(tenant: Tenant) -> int:
    with tenant.fake.lock:
        return len(tenant.fake.requests)


async def send(bot: Shell, text: str) -> httpx.Response:
    """A signed slash command, without waiting for the work that follows its ack."""
    url = bot.ws.new_response_url(channel=bot.channel, user=bot.user)
    body = slack_requests.slash_command(text, user_id=bot.user, channel_id=bot.channel, response_url=url,
                                        trigger_id=bot.ws.new_trigger_id())
    response = await bot.http.post("/slack/events", content=body,
                                   headers=slack_requests.signed_headers(bot.secret, body))
    assert response.status_code == 200
    return response


async def until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Wait for `condition` (a deadline only so that a broken bot fails instead of hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


async def settle() -> None:
    for _ in range(300):
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not others:
            return
        await asyncio.wait(others, timeout=0.1)


def answers(bot: Shell) -> list[dict[str, Any]]:
    return [payload for kind, payload in bot.events if kind == "response"]


def cache_of(bot: Shell) -> CachedPlatform:
    platform = bot.runtime.platform
    assert isinstance(platform, CachedPlatform)
    return platform


async def test_a_warm_status_by_id_costs_one_platform_request(bot: Shell, nexudus: Tenant) -> None:
    course_id = nexudus.courses["founders"]["Id"]
    await bot.command("help")  # nothing read yet
    before = mark(nexudus)
    cold = text_of(await bot.command(f"status {course_id}"))
    assert "Founders Circle" in cold and "Members: 1" in cold and "Waiting for approval: 1" in cold
    # Before: the whole course list, then the enrolments, then the lessons, one after another.
    # Now the course alone, then its enrolments and its lessons together: no more requests than before.
    cold_reads = api_requests(nexudus, before)
    assert sorted(path for _, path, _ in cold_reads) == sorted([f"{COURSES}/{course_id}", MEMBERS, LESSONS])

    # Warm: only the enrolments, which are never cached, so a change made on the platform shows at once.
    nexudus.fake.add_enrolment(course_id, nexudus.people["ada"]["Id"])
    before = mark(nexudus)
    warm = text_of(await bot.command(f"status {course_id}"))
    assert "Members: 2" in warm and "Approved: 1" in warm
    [(method, path, params)] = api_requests(nexudus, before)
    assert (method, path, params["CourseMember_Course"]) == ("GET", MEMBERS, str(course_id))

    # By title, the course list is read once, then served from the cache just as well.
    assert "Members: 2" in text_of(await bot.command('status "Founders Circle"'))
    before = mark(nexudus)
    assert "Members: 2" in text_of(await bot.command('status "Founders Circle"'))
    assert [p for _, p, _ in api_requests(nexudus, before)] == [MEMBERS]


async def test_a_member_status_reads_course_and_member_together_then_enrolment_and_lessons(
    bot: Shell, nexudus: Tenant
) -> None:
    course_id = nexudus.courses["onboarding"]["Id"]
    fake = nexudus.fake
    enrolment = fake.add_enrolment(course_id, nexudus.people["ada"]["Id"])
    first_lesson = min(fake.courselessons.values(), key=lambda le: le["Id"])
    fake.add_completed_lesson(enrolment["Id"], first_lesson["Id"])
    assert "1 of 3 lessons" in text_of(await bot.command(f"status {course_id} ada@example.com"))
    # Warm: the course, the member and the lessons are cached; the enrolment and its completions are not.
    fake.add_completed_lesson(enrolment["Id"], max(fake.courselessons.values(), key=lambda le: le["Id"])["Id"])
    before = mark(nexudus)
    assert "2 of 3 lessons" in text_of(await bot.command(f"status {course_id} ada@example.com"))
    assert [p for _, p, _ in api_requests(nexudus, before)] == [MEMBERS, "/api/content/coursecompletedlessons"]


async def test_courses_counts_every_course_from_one_read_of_the_enrolments(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("courses")
    nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], nexudus.people["ada"]["Id"], approved=False)
    before = mark(nexudus)
    out = text_of(await bot.command("courses"))
    assert out.count("1 member (0 approved, 1 waiting)") == 2  # Founders Circle, and the new one in the Figma workshop
    [(_, path, params)] = api_requests(nexudus, before)
    assert path == MEMBERS and "CourseMember_Course" not in params


async def test_a_course_made_with_new_is_listed_at_once(bot: Shell, nexudus: Tenant) -> None:
    assert "Spring cohort" not in text_of(await bot.command("courses"))  # the list is cached now
    form = await open_form(bot)
    assert await submit(bot, form, form_values(nexudus, title="Spring cohort")) == {}
    assert "Spring cohort" in text_of(await bot.command("courses"))
    assert "Spring cohort" in text_of(await bot.command('status "Spring cohort"'))


async def test_a_course_made_in_the_admin_panel_is_found_by_id_at_once(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("courses")  # the list is cached without it
    made = nexudus.fake.add_course("Night owls", visibility=1)
    assert "Night owls" in text_of(await bot.command(f"status {made['Id']}"))


async def test_identical_reads_at_the_same_moment_are_made_once(bot: Shell, nexudus: Tenant) -> None:
    course_id = nexudus.courses["founders"]["Id"]
    await bot.command(f"status {course_id}")  # the course and its lessons are cached now
    hold = nexudus.fake.hold("GET", MEMBERS)
    before = mark(nexudus)
    await send(bot, f"status {course_id}")
    await until(lambda: hold.waiting == 1, "the first status to reach the platform")
    await send(bot, f"status {course_id}")
    await until(lambda: cache_of(bot).stats.shared >= 1, "the second status to join the read in flight")
    hold.release()
    await settle()
    assert [p for _, p, _ in api_requests(nexudus, before)] == [MEMBERS]  # one read for both
    texts = [a["text"] for a in answers(bot)[-2:]]
    assert texts == ["Founders Circle: 1 member (0 approved, 1 waiting)"] * 2


async def test_an_enrolment_written_meanwhile_is_not_answered_from_a_read_begun_before_it(
    bot: Shell, nexudus: Tenant
) -> None:
    course_id = nexudus.courses["founders"]["Id"]
    await bot.command(f"status {course_id}")
    hold = nexudus.fake.hold("GET", MEMBERS, where=lambda _m, _p, params: "CourseMember_Coworker" not in params)
    await send(bot, f"status {course_id}")  # its count is read before the enrolment below
    await until(lambda: hold.waiting == 1, "the first count to reach the platform")
    await send(bot, f"enrol {course_id} ada@example.com")  # (the shell's command() would wait for the held read)
    await until(lambda: any(a["text"] == "Ada Lovelace: enrol Founders Circle" for a in answers(bot)),
                "the enrolment to be made")
    before = mark(nexudus)
    await send(bot, f"status {course_id}")  # after it: must not join the read begun before
    await until(lambda: hold.waiting == 2, "a second count to reach the platform")
    hold.release()
    await settle()
    assert [p for _, p, _ in api_requests(nexudus, before)] == [MEMBERS]
    texts = [a["text"] for a in answers(bot)[-2:]]
    assert "Founders Circle: 2 members (1 approved, 1 waiting)" in texts


async def test_a_slow_list_does_not_hold_back_an_approval(bot: Shell, nexudus: Tenant) -> None:
    fake = nexudus.fake
    for n in range(8):
        fake.add_course(f"Evening class {n}", visibility=1)
    await bot.command("courses")  # the course list is cached, the token is held
    lanes = cache_of(bot).inner.lanes
    course_ids = [str(c["Id"]) for c in fake.courses.values()]
    assert len(course_ids) > lanes.total  # more counts than the process may have in flight at all

    counts = fake.hold("GET", MEMBERS, where=lambda _m, _p, params: "CourseMember_Coworker" not in params)
    for course_id in course_ids:
        await send(bot, f"status {course_id}")
    await until(lambda: counts.waiting == lanes.list, "every list slot to be taken by a count")

    before = mark(nexudus)
    await send(bot, "approve founders ann@example.com")

    def approved() -> bool:
        return any(m == "PUT" and p == MEMBERS for m, p, _ in api_requests(nexudus, before))

    await until(approved, "the approval's write to reach the platform")
    assert counts.waiting == lanes.list  # the counts are all still held: the write went by them
    fake.release_holds()
    await settle()
    counted = [params["CourseMember_Course"] for _, path, params in api_requests(nexudus)
               if path == MEMBERS and "CourseMember_Coworker" not in params and "CourseMember_Course" in params]
    assert sorted(counted) == sorted(course_ids)
    assert fake.max_in_flight <= lanes.total
    [record] = [r for r in fake.coursemembers.values() if r["CourseId"] == nexudus.courses["founders"]["Id"]]
    assert record["Approved"] is True
    assert len(answers(bot)) == len(course_ids) + 1  # every status, and the approval


async def test_on_meltingspot_a_course_id_is_found_in_the_cached_list(slack: SlackWorkspace) -> None:
    fake = MeltingSpotFake(API_KEY)
    course_id = fake.add_course("Community Onboarding", privacy="Public")
    fake.add_participant(course_id, fake.add_member("ada@example.com", "Ada", "Lovelace"))
    with fake.serve() as url:
        async with Shell(bulk_settings(url), as_user=MANAGER, workspace=slack) as bot:
            bot.channel = GENERAL
            assert "Community Onboarding" in text_of(await bot.command("courses"))
            with fake.lock:
                before = len(fake.requests)
            out = text_of(await bot.command(f"status {course_id}"))
            assert "Community Onboarding" in out and "Members: 1" in out
            with fake.lock:
                paths = [p for _, p, _ in fake.requests[before:]]
            assert paths == [f"/v1/courses/{course_id}/participants"]  # the count; the course is cached
