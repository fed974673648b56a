"""What the digest says, what it costs the platform, and its buttons: end to end.

A local Nexudus (or MeltingSpot) over HTTP, the local Slack, the real Redis. Days are frozen
with time-machine where the content depends on dates.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from limits.aio.storage import MemoryStorage
from pydantic import SecretStr

from bot.core.config import Platform, Settings
from bot.core.models import Enrolment
from bot.core.pacing import Budget, smooth_per_minute
from bot.digest import keys as digest_keys
from bot.digest.render import digest_message
from bot.digest.sender import EVENT_TYPE, digest_tick, send_digest, service
from bot.digest.service import CourseGroup, Digest, Finish
from bot.digest_command import run_digest_command
from bot.platforms.base import CoursePlatform
from bot.platforms.http import RetryPolicy
from bot.platforms.nexudus import NexudusPlatform
from bot.render import SECTION_MAX
from bot.render.terminal import Button, TerminalView
from bot.runtime import Runtime
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, GENERAL, MANAGER, OUTSIDER, REDIS_URL, Tenant, nexudus_settings

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2024, 5, 14, 9, 30, tzinfo=PARIS)  # a Tuesday; the digest is due at 09:00


def local(day: int, hour: int, minute: int = 0, month: int = 5) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=PARIS)


def seen(message: dict[str, Any]) -> str:
    """The message as a person reads it (the shell's renderer)."""
    view = TerminalView(color=False)
    view.names = {MANAGER: "manager"}
    return "\n".join(view.blocks(message.get("blocks") or [], Button({}, None, None, ephemeral=False)))


def digests(slack: SlackWorkspace) -> list[dict[str, Any]]:
    return [m for m in slack.messages(GENERAL) if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]


def settings_for(tenant: Tenant, slack: SlackWorkspace, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"slack_api_url": slack.base_url + "/api/", "coursebot_digest_channel": GENERAL,
                              "coursebot_timezone": "Europe/Paris", **overrides}
    return nexudus_settings(tenant, **values)


@asynccontextmanager
async def runtime(settings: Settings, platform: CoursePlatform | None = None) -> AsyncIterator[Runtime]:
    rt = Runtime.create(settings, platform=platform)
    try:
        yield rt
    finally:
        await rt.aclose()


@pytest.fixture
def school(blank_nexudus: Tenant) -> Tenant:
    """A tenant whose history is dated around Tuesday 14 May 2024 (Paris): see each line below."""
    fake = blank_nexudus.fake
    with time_machine.travel(NOW, tick=False):
        hub = fake.add_business("Hub")
        host = fake.add_coworker("Host", "host@example.com")
        courses = {
            "onboarding": fake.add_course("Community Onboarding", 1, hub["Id"], host["Id"]),
            "founders": fake.add_course("Founders Circle", 3, hub["Id"], host["Id"]),
        }
        lessons = [fake.add_lesson(courses["onboarding"]["Id"], t, display_order=n)
                   for n, t in enumerate(("Welcome", "House rules", "Booking rooms"), start=1)]
        people = {key: fake.add_coworker(name, f"{key}@example.com") for key, name in (
            ("ada", "Ada Lovelace"), ("bob", "Bob Builder"), ("grace", "Grace Hopper"), ("hugo", "Hugo Stall"),
            ("ines", "Ines Started"), ("jo", "Jo Longago"), ("kim", "Kim Waiting"), ("ann", "Ann Other"))}
        onboarding, founders = courses["onboarding"]["Id"], courses["founders"]["Id"]
        # Waiting for approval, oldest first: kim (30 Apr), ann (10 May).
        fake.add_enrolment(founders, people["ann"]["Id"], approved=False, created_on=local(10, 12))
        fake.add_enrolment(founders, people["kim"]["Id"], approved=False, created_on=local(30, 9, month=4))
        # Ada enrolled on 1 May, did two lessons on 3 May and the last one this morning: finished.
        ada = fake.add_enrolment(onboarding, people["ada"]["Id"], created_on=local(1, 10))
        fake.add_completed_lesson(ada["Id"], lessons[0]["Id"], created_on=local(3, 10))
        fake.add_completed_lesson(ada["Id"], lessons[1]["Id"], created_on=local(3, 11))
        fake.add_completed_lesson(ada["Id"], lessons[2]["Id"], created_on=local(14, 8))
        # New since yesterday's 09:30: bob and grace. Bob did his first lesson this morning.
        bob = fake.add_enrolment(onboarding, people["bob"]["Id"], created_on=local(13, 10))
        fake.add_enrolment(onboarding, people["grace"]["Id"], created_on=local(13, 18))
        fake.add_completed_lesson(bob["Id"], lessons[0]["Id"], created_on=local(14, 8, 30))
        # Enrolled 14 days before (30 April, before 09:30): hugo never started, ines did.
        fake.add_enrolment(onboarding, people["hugo"]["Id"], created_on=local(30, 7, month=4))
        ines = fake.add_enrolment(onboarding, people["ines"]["Id"], created_on=local(30, 8, month=4))
        fake.add_completed_lesson(ines["Id"], lessons[0]["Id"], created_on=local(2, 9))
        # Stalled long ago: named in an earlier digest, not again.
        fake.add_enrolment(onboarding, people["jo"]["Id"], created_on=local(20, 10, month=4))
    return Tenant(fake, blank_nexudus.url, courses, people)


async def test_the_digest_tells_what_waits_who_joined_who_finished_and_who_stalled(
    school: Tenant, slack: SlackWorkspace
) -> None:
    async with runtime(settings_for(school, slack)) as rt:
        with time_machine.travel(NOW, tick=True):
            await digest_tick(rt)
    [message] = digests(slack)
    text = seen(message)
    assert "TUESDAY 14 MAY 2024" in text
    # Waiting, oldest first, with buttons.
    assert "Waiting for your decision: 2" in text
    assert text.index("Kim Waiting") < text.index("Ann Other")
    assert "[1] Approve   [2] Block" in text and "[3] Approve   [4] Block" in text
    # New enrolments since the last digest (here: the last 24 hours), per course.
    assert "New enrolments: 2 in 1 course" in text
    assert "Community Onboarding (2): Bob Builder, Grace Hopper" in text
    # Lessons and courses completed.
    assert "Progress: 2 lessons completed by 2 members; 1 course finished" in text
    assert "Ada Lovelace finished Community Onboarding" in text
    assert "Bob Builder finished" not in text
    # Stalled: hugo only (ines started, jo was named two weeks ago, kim still waits for approval).
    assert "Stalled: 1" in text and "Hugo Stall" in text
    assert "Ines Started" not in text and "Jo Longago" not in text
    assert message["text"] == ("Course digest for Tuesday 14 May 2024: 2 waiting for a decision, 2 new enrolments, "
                               "2 lessons completed, 1 courses finished, 1 stalled.")
    # The chart, in the digest's thread: one top-level message in the channel.
    [chart] = slack.files
    assert chart["thread_ts"] == message["ts"] and chart["channel"] == GENERAL
    assert chart["bytes"].startswith(b"\x89PNG") and chart["filename"] == "coursebot-digest-2024-05-14.png"
    assert [m["ts"] for m in slack.messages(GENERAL) if not m.get("thread_ts")] == [message["ts"]]
    assert "Last 14 days: enrolments" in text and "chart in the thread" in text


async def test_the_chart_counts_per_local_day_and_later_digests_read_only_the_new_days(
    school: Tenant, slack: SlackWorkspace, redis_client: Any
) -> None:
    async with runtime(settings_for(school, slack)) as rt:
        with time_machine.travel(NOW, tick=True):
            first = await send_digest(rt)
        assert first.digest is not None
        chart = {d.day.isoformat(): (d.enrolments, d.completions) for d in first.digest.chart}
        days = [d.day.isoformat() for d in first.digest.chart]
        assert (days[0], days[-1], len(days)) == ("2024-04-30", "2024-05-13", 14)
        assert chart["2024-04-30"] == (3, 0)  # kim, hugo, ines
        assert chart["2024-05-03"] == (0, 2)  # ada's two lessons
        assert chart["2024-05-13"] == (2, 0)  # bob and grace
        assert await redis_client.hgetall(digest_keys.DIGEST_COUNTS("2024-05-13")) == {
            "enrolments": "2", "completions": "0", "final": "1"}

        school.fake.reset_counters()
        with time_machine.travel(NOW + timedelta(days=1), tick=True):
            second = await send_digest(rt)
        assert second.status == "sent" and second.digest is not None
        reads = [params for method, path, params in school.fake.requests
                 if method == "GET" and path in ("/api/content/coursemembers", "/api/content/coursecompletedlessons")
                 and "CourseMember_Approved" not in params and "to_CourseMember_CreatedOn" not in params]
        # From the start of yesterday (Paris), the one day the chart has not counted yet.
        assert {p.get("from_CourseMember_CreatedOn") or p.get("from_CourseCompletedLesson_CreatedOn")
                for p in reads} == {"2024-05-13T22:00"}
        assert second.digest.chart[-1].day.isoformat() == "2024-05-14"
        assert (second.digest.chart[-1].enrolments, second.digest.chart[-1].completions) == (0, 2)
        # The second digest covers what happened since the first one: nothing new.
        assert second.digest.new_enrolments == [] and second.digest.lessons_completed == 0


def full_reads(tenant: Tenant) -> list[dict[str, str]]:
    """Reads of every completed lesson (no date filter)."""
    return [params for _, path, params in tenant.fake.requests
            if path == "/api/content/coursecompletedlessons" and "from_CourseCompletedLesson_CreatedOn" not in params]


async def test_course_completion_uses_lessons_done_before_the_window_without_rereading_them(
    school: Tenant, slack: SlackWorkspace
) -> None:
    async with runtime(settings_for(school, slack)) as rt:
        with time_machine.travel(NOW, tick=True):
            await send_digest(rt)
        assert len(full_reads(school)) == 1  # the progress ledger is built once...
        bob = next(r for r in school.fake.coursemembers.values() if r["CoworkerId"] == school.people["bob"]["Id"])
        lessons = sorted(r["Id"] for r in school.fake.courselessons.values())
        school.fake.add_completed_lesson(bob["Id"], lessons[1], created_on=local(14, 20))
        school.fake.add_completed_lesson(bob["Id"], lessons[2], created_on=local(15, 8))
        with time_machine.travel(NOW + timedelta(days=1), tick=True):
            result = await send_digest(rt)
    assert result.digest is not None
    assert [(f.member_name, f.title) for f in result.digest.finished] == [("Bob Builder", "Community Onboarding")]
    assert len(full_reads(school)) == 1  # ...and kept current by each day's reads


async def test_a_platform_failure_leaves_the_day_unclaimed_and_nothing_posted(
    school: Tenant, slack: SlackWorkspace
) -> None:
    settings = settings_for(school, slack)
    # The adapter's retries, with short pauses between them: they end the same way, sooner.
    assert settings.nexudus_username and settings.nexudus_password
    nexudus = NexudusPlatform(school.url, settings.nexudus_username, settings.nexudus_password.get_secret_value(),
                              Budget(MemoryStorage(), "writes", smooth_per_minute(600)),
                              policy=RetryPolicy(base_delay=0.01, throttle_statuses=frozenset({409, 429})))
    async with runtime(settings, nexudus) as rt:
        with time_machine.travel(NOW, tick=True):
            school.fake.fail_next(50, status=503, path_contains="coursemembers")
            result = await send_digest(rt)
            assert result.status == "failed"
            assert await rt.redis.get(digest_keys.DIGEST_SENT(GENERAL, "2024-05-14")) is None
    assert digests(slack) == []


# ---- safety and limits --------------------------------------------------------------------------

EVIL = "Eve <!channel> <https://evil.example|Reset password> & co"


async def test_every_name_is_escaped(blank_nexudus: Tenant, slack: SlackWorkspace) -> None:
    fake = blank_nexudus.fake
    hub = fake.add_business("Hub")
    host = fake.add_coworker("Host", "host@example.com")
    now = datetime.now(UTC)
    course = fake.add_course("Course <!here> & <https://x.example|y>", 3, hub["Id"], host["Id"])
    lesson = fake.add_lesson(course["Id"], "Only lesson <!everyone>", display_order=1)
    for n, created in enumerate((now - timedelta(hours=2), now - timedelta(days=14, hours=1))):
        eve = fake.add_coworker(f"{EVIL} {n}", f"eve{n}@example.com")
        fake.add_enrolment(course["Id"], eve["Id"], created_on=created)  # new today / stalled
    waiting = fake.add_coworker(f"{EVIL} waiting", "eve-w@example.com")
    fake.add_enrolment(course["Id"], waiting["Id"], approved=False, created_on=now - timedelta(hours=1))
    finisher = fake.add_coworker(f"{EVIL} done", "eve-d@example.com")
    done = fake.add_enrolment(course["Id"], finisher["Id"], created_on=now - timedelta(days=3))
    fake.add_completed_lesson(done["Id"], lesson["Id"], created_on=now - timedelta(minutes=5))
    async with runtime(settings_for(blank_nexudus, slack, coursebot_timezone="UTC")) as rt:
        result = await send_digest(rt)
    assert result.status == "sent"
    [message] = digests(slack)
    raw = json.dumps(message)
    for bad in ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "<https://x.example"):
        assert bad not in raw
    assert "&lt;!channel&gt;" in raw and "&amp; co" in raw and "&lt;!here&gt;" in raw
    text = seen(message)
    for section in ("Waiting for your decision: 1", "New enrolments: 1", "1 course finished", "Stalled: 1"):
        assert section in text


def _digest_of(n: int, name: str) -> Digest:
    now = datetime(2024, 5, 14, 9, tzinfo=UTC)
    pending = [Enrolment(id=str(i), course_id=str(i % 7), member_id=str(1000 + i), member_name=f"{name} {i}",
                         course_title=f"Course {i % 7} {name}", created_on=now - timedelta(minutes=i))
               for i in range(n)]
    groups = [CourseGroup(str(i), f"Course {i} {name}", tuple(f"{name} {i}-{j}" for j in range(3))) for i in range(n)]
    return Digest(
        day=now.date(), zone="UTC", since=now - timedelta(days=1), as_of=now, platform="Nexudus", stalled_days=14,
        pending=pending, new_enrolments=groups, lessons_completed=n * 3, lesson_members=n,
        finished=[Finish(str(i), f"Course {i} {name}", f"{name} {i}", now) for i in range(n)],
        stalled=groups[: n // 2],
    )


def test_five_hundred_of_everything_stays_within_block_kit_limits() -> None:
    long_name = "Zoë <b>&amp;" + "x" * 400
    message = digest_message(_digest_of(500, long_name))
    assert len(message.blocks) <= 50
    for block in message.blocks:
        text = (block.get("text") or {}).get("text", "")
        assert len(text) <= SECTION_MAX
        for element in block.get("elements") or []:
            assert len(element.get("value", "")) <= 2000
            assert len(element.get("text", "") if isinstance(element.get("text"), str) else "") <= SECTION_MAX
    raw = json.dumps(message.blocks)
    assert "<b>" not in raw
    assert "more (all in the thread): see them all with `/course pending`" in raw
    assert "more courses (all in the thread)." in raw and "more finished a course (all in the thread)." in raw
    assert message.files and message.files[0].filename == "coursebot-digest-2024-05-14.csv"
    assert sum(1 for b in message.blocks if b["type"] == "actions") == 5


async def test_five_hundred_waiting_and_five_hundred_new_post_within_limits(
    blank_nexudus: Tenant, slack: SlackWorkspace
) -> None:
    fake = blank_nexudus.fake
    hub = fake.add_business("Hub")
    host = fake.add_coworker("Host", "host@example.com")
    now = datetime.now(UTC)
    courses = [fake.add_course(f"Course {n} " + "T" * 100, 3, hub["Id"], host["Id"]) for n in range(40)]
    for n in range(1000):
        person = fake.add_coworker(f"Person {n} " + "N" * 120, f"p{n}@example.com")
        fake.add_enrolment(courses[n % 40]["Id"], person["Id"], approved=n % 2 == 0,
                           created_on=now - timedelta(minutes=n + 1))
    async with runtime(settings_for(blank_nexudus, slack, coursebot_timezone="UTC")) as rt:
        result = await send_digest(rt)
    assert result.status == "sent"
    [message] = digests(slack)
    assert len(message["blocks"]) <= 50
    assert all(len((b.get("text") or {}).get("text", "")) <= SECTION_MAX for b in message["blocks"])
    assert "Waiting for your decision: 500" in seen(message) and "New enrolments: 500" in seen(message)


# ---- preview, buttons, command line -------------------------------------------------------------

async def test_the_preview_is_private_and_posts_nothing(bot: Shell, slack: SlackWorkspace, redis_client: Any) -> None:
    out = "\n".join(await bot.command("digest"))
    assert "only you can see this" in out and "Preview, only you see this" in out
    assert "Waiting for your decision: 1" in out and "Ann Other" in out
    assert slack.messages(GENERAL) == []
    assert await redis_client.keys("coursebot:digest:C0GENERAL:*") == []
    bot.user = OUTSIDER
    assert "Only course managers" in "\n".join(await bot.command("digest"))


async def _posted_digest(bot: Shell) -> list[str]:
    result = await send_digest(bot.runtime)
    assert result.status == "sent"
    return bot.view.event("message", digests(bot.ws)[-1])  # numbers its buttons for bot.press


def _enrolment(tenant: Tenant, course: str, person: str) -> dict[str, Any]:
    return next(r for r in tenant.fake.coursemembers.values()
                if r["CourseId"] == tenant.courses[course]["Id"] and r["CoworkerId"] == tenant.people[person]["Id"])


async def test_approve_from_the_digest_changes_the_platform_once_and_shows_who(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    lines = await _posted_digest(bot)
    assert "[1] Approve   [2] Block" in "\n".join(lines)
    out = "\n".join(await bot.press(1))
    assert "Ann Other" in out and "approved" in out
    assert _enrolment(nexudus, "founders", "ann")["Approved"] is True
    updated = seen(digests(slack)[-1])
    assert "Approved by @manager" in updated and "[1] Approve" not in updated
    again = "\n".join(await bot.press(1))  # the old message's button, clicked again
    assert "already approved" in again
    puts = [r for r in nexudus.fake.requests if r[0] == "PUT"]
    assert len(puts) == 1


async def test_a_click_by_someone_who_is_not_a_manager_changes_nothing(bot: Shell, nexudus: Tenant) -> None:
    await _posted_digest(bot)
    bot.user = OUTSIDER
    out = "\n".join(await bot.press(2))
    assert "Only course managers" in out
    assert _enrolment(nexudus, "founders", "ann")["Blocked"] is False
    assert [r for r in nexudus.fake.requests if r[0] == "PUT"] == []


async def test_with_the_approval_sync_running_a_click_goes_through_the_request_and_its_card(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    await bot.runtime.approvals.sync()
    [card] = slack.messages(APPROVALS)
    nexudus.fake.reset_counters()
    await _posted_digest(bot)
    assert not [r for r in nexudus.fake.requests if r[1] == "/api/content/coursemembers"
                and r[2].get("CourseMember_Approved") == "false"]  # waiting requests came from Redis
    await bot.press(2)  # Block (confirmed in Slack's dialog)
    assert _enrolment(nexudus, "founders", "ann")["Blocked"] is True
    card_now = next(m for m in slack.messages(APPROVALS) if m["ts"] == card["ts"])
    assert "blocked" in seen(card_now).lower() and "Approve" not in seen(card_now)
    assert "blocked from" in seen(digests(slack)[-1])
    assert "Nothing to change" in "\n".join(await bot.press(1))  # Approve after Block: the first decision holds
    assert _enrolment(nexudus, "founders", "ann")["Approved"] is False


async def test_the_command_line_prints_a_dry_run_and_posts_once(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    settings = settings_for(nexudus, slack, coursebot_managers=[MANAGER])
    out: list[str] = []
    assert await run_digest_command(settings, dry_run=True, out=out.append) == 0
    assert "COURSE DIGEST" in out[0] and "(dry run: nothing was posted)" in out
    assert any("Ann Other" in line for line in out)
    assert slack.messages(GENERAL) == []
    assert await run_digest_command(settings, dry_run=False, out=out.append) == 0
    assert await run_digest_command(settings, dry_run=False, out=out.append) == 0
    assert out[-2].startswith("Posted the digest") and "already posted" in out[-1]
    assert len(digests(slack)) == 1


# ---- MeltingSpot: the same from participant statuses --------------------------------------------

async def test_on_meltingspot_the_digest_comes_from_participant_statuses(
    meltingspot: Callable[..., tuple[MeltingSpotFake, str]], slack: SlackWorkspace
) -> None:
    fake, url = meltingspot(api_key="ms_key")
    now = datetime.now(UTC)
    course = fake.add_course("Community 101")
    ids = {name: fake.add_member(f"{name.lower()}@example.com", name, "Test") for name in
           ("New", "Finisher", "Stalled", "Started", "Veteran")}
    fake.add_participant(course, ids["New"], "Invited", invited_at=now - timedelta(hours=2))
    finisher = fake.add_participant(course, ids["Finisher"], "Started", invited_at=now - timedelta(days=5),
                                    started_at=now - timedelta(days=4))
    fake.add_participant(course, ids["Stalled"], "Invited", invited_at=now - timedelta(days=14, hours=1))
    fake.add_participant(course, ids["Started"], "Started", invited_at=now - timedelta(days=14, hours=2),
                         started_at=now - timedelta(days=13))
    # Finished a month ago, visited today: history, not news.
    fake.add_participant(course, ids["Veteran"], "Completed", invited_at=now - timedelta(days=60),
                         started_at=now - timedelta(days=59), completed_at=now - timedelta(days=30),
                         last_activity_at=now - timedelta(hours=1))
    settings = Settings(_env_file=None, redis_url=REDIS_URL, course_platform=Platform.MELTINGSPOT,  # type: ignore[call-arg]
                        meltingspot_base_url=url, meltingspot_api_key=SecretStr("ms_key"),
                        slack_api_url=slack.base_url + "/api/", slack_bot_token=SecretStr("xoxb-test"),
                        coursebot_digest_channel=GENERAL)
    async with runtime(settings) as rt:
        first = await service(rt).build(datetime.now(UTC), channel=GENERAL)
        fake.set_participant_status(finisher, "Completed")
        result = await send_digest(rt)
    assert first.finished == []
    assert result.status == "sent" and result.digest is not None
    text = seen(digests(slack)[0])
    assert "Waiting for your decision" not in text  # MeltingSpot has no approval step
    assert "New enrolments: 1" in text and "New Test" in text
    assert "Finisher Test finished Community 101" in text and "Veteran" not in text
    assert "Stalled: 1" in text and "Stalled Test" in text and "Started Test" not in text
    assert result.digest.chart_label == "courses completed"


def test_names_made_of_nothing_but_escapes_still_fit_a_section() -> None:
    message = digest_message(_digest_of(30, "&<>" * 40))
    for block in message.blocks:
        assert len((block.get("text") or {}).get("text", "")) <= SECTION_MAX
    assert "&amp;&lt;&gt;" in json.dumps(message.blocks) and "<>" not in json.dumps(message.blocks)
