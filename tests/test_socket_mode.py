"""Socket Mode end to end: the real `serve` wiring against the Slack stand-in's WebSocket.

The stand-in hands out the WebSocket URL from `apps.connections.open` (with the app-level token),
says hello, and the tests push envelopes on it exactly as Slack does, then read the bot's acks
from the socket and its answers from the stand-in (response URLs, messages, views) and the local
Nexudus. Most tests run `SocketModeServer` in this process (with a short ping interval, so a dropped
connection is noticed quickly); one runs `coursebot serve` itself as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.app import build_bolt, build_web
from bot.core.config import Settings
from bot.courses import render as course_view
from bot.runtime import Runtime
from bot.socket_mode import SocketModeServer
from devtools import requests as slack_requests
from devtools.servers import free_port
from devtools.slack_stub import APP_TOKEN, SlackWorkspace
from tests.conftest import APPROVALS, GENERAL, MANAGER, REDIS_URL, SLACK_TOKEN, Tenant, nexudus_settings
from tests.test_approvals import buttons, card_for, record, text
from tests.test_course_admin import courses_titled, form_values

# ---- helpers ------------------------------------------------------------------------------------


def socket_settings(tenant: Tenant, slack: SlackWorkspace, **overrides: Any) -> Settings:
    return nexudus_settings(tenant, slack_api_url=slack.base_url + "/api/", slack_app_token=SecretStr(APP_TOKEN),
                            slack_signing_secret=None, **overrides)


async def until(predicate: Callable[[], Any], within: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@asynccontextmanager
async def socket_bot(settings: Settings, slack: SlackWorkspace, *,
                     ping_interval: float = 0.5) -> AsyncIterator[SocketModeServer]:
    """`coursebot serve`'s Socket Mode wiring, in this event loop, until the block ends."""
    rt = Runtime.create(settings)
    bolt = build_bolt(rt)
    web = build_web(rt, bolt, slack_events=not settings.socket_mode)
    server = SocketModeServer(web, bolt, settings, port=free_port(), host="127.0.0.1", ping_interval=ping_interval)
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: slack.open_sockets() or serving.done(), what="the bot to connect")
        if serving.done():
            serving.result()  # raise what stopped it
        yield server
    finally:
        server.stop()
        await asyncio.wait_for(serving, 15)
        await rt.aclose()


async def deliver(slack: SlackWorkspace, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Push one envelope and wait for its ack (Slack allows 3 seconds)."""
    envelope_id = slack.send_envelope(kind, payload)
    started = time.monotonic()
    ack: dict[str, Any] = await until(lambda: slack.socket_ack(envelope_id), within=5, what=f"the ack of {kind}")
    assert time.monotonic() - started < 3.0
    assert ack["envelope_id"] == envelope_id
    return ack


async def command(slack: SlackWorkspace, text_: str, *, user: str = MANAGER) -> tuple[dict[str, Any], dict[str, Any]]:
    """A /course command over the socket: (its ack, what it then posted to its response URL)."""
    url = slack.new_response_url(channel=GENERAL, user=user)
    url_id = url.rsplit("/", 1)[1]
    payload = slack_requests.slash_command_payload(text_, user_id=user, channel_id=GENERAL, response_url=url,
                                                   trigger_id=slack.new_trigger_id())
    ack = await deliver(slack, "slash_commands", payload)
    answer = await until(lambda: [r for r in slack.responses if r["url_id"] == url_id], what=f"the answer to {text_}")
    return ack, answer[-1]


def said(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or []) + str(message.get("text") or "")


# ---- commands, clicks, forms, menus, events -------------------------------------------------------


async def test_a_slash_command_is_acked_on_the_socket_and_answered_at_its_response_url(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    async with socket_bot(socket_settings(nexudus, slack), slack):
        assert slack.call_count("apps.connections.open") == 1
        [call] = slack.calls_to("apps.connections.open")
        assert call == {}  # the token went in the Authorization header, the app token's own
        ack, answer = await command(slack, 'status "Founders Circle"')
        assert "payload" not in ack or not ack["payload"]  # an empty ack: the answer follows
        assert answer["text"] == "Founders Circle: 1 member (0 approved, 1 waiting)"
        assert answer["response_type"] == "ephemeral"

        # A malformed command is answered in the ack itself, on the socket.
        url = slack.new_response_url(channel=GENERAL, user=MANAGER)
        ack = await deliver(slack, "slash_commands", slack_requests.slash_command_payload(
            "frobnicate", user_id=MANAGER, channel_id=GENERAL, response_url=url))
        assert "I don't know `frobnicate`" in json.dumps(ack["payload"])


async def test_a_click_on_an_approval_card_decides_it_once(nexudus: Tenant, slack: SlackWorkspace) -> None:
    settings = socket_settings(nexudus, slack)
    async with socket_bot(settings, slack):
        worker = Runtime.create(settings)  # the worker's approval sync posts the cards
        try:
            await worker.approvals.sync()
        finally:
            await worker.aclose()
        card = card_for(slack, "Ann Other")
        approve = buttons(card)["approval_approve"]
        url = slack.new_response_url(channel=APPROVALS, message_ts=card["ts"], user=MANAGER)
        payload = slack_requests.block_action(
            user_id=MANAGER, action={k: approve[k] for k in ("action_id", "value", "block_id")},
            channel_id=APPROVALS, message=card, response_url=url, trigger_id=slack.new_trigger_id())
        ack = await deliver(slack, "interactive", payload)
        assert not ack.get("payload")
        await until(lambda: record(nexudus, "founders", "ann")["Approved"] is True, what="the approval")
        await until(lambda: "was approved for" in text(card_for(slack, "Ann Other")), what="the card's update")
        # Slack delivering the same click again changes nothing more.
        await deliver(slack, "interactive", payload)
        await asyncio.sleep(0.3)
        with nexudus.fake.lock:
            assert len([r for r in nexudus.fake.requests if r[0] == "PUT"]) == 1


async def test_the_new_course_form_its_menus_and_its_submission_go_over_the_socket(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    async with socket_bot(socket_settings(nexudus, slack), slack):
        url = slack.new_response_url(channel=GENERAL, user=MANAGER)
        await deliver(slack, "slash_commands", slack_requests.slash_command_payload(
            "new", user_id=MANAGER, channel_id=GENERAL, response_url=url, trigger_id=slack.new_trigger_id()))
        form = (await until(lambda: [v for v in slack.views if v["method"] == "views.update"],
                            what="the form"))[-1]["view"]
        assert form["callback_id"] == course_view.NEW_VIEW

        # The host menu's options come back in the ack's payload (block_suggestion).
        suggestion = {"type": "block_suggestion", "user": {"id": MANAGER, "team_id": "T0001"},
                      "team": {"id": "T0001", "domain": "coursebot"}, "api_app_id": "A0COURSEBOT", "token": "unused",
                      "container": {"type": "view", "view_id": form["id"]}, "view": form,
                      "action_id": course_view.action(course_view.HOST), "block_id": course_view.HOST,
                      "value": "lovelace"}
        ack = await deliver(slack, "interactive", suggestion)
        assert [o["text"]["text"] for o in ack["payload"]["options"]] == ["Ada Lovelace (ada@example.com)"]

        # A submission the form can check itself is refused inline: the errors ride in the ack.
        bad = form_values(nexudus, title="   ")
        ack = await deliver(slack, "interactive", slack_requests.view_submission(user_id=MANAGER, view=form,
                                                                                 values=bad))
        assert ack["payload"]["response_action"] == "errors" and course_view.TITLE in ack["payload"]["errors"]

        ack = await deliver(slack, "interactive", slack_requests.view_submission(
            user_id=MANAGER, view=form, values=form_values(nexudus, title="Socket cohort")))
        assert not ack.get("payload")  # closes the form
        [course] = courses_titled(nexudus, "Socket cohort")
        await until(lambda: [m for m in slack.ephemeral if f"(id {course['Id']})" in json.dumps(m["blocks"])],
                    what="the announcement")


async def test_opening_the_app_home_publishes_it(nexudus: Tenant, slack: SlackWorkspace) -> None:
    async with socket_bot(socket_settings(nexudus, slack), slack):
        event = {"type": "app_home_opened", "user": MANAGER, "channel": f"D{MANAGER}", "tab": "home",
                 "event_ts": f"{time.time():.6f}"}
        ack = await deliver(slack, "events_api", slack_requests.event_callback(event))
        assert not ack.get("payload")
        home = await until(lambda: slack.home_views.get(MANAGER), what="the Home tab")
        assert home["type"] == "home"


# ---- reconnecting -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["dropped", "closed by the server", "asked to reconnect"])
async def test_the_bot_reconnects_by_itself_and_keeps_answering(
    nexudus: Tenant, slack: SlackWorkspace, how: str
) -> None:
    async with socket_bot(socket_settings(nexudus, slack), slack):
        [first] = slack.open_sockets()
        if how == "dropped":
            slack.drop_socket()  # no close frame: the TCP connection just ends
        elif how == "closed by the server":
            slack.drop_socket(code=1011)
        else:
            slack.disconnect_socket("refresh_requested")
        await until(lambda: slack.socket_connects == 2 and slack.open_sockets() and first not in slack.open_sockets(),
                    what="the reconnection")
        assert slack.call_count("apps.connections.open") == 2  # a fresh URL for the new connection
        _, answer = await command(slack, 'status "Founders Circle"')
        assert "1 waiting" in answer["text"]


# ---- `coursebot serve` itself -------------------------------------------------------------------


def serve_env(tenant: Tenant, slack: SlackWorkspace, port: int, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "COURSEBOT_", "NEXUDUS_", "MELTING", "COURSE_PLATFORM", "REDIS_URL"))}
    return {**clean, "SLACK_API_URL": slack.base_url + "/api/", "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": tenant.url,
            "NEXUDUS_USERNAME": tenant.fake.username, "NEXUDUS_PASSWORD": tenant.fake.password,
            "REDIS_URL": REDIS_URL, "COURSEBOT_MANAGERS": MANAGER, "COURSEBOT_APPROVALS_CHANNEL": APPROVALS,
            "PORT": str(port), **extra}


async def test_coursebot_serve_uses_socket_mode_without_a_signing_secret_and_keeps_healthz_on_port(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "serve", cwd="/tmp",
                                                   env=serve_env(nexudus, slack, port), stderr=subprocess.PIPE)
    try:
        await until(lambda: slack.open_sockets() or process.returncode is not None, within=30,
                    what="serve to connect")
        assert process.returncode is None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web:
            health = await web.get("/healthz")
            assert health.status_code == 200 and health.json()["ok"] is True
            assert (await web.post("/slack/events", content="payload={}")).status_code == 404
        _, answer = await command(slack, 'status "Founders Circle"')
        assert "1 waiting" in answer["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, raw = await asyncio.wait_for(process.communicate(), 20)
    stderr = raw.decode()
    assert "over Socket Mode" in stderr and f"/healthz on port {port}" in stderr
    assert APP_TOKEN not in stderr and SLACK_TOKEN not in stderr
    assert not slack.open_sockets()  # closed at shutdown


@pytest.mark.parametrize(("token", "expected"), [
    ("xapp-1-A0BOT-1-revoked", "Slack refused to open a Socket Mode connection (invalid_auth)"),
    (SLACK_TOKEN, "must be an app-level token starting with xapp-"),
])
def test_a_refused_or_wrong_app_token_stops_serve_with_one_line_naming_it(
    nexudus: Tenant, slack: SlackWorkspace, token: str, expected: str
) -> None:
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], capture_output=True, text=True, timeout=60,
                            env=serve_env(nexudus, slack, free_port(), SLACK_APP_TOKEN=token), cwd="/tmp")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and "SLACK_APP_TOKEN" in errors[0] and expected in errors[0], result.stderr
    assert token not in result.stderr
