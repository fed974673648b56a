"""The Slack edge and the one decision path, through the HTTP route: what a person sees when things go
wrong, who may do what, and how many platform requests one decision costs."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import redis.asyncio as aioredis

from bot.core.config import Platform, Settings
from devtools import requests as slack_requests
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, OUTSIDER, Tenant, nexudus_settings
from tests.test_approvals import buttons, card_for, click, pending, sync, text


def said(bot: Shell) -> str:
    """Everything the bot said to Slack for the last request (responses, messages, DMs)."""
    return "\n".join(json.dumps(payload) for _, payload in bot.last_events) + json.dumps(
        bot.ws.responses[-1] if bot.ws.responses else {})


def platform_requests(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant.fake.lock:
        return [(method, path) for method, path, _ in tenant.fake.requests if path != "/api/token"]


# ---- one decision path: cost, self, attribution -------------------------------------------------

async def test_an_approve_on_a_card_is_one_read_and_one_write(bot: Shell, nexudus: Tenant,
                                                               slack: SlackWorkspace) -> None:
    await sync(nexudus, slack)
    nexudus.fake.reset_counters()
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert platform_requests(nexudus) == [("GET", "/api/content/coursemembers/1"),
                                          ("PUT", "/api/content/coursemembers")]
    assert "was approved for" in text(card_for(slack, "Ann Other"))


async def test_a_block_on_a_card_is_one_read_and_one_write(bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    await sync(nexudus, slack)
    nexudus.fake.reset_counters()
    await click(bot, card_for(slack, "Ann Other"), "approval_block")
    view = slack.views[-1]["view"]
    values = {"reason": {"reason": {"type": "plain_text_input", "value": "not this cohort"}}}
    await bot._post(slack_requests.interaction(slack_requests.view_submission(user_id=MANAGER, view=view,
                                                                                values=values)))
    assert [r for r in platform_requests(nexudus) if "coursemembers" in r[1]] == [
        ("GET", "/api/content/coursemembers/1"), ("PUT", "/api/content/coursemembers")]


async def test_enrolling_a_new_member_is_member_lookup_enrolment_lookup_and_one_post(
        bot: Shell, nexudus: Tenant) -> None:
    await bot.command("courses")  # the course list, as any session has it
    nexudus.fake.reset_counters()
    await bot.command("enrol onboarding ada@example.com")
    requests = [r for r in platform_requests(nexudus) if "courses" not in r[1]]
    assert requests == [("GET", "/api/spaces/coworkers"), ("GET", "/api/content/coursemembers"),
                        ("POST", "/api/content/coursemembers")]
    assert "enrolled" in said(bot)


async def test_nobody_decides_their_own_enrolment_by_email_or_by_link(bot: Shell, nexudus: Tenant,
                                                                      slack: SlackWorkspace) -> None:
    # The manager's Slack email is not on the platform, but a link record says who they are there.
    me = nexudus.fake.add_coworker("Mia Manager", "mia.m@platform.example")
    pending(nexudus, "figma", "ada")
    nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], me["Id"], approved=False)
    await bot.command(f"link <@{MANAGER}> mia.m@platform.example")
    await sync(nexudus, slack)
    await click(bot, card_for(slack, "Mia Manager"), "approval_approve")
    assert "your own enrolment" in said(bot) and buttons(card_for(slack, "Mia Manager"))
    await bot.command("block figma mia.m@platform.example")
    assert "your own enrolment" in said(bot)
    with nexudus.fake.lock:
        assert not [r for r in nexudus.fake.requests if r[0] == "PUT"]
    # A manager who enrols themselves is left waiting for another approver.
    await bot.command("enrol onboarding mia.m@platform.example")
    assert "waiting for approval" in said(bot) and "another approver" in said(bot)


async def test_a_command_on_a_waiting_member_decides_the_request_and_its_card_says_who(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    await sync(nexudus, slack)
    await bot.command("approve founders ann@example.com")
    card = card_for(slack, "Ann Other")
    assert f"<@{MANAGER}>" in text(card) and not buttons(card)
    [key] = await redis_client.keys("coursebot:decision-record:*")
    record = json.loads(await redis_client.get(key))
    assert record["actor"] == MANAGER and record["via"] == "command" and record["action"] == "approve"


async def test_a_card_whose_update_slack_refused_is_set_right_by_the_next_sync(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    await sync(nexudus, slack)
    slack.fail_next("chat.update", 1, "internal_error")
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert buttons(card_for(slack, "Ann Other"))  # Slack did not take the update
    report = await sync(nexudus, slack)
    assert report.caught_up == 1
    assert not buttons(card_for(slack, "Ann Other")) and "was approved for" in text(card_for(slack, "Ann Other"))


async def test_request_keys_expire(nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    await sync(nexudus, slack)
    keys = [*await redis_client.keys("coursebot:request-of:*"), *await redis_client.keys("coursebot:request-for:*")]
    assert keys
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= 90 * 86400


async def test_a_claim_is_short_and_frees_itself(bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
                                                 redis_client: aioredis.Redis) -> None:
    """A process killed while deciding leaves a claim that blocks others for seconds, not minutes."""
    await sync(nexudus, slack)
    dead = json.dumps({"token": "dead", "actor": "U0KILLED", "action": "approve", "at": time.time()})
    key = f"coursebot:claim:access:{nexudus.courses['founders']['Id']}:{nexudus.people['ann']['Id']}"
    await redis_client.set(key, dead, px=15_000)
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert "is deciding this request right now" in said(bot) and "U0KILLED" in said(bot)
    assert 0 < await redis_client.pttl(key) <= 15_000


# ---- the gate ---------------------------------------------------------------------------------

async def test_a_non_manager_click_on_an_old_decided_card_is_refused_and_audited(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    await click(bot, card, "approval_approve")  # decided
    await click(bot, card, "approval_approve", user=OUTSIDER)  # an old copy, by someone else
    assert "Only course managers" in json.dumps(slack.responses[-1])
    entries = [json.loads(e) for e in await redis_client.lrange("coursebot:audit", 0, 20)]
    assert any(e["actor"] == OUTSIDER and e["outcome"] == "refused" for e in entries)


async def test_member_emails_are_shown_only_to_managers(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("status founders ann@example.com")
    assert "ann@example.com" in said(bot)
    bot.user = OUTSIDER
    await bot.command("status founders ann@example.com")
    assert "Ann Other" in said(bot) and "ann@example.com" not in said(bot)
    await bot.command("status onboarding ann@example.com")
    assert "not enrolled" in said(bot) and "/course enrol" not in said(bot)


# ---- failures become one plain private answer -----------------------------------------------------

async def test_redis_down_during_a_command_gets_a_plain_answer(nexudus: Tenant, slack: SlackWorkspace) -> None:
    settings = nexudus_settings(nexudus, redis_url="redis://127.0.0.1:1/0")
    async with Shell(settings, as_user=MANAGER, workspace=slack) as bot:
        bot.channel = GENERAL
        url = slack.new_response_url(channel=GENERAL, user=MANAGER)
        body = slack_requests.slash_command("pending", user_id=MANAGER, channel_id=GENERAL, response_url=url)
        started = time.monotonic()
        response = await bot.http.post("/slack/events", content=body,
                                       headers=slack_requests.signed_headers(bot.secret, body))
        assert response.status_code == 200 and time.monotonic() - started < 2.9  # acknowledged, not a 404
        await bot._settle()
    assert "store (Redis) did not answer" in json.dumps(slack.responses[-1])


async def test_a_nexudus_answer_that_is_not_json_is_a_plain_message(bot: Shell, nexudus: Tenant) -> None:
    for body in ("<html><body>Maintenance</body></html>", '{"Records": [', ""):
        nexudus.fake.fail_next(1, status=200, method="GET", path_contains="/courses", body=body)
        lines = "\n".join(await bot.command("courses"))
        assert "Nexudus answered a read with" in lines and "went wrong on my side" not in lines


async def test_a_response_url_outside_slack_is_not_used(bot: Shell, slack: SlackWorkspace) -> None:
    body = slack_requests.slash_command("help", user_id=MANAGER, channel_id=GENERAL,
                                        response_url="http://attacker.example/hook")
    await bot._post(body)
    dm = [m for m in slack.messages(f"D{MANAGER}")]
    assert dm and "coursebot" in json.dumps(dm[-1])


# ---- requests that are signed but not what Slack sends -------------------------------------------

@pytest.mark.parametrize("body,headers_extra,status", [
    ("command=%2Fcourse&text=help&user_id=U0MANAGER", {"x-slack-request-timestamp": "soon"}, 401),
    ("payload=notjson", {}, 400),
    ("command=%2Fcourse&text=help&channel_id=C0GENERAL", {}, 400),
    ("payload=" + json.dumps({"type": "block_actions", "actions": []}), {}, 400),
])
async def test_malformed_signed_requests_get_4xx_not_500(bot: Shell, body: str, headers_extra: dict[str, str],
                                                         status: int) -> None:
    headers = {**slack_requests.signed_headers(bot.secret, body), **headers_extra}
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == status


async def test_a_huge_body_is_refused_before_it_is_read_and_logged_in_one_line(
        bot: Shell, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    huge = "payload=" + "x" * 2_000_000
    response = await bot.http.post("/slack/events", content=huge,
                                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    unsigned = await bot.http.post("/slack/events", content="command=%2Fcourse&user_id=U1&text=secret-text",
                                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    assert "xxxxxxxxxx" not in caplog.text and "secret-text" not in caplog.text
    assert len([r for r in caplog.records if "refused a request" in r.getMessage()]) == 2


# ---- what Slack sends, read as Slack means it ---------------------------------------------------

async def test_a_title_with_ampersand_and_angle_brackets_is_found_as_slack_escapes_it(
        bot: Shell, nexudus: Tenant) -> None:
    nexudus.fake.add_course("Tips & <Tricks> for Hosts", visibility=1, business_id=1, host_id=1)
    lines = "\n".join(await bot.command('status "Tips &amp; &lt;Tricks&gt; for Hosts"'))
    assert "Tips & <Tricks> for Hosts" in lines and "No course matches" not in lines


async def test_invite_to_an_unknown_course_says_so_instead_of_opening_a_form(bot: Shell, slack: SlackWorkspace) -> None:
    lines = "\n".join(await bot.command("invite nosuchcourse"))
    assert "No course matches" in lines and slack.views == []


async def test_the_shell_does_not_read_slash_courses_as_a_subcommand(bot: Shell) -> None:
    lines = "\n".join(await bot.handle("/courses") or [])
    assert "There is no /courses command" in lines and "don't know" not in lines


# ---- the shell's Approve all -------------------------------------------------------------------

async def test_in_the_shell_approve_all_approves_what_it_listed() -> None:
    """The shell as a newcomer runs it: sandbox platform, embedded store, jobs in the process."""
    settings = Settings(_env_file=None, course_platform=Platform.SANDBOX)  # type: ignore[call-arg]
    async with Shell(settings, as_user=None) as shell:
        listed = "\n".join(await shell.command("pending"))
        count = int(listed.split("Approve all ")[1].split()[0])
        number = next(n for n, b in shell.view.buttons.items() if b.action.get("action_id") == "approval_approve_all")
        started = "\n".join(await shell.press(number))
        report = started
        for _ in range(300):
            report += "\n".join(shell._drain())
            if "Approved " in report:
                break
            await asyncio.sleep(0.1)
        after = "\n".join(await shell.command("pending"))
    assert count > 1 and "Approving" in started and f"Approved {count}" in report
    assert "Nothing is waiting for approval" in after


# ---- bulk jobs that lose their Slack message or their Redis records ------------------------------

async def test_a_bulk_job_whose_progress_message_slack_refused_still_runs(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    from tests.test_bulk import ThreadWorker, wait_job

    slack.fail_next("chat.postMessage", 1, "internal_error")
    with ThreadWorker(bot.runtime.settings):
        lines = "\n".join(await bot.command("invite onboarding ada@example.com joann@example.com"))
        await asyncio.sleep(0.2)
        keys = [k for k in await redis_client.keys("coursebot:job:*") if k.count(":") == 2]
        [job_id] = [k.rsplit(":", 1)[1] for k in keys]
        record = await wait_job(redis_client, job_id, within=30)
    assert record.status.value == "done" and "already started" not in lines
    report = [m for m in slack.messages(f"D{MANAGER}") if job_id in json.dumps(m) or "Invited" in json.dumps(m)]
    assert report, "the job posted its own progress message and report"


async def test_a_bulk_job_whose_records_vanished_tells_its_owner(bot: Shell, slack: SlackWorkspace) -> None:
    from bot.bulk.tasks import run_bulk_job

    await run_bulk_job(bot.runtime, {"job_id": "0123456789ab", "owner": MANAGER, "course": "Community Onboarding"})
    [message] = slack.messages(f"D{MANAGER}")
    assert "lost its records in Redis" in json.dumps(message) and "Community Onboarding" in json.dumps(message)
