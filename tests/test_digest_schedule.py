"""When the digest goes out: local wall-clock time (daylight saving included), once per channel per day.

Time is frozen with time-machine; the workers are real Runtimes on the real Redis, posting to
the local Slack and reading the local Nexudus over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.core.config import Settings
from bot.digest import keys as digest_keys
from bot.digest.sender import EVENT_TYPE, digest_tick, send_digest
from bot.digest.service import is_due
from bot.runtime import Runtime
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, Tenant, nexudus_settings

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, *parts: int) -> datetime:
    """A local wall-clock moment as an aware UTC datetime."""
    return datetime(*parts, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def settings_for(zone: str, digest_time: time = time(9, 0), **overrides: Any) -> Settings:
    return Settings(_env_file=None, coursebot_timezone=zone, coursebot_digest_time=digest_time,  # type: ignore[call-arg]
                    **overrides)


# ---- the clock rule, on its own ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("zone", "moment", "due"),
    [
        # Paris, the day before spring forward (UTC+1): 09:00 local is 08:00 UTC.
        (PARIS, datetime(2024, 3, 30, 7, 59, tzinfo=UTC), False),
        (PARIS, datetime(2024, 3, 30, 8, 0, tzinfo=UTC), True),
        # Paris, the spring-forward Sunday (UTC+2 from 01:00 UTC): 09:00 local is 07:00 UTC.
        (PARIS, datetime(2024, 3, 31, 6, 59, tzinfo=UTC), False),
        (PARIS, datetime(2024, 3, 31, 7, 0, tzinfo=UTC), True),
        # Paris, the fall-back Sunday (UTC+1 from 01:00 UTC): 09:00 local is 08:00 UTC again.
        (PARIS, datetime(2024, 10, 27, 7, 30, tzinfo=UTC), False),
        (PARIS, datetime(2024, 10, 27, 8, 0, tzinfo=UTC), True),
        # New York, fall-back Sunday 3 Nov 2024 (UTC-5 from 06:00 UTC): 09:00 local is 14:00 UTC.
        (NEW_YORK, datetime(2024, 11, 3, 13, 30, tzinfo=UTC), False),
        (NEW_YORK, datetime(2024, 11, 3, 14, 0, tzinfo=UTC), True),
        # ...and the Saturday before (UTC-4): 13:30 UTC is already 09:30 local.
        (NEW_YORK, datetime(2024, 11, 2, 13, 30, tzinfo=UTC), True),
        # New York, spring-forward Sunday 10 Mar 2024 (UTC-4 from 07:00 UTC): 09:00 local is 13:00 UTC.
        (NEW_YORK, datetime(2024, 3, 10, 12, 59, tzinfo=UTC), False),
        (NEW_YORK, datetime(2024, 3, 10, 13, 0, tzinfo=UTC), True),
    ],
)
def test_due_at_the_local_wall_clock_time_whatever_the_offset(zone: ZoneInfo, moment: datetime, due: bool) -> None:
    assert is_due(moment, settings_for(zone.key)) is due


def test_a_digest_time_skipped_by_the_spring_change_is_due_at_the_first_minute_after() -> None:
    settings = settings_for("Europe/Paris", time(2, 30))
    # 31 March 2024: at 01:00 UTC the clock jumps from 02:00 (CET) to 03:00 (CEST); 02:30 never shows.
    assert not is_due(datetime(2024, 3, 31, 0, 59, tzinfo=UTC), settings)  # 01:59 CET
    assert is_due(datetime(2024, 3, 31, 1, 0, tzinfo=UTC), settings)  # 03:00 CEST, the first moment past 02:30


# ---- workers -------------------------------------------------------------------------------------

@pytest.fixture
def quiet_tenant(blank_nexudus: Tenant) -> Tenant:
    """A tenant with one course and nobody waiting: what a worker reads when nothing happened."""
    fake = blank_nexudus.fake
    business = fake.add_business("Hub")
    host = fake.add_coworker("Host", "host@example.com")
    course = fake.add_course("Community Onboarding", business_id=business["Id"], host_id=host["Id"])
    fake.add_lesson(course["Id"], "Welcome", display_order=1)
    return Tenant(fake, blank_nexudus.url, {"onboarding": course}, {})


def worker_settings(tenant: Tenant, slack: SlackWorkspace, zone: str, **overrides: Any) -> Settings:
    return nexudus_settings(tenant, slack_api_url=slack.base_url + "/api/", coursebot_digest_channel=GENERAL,
                            coursebot_timezone=zone, **overrides)


@asynccontextmanager
async def workers(settings: Settings, n: int = 1) -> AsyncIterator[list[Runtime]]:
    runtimes = [Runtime.create(settings) for _ in range(n)]
    try:
        yield runtimes
    finally:
        for rt in runtimes:
            await rt.aclose()


def digests(slack: SlackWorkspace) -> list[dict[str, Any]]:
    return [m for m in slack.messages(GENERAL) if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]


async def test_a_worker_posts_at_nine_paris_time_on_the_spring_forward_sunday(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "Europe/Paris")
    async with workers(settings) as [rt]:
        with time_machine.travel(at(PARIS, 2024, 3, 31, 8, 59, 30), tick=True):
            await digest_tick(rt)
            assert digests(slack) == []
        with time_machine.travel(at(PARIS, 2024, 3, 31, 9, 0, 5), tick=True):
            await digest_tick(rt)
            await digest_tick(rt)
        [message] = digests(slack)
        assert message["metadata"]["event_payload"] == {"date": "2024-03-31"}
        assert "Sunday 31 March 2024" in json.dumps(message["blocks"])
        assert await rt.redis.get(digest_keys.DIGEST_SENT(GENERAL, "2024-03-31")) == message["ts"]


async def test_two_workers_racing_for_the_same_day_post_one_message(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "America/New_York")
    async with workers(settings, n=2) as [first, second]:
        with time_machine.travel(at(NEW_YORK, 2024, 11, 3, 9, 0, 1), tick=True):
            for _ in range(3):
                await asyncio.gather(digest_tick(first), digest_tick(second), send_digest(first),
                                     send_digest(second))
        assert len(digests(slack)) == 1
        assert slack.call_count("chat.postMessage") == 1


async def test_a_worker_down_at_nine_posts_at_eleven_but_never_the_next_morning_for_yesterday(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "America/New_York")
    async with workers(settings) as [rt]:
        with time_machine.travel(at(NEW_YORK, 2024, 11, 2, 11, 0), tick=True):  # came back up at 11:00
            await digest_tick(rt)
        assert [m["metadata"]["event_payload"]["date"] for m in digests(slack)] == ["2024-11-02"]
        with time_machine.travel(at(NEW_YORK, 2024, 11, 3, 5, 0), tick=True):  # early next morning
            await digest_tick(rt)
        assert len(digests(slack)) == 1
        # A day with no worker at all before the next morning is not sent a day late either.
        with time_machine.travel(at(NEW_YORK, 2024, 11, 5, 8, 59), tick=True):
            await digest_tick(rt)
        assert len(digests(slack)) == 1
        with time_machine.travel(at(NEW_YORK, 2024, 11, 5, 9, 1), tick=True):
            await digest_tick(rt)
        assert [m["metadata"]["event_payload"]["date"] for m in digests(slack)] == ["2024-11-02", "2024-11-05"]


async def test_an_empty_day_posts_a_short_nothing_new(quiet_tenant: Tenant, slack: SlackWorkspace) -> None:
    settings = worker_settings(quiet_tenant, slack, "UTC")
    async with workers(settings) as [rt]:
        with time_machine.travel(datetime(2024, 5, 14, 9, 0, 30, tzinfo=UTC), tick=True):
            await digest_tick(rt)
    [message] = digests(slack)
    text = json.dumps(message["blocks"])
    assert "Nothing new since the last digest" in text
    assert len(message["blocks"]) <= 3
    assert message["text"] == "Course digest for Tuesday 14 May 2024: nothing new."
    assert slack.files == []  # no chart on an empty day


async def test_an_empty_day_posts_nothing_when_configured(quiet_tenant: Tenant, slack: SlackWorkspace) -> None:
    settings = worker_settings(quiet_tenant, slack, "UTC", coursebot_digest_skip_empty=True)
    async with workers(settings) as [rt]:
        with time_machine.travel(datetime(2024, 5, 14, 9, 0, 30, tzinfo=UTC), tick=True):
            await digest_tick(rt)
            await digest_tick(rt)
            assert await rt.redis.get(digest_keys.DIGEST_SENT(GENERAL, "2024-05-14")) == "skipped"
    assert digests(slack) == []
    assert slack.call_count("chat.postMessage") == 0


async def test_a_failed_post_releases_the_day_and_a_later_tick_posts_it(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "UTC")
    slack.fail_next("chat.postMessage", 1, error="channel_not_found")
    async with workers(settings) as [rt]:
        with time_machine.travel(datetime(2024, 5, 14, 9, 0, 30, tzinfo=UTC), tick=True):
            await digest_tick(rt)
            assert digests(slack) == []
            assert await rt.redis.get(digest_keys.DIGEST_SENT(GENERAL, "2024-05-14")) is None  # released
            await digest_tick(rt)  # waits out the pause after a failure
            assert digests(slack) == []
            await rt.redis.delete(digest_keys.DIGEST_RETRY(GENERAL, "2024-05-14"))  # five minutes later
            await digest_tick(rt)
    assert len(digests(slack)) == 1


async def test_a_worker_that_died_after_slack_took_the_post_is_not_posted_again(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "UTC")
    async with workers(settings) as [rt]:
        with time_machine.travel(datetime(2024, 5, 14, 9, 5, tzinfo=UTC), tick=True):
            # What a worker leaves behind when it dies between chat.postMessage and recording the ts:
            # the message is in the channel, the posting marker is set, its claim has expired.
            await rt.redis.set(digest_keys.DIGEST_POSTING(GENERAL, "2024-05-14"), "claim:dead")
            posted = await rt.slack.chat_postMessage(
                channel=GENERAL, text="Course digest", metadata={"event_type": EVENT_TYPE,
                                                                 "event_payload": {"date": "2024-05-14"}})
            result = await send_digest(rt)
            assert result.status == "recovered" and result.ts == posted["ts"]
            assert await rt.redis.get(digest_keys.DIGEST_SENT(GENERAL, "2024-05-14")) == posted["ts"]
            await digest_tick(rt)
    assert slack.call_count("chat.postMessage") == 1


async def test_a_lost_lease_lets_another_worker_take_the_day(quiet_tenant: Tenant, slack: SlackWorkspace) -> None:
    settings = worker_settings(quiet_tenant, slack, "UTC")
    async with workers(settings) as [rt]:
        with time_machine.travel(datetime(2024, 5, 14, 9, 5, tzinfo=UTC), tick=True):
            # A worker claimed the day and died before posting (no posting marker): the lease expires.
            await rt.redis.set(digest_keys.DIGEST_SENT(GENERAL, "2024-05-14"), "claim:dead", px=500)
            assert (await send_digest(rt)).status == "busy"
            await asyncio.sleep(0.6)
            assert (await send_digest(rt)).status == "sent"
    assert len(digests(slack)) == 1


async def test_before_the_hour_a_worker_prepares_the_ledger_and_posts_nothing(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    settings = worker_settings(quiet_tenant, slack, "Europe/Paris")
    async with workers(settings) as [rt]:
        with time_machine.travel(at(PARIS, 2024, 5, 14, 6, 0), tick=True):
            await digest_tick(rt)
            assert await rt.redis.hget(digest_keys.DIGEST_LEDGER_META(), "synced_until") is not None
    assert digests(slack) == []


async def test_the_chart_counts_by_local_day_across_the_autumn_change(
    quiet_tenant: Tenant, slack: SlackWorkspace
) -> None:
    fake, course = quiet_tenant.fake, quiet_tenant.courses["onboarding"]["Id"]
    moments = [
        at(PARIS, 2024, 10, 26, 23, 59),  # Saturday, just before midnight (CEST)
        at(PARIS, 2024, 10, 27, 0, 30),  # Sunday 00:30 CEST (22:30 UTC on Saturday)
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of the two 02:30s
        datetime(2024, 10, 27, 1, 30, tzinfo=UTC),  # 02:30 CET, the second one
        at(PARIS, 2024, 10, 27, 23, 30),  # Sunday 23:30 CET (22:30 UTC), the 25th hour of the day
        at(PARIS, 2024, 10, 28, 0, 10),  # Monday
    ]
    for n, moment in enumerate(moments):
        person = fake.add_coworker(f"Person {n}", f"p{n}@example.com")
        fake.add_enrolment(course, person["Id"], created_on=moment)
    settings = worker_settings(quiet_tenant, slack, "Europe/Paris")
    async with workers(settings) as [rt]:
        with time_machine.travel(at(PARIS, 2024, 10, 29, 9, 0, 5), tick=True):
            result = await send_digest(rt)
    assert result.digest is not None
    per_day = {d.day.isoformat(): d.enrolments for d in result.digest.chart if d.enrolments}
    assert per_day == {"2024-10-26": 1, "2024-10-27": 4, "2024-10-28": 1}
