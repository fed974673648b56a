"""`/course invite` on MeltingSpot (the local fake, with its request limit on): bulk invites in chunks."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.core.config import Settings
from devtools import requests as slack_requests
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, meltingspot_settings
from tests.test_bulk import DM, ThreadWorker, click, eventually, job_ids, last_response, text_of, wait_job

API_KEY = "ms_bulk_test_key"
PER_10S = 100  # the bot's budget, and the fake's limit (plus JITTER)
JITTER = 5  # requests are paced when sent and counted when they arrive: on a loaded machine a few bunch up


def bulk_settings(url: str, **overrides: Any) -> Settings:
    return meltingspot_settings(url, API_KEY, meltingspot_requests_per_10s=PER_10S, **overrides)


@pytest.fixture
def spot(meltingspot: Callable[..., tuple[MeltingSpotFake, str]]) -> tuple[MeltingSpotFake, str]:
    return meltingspot(API_KEY, requests_per_10s=PER_10S + JITTER)


@pytest.fixture
async def ms_bot(spot: tuple[MeltingSpotFake, str], slack: SlackWorkspace) -> AsyncIterator[Shell]:
    async with Shell(bulk_settings(spot[1]), as_user=MANAGER, workspace=slack) as shell:
        shell.channel = GENERAL
        with ThreadWorker(shell.runtime.settings):
            yield shell


def cohort(fake: MeltingSpotFake, ws: SlackWorkspace, count: int) -> list[str]:
    ids = fake.seed_members(count, domain="spot.example")
    users = []
    for n in range(count):
        users.append(f"UMS{n:05d}")
        ws.add_user(users[-1], f"m{n}", f"user{n:05d}@spot.example")
    ws.add_channel("C0SPOT", "spot-cohort", users)
    return ids


def bulk_sizes(fake: MeltingSpotFake) -> list[int]:
    with fake.lock:
        return [len(body["spotMemberIds"]) for method, path, body in fake.json_bodies
                if method == "POST" and path.endswith("participants~bulkInvite")]


async def test_a_channel_is_invited_in_chunks_of_at_most_100_within_the_request_budget(
    spot: tuple[MeltingSpotFake, str], ms_bot: Shell, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    fake, _ = spot
    course = fake.add_course("Onboarding")
    ids = cohort(fake, slack, 230)
    fake.add_participants(course, ids[:10], "Started")
    left = fake.add_member("left@spot.example", status="Left")
    slack.add_user("UMSLEFT", "left", "left@spot.example")
    slack.add_user("UMSNOTHERE", "notthere", "not.there@elsewhere.example")
    slack.add_channel("C0SPOT2", "stragglers", ["UMSLEFT", "UMSNOTHERE"])

    out = text_of(await ms_bot.command("invite Onboarding <#C0SPOT|spot-cohort> <#C0SPOT2|stragglers>"))
    assert "Invite 231 people to Onboarding?" in out and "221 to do, 10 already enrolled" in out
    assert "requests a second" in out and "MELTINGSPOT_REQUESTS_PER_10S" in out
    await click(ms_bot, last_response(slack), "bulk_start", channel=GENERAL, ephemeral=True)
    [job_id] = set(job_ids(json.dumps(last_response(slack))))
    record = await wait_job(redis_client, job_id)
    assert record.status.value == "done"

    participants = Counter(p.member_id for p in fake.course_participants(course))
    assert set(participants) == set(ids) and set(participants.values()) == {1}
    assert left not in participants
    sizes = bulk_sizes(fake)
    assert sizes[:2] == [100, 100] and max(sizes) <= 100
    # The chunk holding the member who left the spot is refused (400) and halved until that one is alone.
    assert len(sizes) <= 3 + 2 * 6
    assert fake.throttled == 0

    report = json.dumps(slack.messages(DM)[-1]["blocks"])
    assert "Invited*\\n220" in report and "Already enrolled*\\n10" in report
    assert "Not found on MeltingSpot*\\n1" in report and "not.there@elsewhere.example" in report
    assert "Failed*\\n1" in report and "Malformed payload" in report  # the one who left the spot
    rows = list(csv.DictReader(io.StringIO(slack.files[0]["bytes"].decode())))
    assert len(rows) == 232


async def test_missing_spot_members_are_reported_and_not_created_by_default(
    spot: tuple[MeltingSpotFake, str], ms_bot: Shell, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    fake, _ = spot
    course = fake.add_course("Onboarding")
    fake.add_member("ada@example.com")
    out = text_of(await ms_bot.command("invite Onboarding ada@example.com newbie@example.com"))
    [job_id] = set(job_ids(out) or job_ids(json.dumps(slack.messages(DM))))
    await wait_job(redis_client, job_id)
    assert len(fake.course_participants(course)) == 1
    assert "newbie@example.com" in json.dumps(slack.messages(DM)[-1]["blocks"])
    with fake.lock:
        assert not any(m.email == "newbie@example.com" for m in fake.members.values())


async def test_with_meltingspot_create_members_missing_people_are_added_to_the_spot_then_invited(
    spot: tuple[MeltingSpotFake, str], slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    fake, url = spot
    course = fake.add_course("Onboarding")
    async with Shell(bulk_settings(url, meltingspot_create_members=True), as_user=MANAGER,
                     workspace=slack) as shell:
        shell.channel = GENERAL
        with ThreadWorker(shell.runtime.settings):
            out = text_of(await shell.command("invite Onboarding newbie@example.com"))
            [job_id] = set(job_ids(out) or job_ids(json.dumps(slack.messages(DM))))
            await wait_job(redis_client, job_id)
    [participant] = fake.course_participants(course)
    with fake.lock:
        assert fake.members[participant.member_id].email == "newbie@example.com"


# ---- the invitation email and the inviter ----------------------------------------------------------

def invitations(fake: MeltingSpotFake) -> list[dict[str, Any]]:
    with fake.lock:
        return [body for method, path, body in fake.json_bodies
                if method == "POST" and path.endswith("participants~bulkInvite")]


async def invite(shell: Shell, slack: SlackWorkspace, redis_client: aioredis.Redis, text: str) -> str:
    before = set(job_ids(json.dumps(slack.messages(DM))))
    out = text_of(await shell.command(text))
    [job_id] = set(job_ids(out) or job_ids(json.dumps(slack.messages(DM)))) - before
    await wait_job(redis_client, job_id)
    return out


async def test_invited_people_get_meltingspot_s_email_from_the_manager_unless_no_email(
    spot: tuple[MeltingSpotFake, str], ms_bot: Shell, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    fake, _ = spot
    course = fake.add_course("Onboarding")
    manager = fake.add_member("manager@example.com", "Mia", "Manager", role="Admin")  # the manager's Slack email
    fake.add_member("ada@example.com")
    fake.add_member("grace@home.example")

    await invite(ms_bot, slack, redis_client, "invite Onboarding ada@example.com")
    [body] = invitations(fake)
    assert body["withEmailNotification"] is True and body["invitedBySpotMemberId"] == manager
    assert fake.invitation_emails == [(course, "ada@example.com", manager)]

    await invite(ms_bot, slack, redis_client, "invite Onboarding grace@home.example --no-email")
    body = invitations(fake)[-1]
    assert body["withEmailNotification"] is False and body["invitedBySpotMemberId"] == manager
    assert len(fake.invitation_emails) == 1  # Grace was invited without an email
    assert {p.invited_by for p in fake.course_participants(course)} == {manager}


async def test_a_manager_who_is_not_a_spot_member_invites_without_an_inviter_and_is_not_added(
    spot: tuple[MeltingSpotFake, str], slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    fake, url = spot
    fake.add_course("Onboarding")
    fake.add_member("ada@example.com")
    settings = bulk_settings(url, meltingspot_invite_email=False, meltingspot_create_members=True)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        shell.channel = GENERAL
        with ThreadWorker(shell.runtime.settings):
            await invite(shell, slack, redis_client, "invite Onboarding ada@example.com")
    [body] = invitations(fake)
    assert body["withEmailNotification"] is False  # MELTINGSPOT_INVITE_EMAIL=false
    assert "invitedBySpotMemberId" not in body
    assert fake.invitation_emails == []
    with fake.lock:
        assert not any(m.email == "manager@example.com" for m in fake.members.values())


@pytest.mark.parametrize("setting", [True, False])
async def test_the_invite_form_s_email_box_starts_as_the_setting_and_its_choice_reaches_meltingspot(
    spot: tuple[MeltingSpotFake, str], slack: SlackWorkspace, redis_client: aioredis.Redis, setting: bool,
) -> None:
    fake, url = spot
    course = fake.add_course("Onboarding")
    manager = fake.add_member("manager@example.com")
    fake.add_member("ada@example.com")
    async with Shell(bulk_settings(url, meltingspot_invite_email=setting), as_user=MANAGER,
                     workspace=slack) as shell:
        shell.channel = GENERAL
        with ThreadWorker(shell.runtime.settings):
            await shell.command("invite Onboarding")
            view = slack.views[-1]["view"]
            box = {b.get("block_id"): b for b in view["blocks"]}["email"]["element"]
            assert box["type"] == "checkboxes" and "MeltingSpot's invitation" in box["options"][0]["text"]["text"]
            assert bool(box.get("initial_options")) is setting
            ticked = [] if setting else box["options"]  # the manager flips it
            values = {"course": {"course": {"selected_option": {"value": course}}},
                      "emails": {"emails": {"value": "ada@example.com"}},
                      "email": {"email": {"type": "checkboxes", "selected_options": ticked}}}
            body = slack_requests.interaction(slack_requests.view_submission(user_id=MANAGER, view=view,
                                                                             values=values))
            response = await shell.http.post("/slack/events", content=body,
                                             headers=slack_requests.signed_headers(shell.secret, body))
            assert response.status_code == 200 and not response.content
            await eventually(lambda: job_ids(json.dumps(slack.messages(DM))))
            await wait_job(redis_client, job_ids(json.dumps(slack.messages(DM)))[0])
    [sent] = invitations(fake)
    assert sent["withEmailNotification"] is (not setting) and sent["invitedBySpotMemberId"] == manager
    assert fake.invitation_emails == ([] if setting else [(course, "ada@example.com", manager)])


async def test_no_email_opens_the_form_with_the_box_unticked(
    spot: tuple[MeltingSpotFake, str], ms_bot: Shell, slack: SlackWorkspace,
) -> None:
    fake, _ = spot
    fake.add_course("Onboarding")
    await ms_bot.command("invite --no-email")
    box = {b.get("block_id"): b for b in slack.views[-1]["view"]["blocks"]}["email"]["element"]
    assert "initial_options" not in box

