"""Posting to Slack at Slack's pace, once: cards in a burst, 429s, lost answers, reminders, escalations.

The Slack stand-in enforces a per-channel limit shaped like Slack's (a burst of 5, then a steady
rate, HTTP 429 `ratelimited` with Retry-After past it) in every test, so a bot that bursts fails
here. The tests' Slack runs SLACK_SPEED times faster than Slack and the bot is told so; the first
test runs both at Slack's own 1 a second. The sync is the worker's own task, run by a fresh
Runtime, against the local Nexudus; requests waiting for days are made by setting their CreatedOn
in the past, not by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.tasks import approval_sync
from bot.render import Message, md
from bot.slack.poster import per_channel
from bot.slack.retries import safe_retry_handlers
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, GENERAL, MANAGER, SLACK_SPEED, SLACK_TOKEN, Tenant
from tests.test_approvals import buttons, card_for, cards, pending, runtime, sync, text

LEADS = "S0LEADS"


def top_level(slack: SlackWorkspace, channel: str = APPROVALS) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if not m.get("thread_ts")]


def of_kind(slack: SlackWorkspace, event: str, channel: str = APPROVALS) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if (m.get("metadata") or {}).get("event_type") == event]


def link_to(card: dict[str, Any]) -> str:
    return f"https://slack.com/archives/{card['channel']}/p{card['ts'].replace('.', '')}"


# ---- many waiting requests at once -------------------------------------------------------------


def add_waiting(nexudus: Tenant, count: int) -> None:
    """`count` more waiting requests for the Figma course, each asked a minute after the last, hours ago."""
    start = datetime.now(UTC) - timedelta(hours=3)
    for n in range(count):
        person = nexudus.fake.add_coworker(f"Member {n:02d}", f"m{n}@example.com")
        nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], person["Id"], approved=False,
                                   created_on=start + timedelta(minutes=n))


async def test_at_slacks_own_pace_a_sync_of_8_requests_keeps_to_one_message_a_second(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    """Slack's real limit on both sides: the bot's defaults, and the stand-in's (1 a second, burst 5)."""
    slack.limit_posts()
    add_waiting(nexudus, 7)  # with Ann's, 8 waiting: 8 cards, more than Slack's burst
    started = time.monotonic()
    async with runtime(nexudus, slack, slack_posts_per_second=1) as rt:
        await approval_sync(rt)
    took = time.monotonic() - started
    assert len(top_level(slack)) == len(cards(slack)) == 8
    assert slack.ratelimited == 0  # never past Slack's limit
    assert slack.most_in_window(3.0) <= 5 + 3  # a burst of 5, then 1 a second
    assert took >= 8 - 5  # paced, not burst: about one a second after the burst


async def test_a_sync_that_finds_30_waiting_requests_posts_a_summary_then_the_cards_oldest_first_at_slacks_pace(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    add_waiting(nexudus, 29)  # with Ann's (asked just now), 30 waiting requests
    started = time.monotonic()
    async with runtime(nexudus, slack) as rt:
        await approval_sync(rt)
    took = time.monotonic() - started

    posted = top_level(slack)
    assert len(posted) == 31 and len(cards(slack)) == 30
    assert "30 new requests are waiting for approval" in text(posted[0]) and "their cards follow" in text(posted[0])
    names = [re.search(r"\*(.+?)\* asks to join", text(card))[1] for card in posted[1:]]  # type: ignore[index]
    assert names == [f"Member {n:02d}" for n in range(29)] + ["Ann Other"]  # oldest first
    assert slack.ratelimited == 0  # never past the stand-in's limit
    assert slack.most_in_window(10.0 / SLACK_SPEED) <= 5 + 10  # a burst of 5, then SLACK_SPEED a second
    assert took >= (31 - 5 - 1) / SLACK_SPEED  # paced, not burst


async def test_a_few_new_requests_get_their_cards_at_once_without_a_summary(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    for person in ("ada", "joann", "grace"):
        pending(nexudus, "figma", person)
    await sync(nexudus, slack)
    assert len(top_level(slack)) == len(cards(slack)) == 4
    assert slack.most_in_window(0.5) == 4  # within the burst, at once (paced, they would span 0.75 s)


async def test_course_pending_answers_once_the_requests_are_read_while_their_cards_go_out_at_slacks_pace(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    for n in range(8):  # no worker is running: /course pending reads the platform itself
        person = nexudus.fake.add_coworker(f"Member {n}", f"m{n}@example.com")
        nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], person["Id"], approved=False)
    seen: list[str] = []
    slack.subscribe(lambda kind, payload: seen.append("card" if kind == "message" else kind))
    await bot.command("pending")  # the shell waits for everything the bot does, cards included
    assert "Waiting for approval: 9" in text(slack.responses[-1])
    assert len(cards(slack)) == 9 and slack.ratelimited == 0
    assert seen.index("response") < 6  # the answer did not wait for the cards


# ---- 429 and lost answers ------------------------------------------------------------------------


async def test_a_429_is_waited_out_and_the_card_is_posted_once(nexudus: Tenant, slack: SlackWorkspace) -> None:
    slack.ratelimit_next("chat.postMessage", 1, retry_after=1)
    started = time.monotonic()
    await sync(nexudus, slack)
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert len(cards(slack)) == 1 and slack.call_count("chat.postMessage") == 2
    assert (await sync(nexudus, slack)).posted == 0 and len(cards(slack)) == 1


async def test_a_channel_another_app_filled_answers_429_and_the_card_waits_its_turn(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    for n in range(5):  # someone else used the channel's whole burst just now
        result = slack.dispatch("chat.postMessage", {"channel": APPROVALS, "text": f"other {n}"}, SLACK_TOKEN)
        assert result.status == 200
    await sync(nexudus, slack)
    assert slack.ratelimited_calls() == [("chat.postMessage", APPROVALS)]
    assert len(cards(slack)) == 1 and "Ann Other" in text(cards(slack)[0])


@pytest.mark.parametrize("how", ["500", "drop"])
async def test_a_card_whose_answer_was_lost_is_found_by_its_metadata_not_posted_twice(
    nexudus: Tenant, slack: SlackWorkspace, how: str
) -> None:
    slack.lose_answer_next("chat.postMessage", 1, how=how)  # Slack stores the card, the answer never arrives
    async with runtime(nexudus, slack) as rt:
        report = await rt.approvals.sync()
        [card] = cards(slack)
        assert slack.call_count("chat.postMessage") == 1  # neither slack_sdk nor the bot sent it again
        looked = slack.calls_to("conversations.history")[-1]
        assert looked["channel"] == APPROVALS and looked["include_all_metadata"] in ("1", "true", True)
        assert report.posted == 1
        request = await rt.approvals.store.get(card["metadata"]["event_payload"]["request_id"])
        assert request is not None and request.card_ts == card["ts"]
        assert (await rt.approvals.sync()).posted == 0
    assert len(cards(slack)) == 1 and slack.call_count("chat.postMessage") == 1


async def test_the_client_re_sends_reads_after_a_lost_answer_but_never_a_post(slack: SlackWorkspace) -> None:
    client = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.base_url + "/api/", retry_handlers=safe_retry_handlers())
    slack.lose_answer_next("users.info", 1)
    assert (await client.users_info(user=MANAGER))["ok"] and slack.call_count("users.info") == 2
    slack.lose_answer_next("chat.postMessage", 1)
    with pytest.raises(SlackApiError) as lost:
        await client.chat_postMessage(channel=GENERAL, text="hello")
    assert lost.value.response.status_code == 500
    slack.lose_answer_next("chat.postMessage", 1, how="drop")
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel=GENERAL, text="hello again")
    assert slack.call_count("chat.postMessage") == 2 and len(slack.messages(GENERAL)) == 2
    slack.ratelimit_next("chat.update", 1, retry_after=0)  # a 429 of a paced method goes back to the Poster
    with pytest.raises(SlackApiError):
        await client.chat_update(channel=GENERAL, ts=slack.messages(GENERAL)[0]["ts"], text="edited")
    slack.ratelimit_next("users.info", 1, retry_after=0)  # other methods wait it out in slack_sdk
    assert (await client.users_info(user=MANAGER))["ok"]


# ---- reminders ------------------------------------------------------------------------------------


async def test_reminders_that_fall_due_together_are_one_message_per_channel_with_links_to_the_cards(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada", days_ago=2)
    pending(nexudus, "onboarding", "joann", days_ago=3)
    await sync(nexudus, slack, coursebot_reminder_hours=240)  # cards, no reminder yet
    grace = pending(nexudus, "figma", "grace", days_ago=2)
    with nexudus.fake.lock:  # asked two days ago, seen by the platform's change filter now
        nexudus.fake.coursemembers[grace["Id"]]["UpdatedOn"] = nexudus.fake._now()
    await sync(nexudus, slack, coursebot_reminder_hours=240, coursebot_approvals_channel=GENERAL)  # a moved channel
    assert len(cards(slack)) == 3 and len(top_level(slack, GENERAL)) == 1

    report = await sync(nexudus, slack, coursebot_reminder_hours=24)
    assert report.reminded == 3
    assert [m for m in slack.messages(APPROVALS) if m.get("thread_ts")] == []  # no thread reply per request
    [here] = of_kind(slack, "coursebot_reminder")
    shown = text(here)
    assert "2 requests are still waiting for a decision" in shown
    assert f"<{link_to(card_for(slack, 'Ada Lovelace'))}|Ada Lovelace>" in shown and "waiting 2 days" in shown
    assert f"<{link_to(card_for(slack, 'Jo Ann'))}|Jo Ann>" in shown and "waiting 3 days" in shown
    assert "Ann Other" not in shown  # asked just now
    [there] = of_kind(slack, "coursebot_reminder", GENERAL)
    [card] = [m for m in of_kind(slack, "coursebot_request", GENERAL) if "Grace Hopper" in text(m)]
    assert "1 request is still waiting" in text(there) and link_to(card) in text(there)

    assert (await sync(nexudus, slack, coursebot_reminder_hours=24)).reminded == 0  # once a day
    assert len(of_kind(slack, "coursebot_reminder")) == 1


async def test_a_reminder_slack_refused_is_tried_again_next_round(nexudus: Tenant, slack: SlackWorkspace) -> None:
    pending(nexudus, "figma", "ada", days_ago=2)
    await sync(nexudus, slack, coursebot_reminder_hours=240)
    slack.fail_next("chat.postMessage", 1, error="channel_not_found")
    assert (await sync(nexudus, slack, coursebot_reminder_hours=24)).reminded == 0
    assert (await sync(nexudus, slack, coursebot_reminder_hours=24)).reminded == 1
    assert len(of_kind(slack, "coursebot_reminder")) == 1


# ---- escalation ------------------------------------------------------------------------------------


async def test_a_request_waiting_past_the_escalation_time_is_raised_to_every_manager_once(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    managers = [MANAGER, LEADS]
    pending(nexudus, "figma", "ada", days_ago=4)
    pending(nexudus, "figma", "eve", days_ago=3.5)
    pending(nexudus, "onboarding", "joann", days_ago=2)  # reminded, not escalated
    report = await sync(nexudus, slack, coursebot_managers=managers, coursebot_escalate_hours=72)
    assert report.escalated == 2 and report.reminded == 1

    [raised] = of_kind(slack, "coursebot_escalation")
    shown = text(raised)
    assert "2 requests have been waiting more than 3 days" in shown
    assert f"<@{MANAGER}>" in shown and f"<!subteam^{LEADS}>" in shown
    assert f"<@{MANAGER}>" in raised["text"] and f"<!subteam^{LEADS}>" in raised["text"]  # they are notified
    assert "|Ada Lovelace>" in shown and link_to(card_for(slack, "Ada Lovelace")) in shown
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in json.dumps(raised)  # only the ids mention
    assert "Jo Ann" not in shown and "Ann Other" not in shown
    [reminder] = of_kind(slack, "coursebot_reminder")
    assert "Jo Ann" in text(reminder) and "Ada Lovelace" not in text(reminder)

    for _ in range(2):  # later rounds, and another worker: never again
        report = await sync(nexudus, slack, coursebot_managers=managers, coursebot_escalate_hours=72)
        assert report.escalated == 0
    assert len(of_kind(slack, "coursebot_escalation")) == 1
    assert buttons(card_for(slack, "Ada Lovelace"))  # still waiting for a decision, with its card


async def test_without_an_approvals_channel_nothing_is_posted_or_escalated(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada", days_ago=4)
    report = await sync(nexudus, slack, coursebot_approvals_channel=None)
    assert report.new == 2 and report.escalated == 0 and report.posted == 0
    assert slack.call_count("chat.postMessage") == 0


# ---- updates --------------------------------------------------------------------------------------


async def test_updates_of_one_message_that_wait_their_turn_together_are_sent_once_with_the_newest_content(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    async with runtime(nexudus, slack) as rt:
        poster = rt.poster
        first = await poster.post(GENERAL, Message(text=md("one")))
        other = await poster.post(GENERAL, Message(text=md("two")))
        for n in range(10):  # the channel's burst of updates, spent on another message
            await poster.update(GENERAL, other.ts, Message(text=md("two, edit {}", n)))
        before = slack.call_count("chat.update")
        started = time.monotonic()
        await asyncio.gather(*(poster.update(GENERAL, first.ts, Message(text=md("one, edit {}", n))) for n in range(8)))
        assert time.monotonic() - started >= 0.3  # they waited for the channel's pace
    assert slack.call_count("chat.update") == before + 1
    assert [m["text"] for m in slack.messages(GENERAL)] == ["one, edit 7", "two, edit 9"]


@pytest.mark.parametrize(("burst", "per_second", "window", "amount"), [
    (4, 1, 4, 4), (4, 2, 2, 4), (4, 3, 2, 4), (4, 4, 1, 4), (4, 20, 1, 20), (10, 2, 5, 10), (10, 8, 2, 10),
])
def test_a_channels_pace_never_exceeds_its_rate_nor_its_burst(burst: int, per_second: int, window: int,
                                                              amount: int) -> None:
    pace = per_channel(burst, per_second)
    assert (pace.get_expiry(), pace.amount) == (window, amount)
    assert pace.amount / pace.get_expiry() <= per_second
