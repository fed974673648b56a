"""Slack's request signature, fuzzed command text, and secrets kept out of logs."""

from __future__ import annotations

import logging
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.logs import RedactSecrets
from devtools import requests as slack_requests
from devtools.shell import Shell
from tests.conftest import GENERAL, MANAGER, Tenant


def writes(tenant: Tenant) -> list[tuple[str, str, dict]]:
    return [r for r in tenant.fake.requests if r[0] in ("POST", "PUT", "DELETE") and r[1] != "/api/token"]


async def _post(bot: Shell, body: str, headers: dict[str, str]) -> httpx.Response:
    return await bot.http.post("/slack/events", content=body, headers=headers)


def _enrol_body(bot: Shell) -> str:
    return slack_requests.slash_command("enrol founders ada@example.com", user_id=MANAGER, channel_id=GENERAL,
                                        response_url=bot.ws.new_response_url(channel=GENERAL))


async def test_forged_unsigned_and_stale_requests_get_401_and_change_nothing(bot: Shell, nexudus: Tenant) -> None:
    body = _enrol_body(bot)
    forged = slack_requests.signed_headers("not-the-secret", body)
    unsigned = {"content-type": "application/x-www-form-urlencoded"}
    stale = slack_requests.signed_headers(bot.secret, body, timestamp=int(time.time()) - 600)
    tampered = slack_requests.signed_headers(bot.secret, body)
    for headers, content in ((forged, body), (unsigned, body), (stale, body), (tampered, body + "x")):
        response = await _post(bot, content, headers)
        assert response.status_code == 401
    await bot._settle()
    assert writes(nexudus) == []
    assert bot.ws.responses == []


async def test_a_correctly_signed_request_is_accepted(bot: Shell, nexudus: Tenant) -> None:
    body = _enrol_body(bot)
    response = await _post(bot, body, slack_requests.signed_headers(bot.secret, body))
    await bot._settle()
    assert response.status_code == 200
    assert len(writes(nexudus)) == 1


# Command words, flags, and names that exist nowhere (no course, member, email or Slack user
# matches them), with the characters Slack and the grammar treat specially. As a manager, any
# command could change access, but none of these can name a course and a person that exist.
WORDS = st.sampled_from(["enrol", "approve", "block", "unblock", "status", "courses", "help", "link", "invite",
                         "complete", "uncomplete", "lessons", "pending", "digest", "new", "rules", "approvers",
                         "autoapprove", "quorum", "domain", "nowhere.example", "off", "none", "2", "--preview",
                         "--pending", "pottery", '"Pottery Night"',
                         "nobody@nowhere.example", "<@U0GHOST|ghost>", "<#C0GENERAL|general>",
                         "<!subteam^S1|@g>", "<!channel>", "<mailto:nobody@nowhere.example|nobody@nowhere.example>",
                         "'", '"', "“", "<", ">", "&", "&amp;", "&lt;", "42", "--", "\n", "\t", "é", "💥", "<@>",
                         "<#>", "|"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=120), st.lists(WORDS, max_size=6).map(" ".join)))
async def test_any_command_text_gets_a_reply_and_never_an_error(bot: Shell, nexudus: Tenant, text: str) -> None:
    assert bot.user == MANAGER  # who may change things: the text alone must not lead to a change
    lines = await bot.command(text)
    assert bot.last_response is not None and bot.last_response.status_code == 200
    assert lines, f"no reply to {text!r}"
    assert "went wrong on my side" not in "\n".join(lines)
    assert writes(nexudus) == [], f"{text!r} changed the platform"


def test_secrets_never_reach_the_log(caplog) -> None:  # type: ignore[no-untyped-def]
    logger = logging.getLogger("coursebot.test")
    redact = RedactSecrets(["s3cret-signing", "hunter2-password"])
    handler = logging.StreamHandler()
    handler.addFilter(redact)
    logger.addHandler(handler)
    caplog.set_level(logging.INFO)
    try:
        caplog.handler.addFilter(redact)
        logger.info("token xoxb-1234-abcd used with Authorization: Bearer abc.def and %s", "hunter2-password")
        logger.info("POST /api/token password=p%40ss&username=a signing s3cret-signing")
        logger.info("Socket Mode with xapp-1-A0B-77-f00d: wss://wss-primary.slack.com/link/?ticket=t1ck3t&app_id=A0B")
    finally:
        logger.removeHandler(handler)
    text = caplog.text
    for secret in ("xoxb-1234", "abc.def", "hunter2", "p%40ss", "s3cret-signing", "xapp-1", "t1ck3t"):
        assert secret not in text
    assert text.count("[redacted]") >= 4
