"""Every message within Slack's limits, and nothing lost past them.

The Slack stand-in refuses what Slack refuses (more than 50 blocks, a section over 3,000
characters, more than about 12,000 characters of block text in a message, more than 100
blocks in a view), so a bot that overflows fails here. Then the long surfaces, through the HTTP
route: a busy day's digest, `/course courses` with 200 long titles, the pending list and App Home
with 100 requests, a bulk report of 500 people. Each says how many more, and the rest is in the
next messages, the thread or a file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.digest.sender import EVENT_TYPE, send_digest
from bot.render import MESSAGE_CHARS, SECTION_MAX, block_chars
from devtools.scenarios import busy_day, long_title
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, SERVERS, SLACK_TOKEN, Tenant, nexudus_settings
from tests.test_approvals import click as click_card
from tests.test_approvals import runtime
from tests.test_bulk import DM, ThreadWorker, click, job_ids, wait_job
from tests.test_digest import settings_for


def within_limits(blocks: list[dict[str, Any]], *, max_blocks: int = 50, max_chars: int | None = MESSAGE_CHARS) -> None:
    assert len(blocks) <= max_blocks
    if max_chars is not None:
        assert block_chars(blocks) <= max_chars
    for block in blocks:
        assert len((block.get("text") or {}).get("text", "")) <= SECTION_MAX


def shown(documents: list[dict[str, Any]]) -> str:
    """Every text of these messages, unescaped as a reader sees it."""
    out = []
    for doc in documents:
        out.append(json.dumps(doc.get("blocks") or [], ensure_ascii=False))
        out.append(str(doc.get("text") or ""))
    return "\n".join(out).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ---- the stand-in refuses what Slack refuses ----------------------------------------------------------

def _section(chars: int) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * chars}}


async def test_the_slack_stand_in_refuses_oversize_messages_and_views(slack: SlackWorkspace) -> None:
    client = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.base_url + "/api/")
    too_many = [_section(10)] * 51
    cases = [([_section(10)] * 51, "invalid_blocks"), ([_section(3001)], "invalid_blocks"),
             ([_section(2900)] * 5, "msg_blocks_too_long")]
    for blocks, error in cases:
        for call in (client.chat_postMessage(channel=GENERAL, text="t", blocks=blocks),
                     client.chat_postEphemeral(channel=GENERAL, user=MANAGER, text="t", blocks=blocks)):
            with pytest.raises(SlackApiError) as refused:
                await call
            assert refused.value.response["error"] == error
    posted = await client.chat_postMessage(channel=GENERAL, text="t", blocks=[_section(2900)] * 4)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_update(channel=GENERAL, ts=posted["ts"], text="t", blocks=[_section(2900)] * 5)
    assert refused.value.response["error"] == "msg_blocks_too_long"
    with pytest.raises(SlackApiError) as refused:
        await client.views_publish(user_id=MANAGER, view={"type": "home", "blocks": [_section(10)] * 101})
    assert refused.value.response["error"] == "invalid_arguments"
    await client.views_publish(user_id=MANAGER, view={"type": "home", "blocks": [_section(10)] * 100})
    url = slack.new_response_url(channel=GENERAL, user=MANAGER)
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, json={"text": "t", "blocks": too_many})
        assert (answer.status_code, answer.text) == (400, "invalid_blocks")
        answer = await http.post(url, json={"text": "t", "blocks": [_section(2900)] * 5})
        assert (answer.status_code, answer.text) == (400, "msg_blocks_too_long")
    assert slack.responses == []


# ---- a busy day's digest -------------------------------------------------------------------------------

async def test_a_busy_days_digest_is_one_message_slack_takes_and_its_thread_holds_the_rest(
    slack: SlackWorkspace,
) -> None:
    now = datetime.now(UTC)
    day = busy_day(now)
    with SERVERS.serve(day.fake.app) as url:
        tenant = Tenant(day.fake, url, {}, {})
        async with Shell(settings_for(tenant, slack, coursebot_timezone="UTC"), as_user=MANAGER,
                         workspace=slack) as bot:
            result = await send_digest(bot.runtime)
            assert result.status == "sent" and result.digest is not None
            digest = result.digest
            assert (len(digest.pending or []), digest.new_count, digest.lessons_completed, len(digest.finished),
                    digest.stalled_count) == (60, 400, 300, 40, 30)
            [message] = [m for m in slack.messages(GENERAL)
                         if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]
            within_limits(message["blocks"])
            text = shown([message])
            assert "Waiting for your decision: 60" in text and "New enrolments: 400* in 45 courses" in text
            more = re.findall(r"…and (\d+) more ([a-z ]*)\(all in the thread\)", text)
            assert len(more) >= 4  # waiting, new enrolments, finishers, stalled: each cut, each says so
            # The thread holds everyone the message could only count: messages, or one CSV file.
            thread = [m for m in slack.messages(GENERAL) if m.get("thread_ts") == message["ts"]]
            files = [f for f in slack.files if f["thread_ts"] == message["ts"] and f["filename"].endswith(".csv")]
            for reply in thread:
                within_limits(reply["blocks"])
            everything = shown([message, *thread]) + "".join(f["bytes"].decode() for f in files)
            names = (*day.new_names, *day.waiting_names, *day.finished_names, *day.stalled_names)
            assert [n for n in names if n not in everything] == []
            assert [m["ts"] for m in slack.messages(GENERAL) if not m.get("thread_ts")] == [message["ts"]]
            # Approving the five requests that have buttons puts "approved by" lines in their place:
            # the updated digest still fits (the digest keeps room for them).
            for block in [b for b in message["blocks"] if b["type"] == "actions"]:
                element = {**block["elements"][0], "block_id": block["block_id"]}
                current = next(m for m in slack.messages(GENERAL) if m["ts"] == message["ts"])
                await click_card(bot, current, "digest_approve", channel=GENERAL, element=element)
    final = next(m for m in slack.messages(GENERAL) if m["ts"] == message["ts"])
    assert [b for b in final["blocks"] if b["type"] == "actions"] == []
    assert shown([final]).count("Approved by") == 5
    within_limits(final["blocks"], max_chars=MESSAGE_CHARS)
    assert slack.call_count("chat.update") == 5
    assert slack.call_count("chat.postMessage") == len(slack.messages(GENERAL)) + len(slack.messages(f"D{MANAGER}"))


# ---- /course courses, /course pending, App Home ----------------------------------------------------

async def test_two_hundred_courses_with_long_titles_come_in_pages_that_slack_takes(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
) -> None:
    titles = [long_title(n) for n in range(200)]
    for title in titles:
        nexudus.fake.add_course(title, visibility=1)
    await bot.command("courses")
    pages = slack.responses
    assert len(pages) >= 3
    for page in pages:
        within_limits(page["blocks"])
    first = shown([pages[0]])
    assert re.search(r"…and \d+ more courses in the next message\.", first)
    everything = shown(pages)
    assert [t for t in titles if t not in everything] == []
    assert "Community Onboarding" in everything  # and the tenant's own four


async def test_a_hundred_waiting_requests_list_in_pages_and_home_stays_within_100_blocks(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
) -> None:
    course = nexudus.courses["founders"]["Id"]
    names = []
    now = datetime.now(UTC)
    for n in range(100):
        name = f"Waiting Person {n:03d} of the very long name " + "N" * 60
        member = nexudus.fake.add_coworker(name, f"w{n:03d}@example.com", company_name="A Company " + "C" * 60)
        nexudus.fake.add_enrolment(course, member["Id"], approved=False, created_on=now - timedelta(hours=n + 1))
        names.append(name)
    async with runtime(nexudus, slack, coursebot_approvals_channel=None) as rt:  # no cards: the list only
        await rt.approvals.sync()
    await bot.command("pending")
    pages = slack.responses
    for page in pages:
        within_limits(page["blocks"])
    first = pages[0]
    approve = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]
               if e["action_id"] == "approval_approve"]
    assert len(approve) == 15
    assert "Approve all 101" in json.dumps(first["blocks"])
    assert "…and 86 more, oldest first, in the next message" in shown([first])
    everything = shown(pages)
    assert [n for n in names if n[:70] not in everything] == []

    await bot.runtime.approvals.opened_home(MANAGER)
    home = slack.home_views[MANAGER]
    within_limits(home["blocks"], max_blocks=100, max_chars=None)
    assert "…and 81 more: `/course pending` lists them all." in shown([home])


# ---- a bulk report of 500 people ---------------------------------------------------------------------

async def test_a_bulk_report_of_five_hundred_people_fits_and_its_csv_has_every_row(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    for n in range(300):
        nexudus.fake.add_coworker(f"Invitee {n:03d} " + "L" * 80, f"i{n:03d}@bulk.example")
    emails = [f"i{n:03d}@bulk.example" for n in range(300)] + [f"nobody{n:03d}@" + "x" * 60 + ".example"
                                                               for n in range(200)]
    settings = nexudus_settings(nexudus, nexudus_writes_per_minute=60_000)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        shell.channel = GENERAL
        out = "\n".join(await shell.command("invite onboarding " + " ".join(emails)))
        assert "Invite 300 people to Community Onboarding?" in out
        for response in slack.responses:
            within_limits(response["blocks"])
        confirmation = slack.responses[-1]
        assert "…and 180 more (all in the final report)." in shown([confirmation])
        with ThreadWorker(shell.runtime.settings):
            await click(shell, confirmation, "bulk_start", channel=GENERAL, ephemeral=True)
            [job_id] = set(job_ids(json.dumps(slack.messages(DM))))
            await wait_job(redis_client, job_id, within=120)
    [report] = [m for m in slack.messages(DM) if not m.get("thread_ts")]
    within_limits(report["blocks"])
    text = shown([report])
    assert "Done" in text and "…and 180 more (every row is in the CSV file in the thread)." in text
    assert "all 500 rows in the CSV file in this thread" in text
    [file] = slack.files
    assert file["thread_ts"] == report["ts"] and "<" not in file["title"]
    rows = list(csv.DictReader(io.StringIO(file["bytes"].decode())))
    assert len(rows) == 500 and {r["email"] for r in rows} == set(emails)
