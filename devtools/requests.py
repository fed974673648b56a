"""Build the requests Slack sends to the bot: slash commands, clicks, modal submits, events.

`coursebot shell`, the tests and the benchmarks all reach the bot through these, so they
exercise the same signature check and the same Bolt routing as Slack does.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature or "",
    }


def slash_command_payload(
    text: str, *, user_id: str, channel_id: str, response_url: str, command: str = "/course",
    team_id: str = "T0001", trigger_id: str = "trigger.0",
) -> dict[str, str]:
    """A slash command's fields: form-encoded over HTTP, the envelope's payload in Socket Mode."""
    return {
        "token": "unused", "team_id": team_id, "team_domain": "coursebot", "channel_id": channel_id,
        "channel_name": "general", "user_id": user_id, "user_name": user_id.lower(), "command": command,
        "text": text, "api_app_id": "A0COURSEBOT", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger_id,
    }


def slash_command(
    text: str, *, user_id: str, channel_id: str, response_url: str, command: str = "/course",
    team_id: str = "T0001", trigger_id: str = "trigger.0",
) -> str:
    return urlencode(slash_command_payload(text, user_id=user_id, channel_id=channel_id, response_url=response_url,
                                           command=command, team_id=team_id, trigger_id=trigger_id))


def event_callback(event: dict[str, Any], *, team_id: str = "T0001") -> dict[str, Any]:
    """An Events API delivery (the body Slack posts, or the envelope's payload in Socket Mode)."""
    return {
        "token": "unused", "team_id": team_id, "api_app_id": "A0COURSEBOT", "event": event,
        "type": "event_callback", "event_id": f"Ev{int(time.time() * 1000)}", "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "U0BOT", "is_bot": True}],
    }


def interaction(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def block_action(
    *, user_id: str, action: dict[str, Any], channel_id: str | None, message: dict[str, Any] | None,
    response_url: str, team_id: str = "T0001", trigger_id: str = "trigger.0", is_ephemeral: bool = False,
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": "A0COURSEBOT",
        "token": "unused",
        "team": {"id": team_id, "domain": "coursebot"},
        "trigger_id": trigger_id,
        "response_url": response_url,
        "actions": [{"type": "button", "action_ts": f"{time.time():.6f}", **action}],
        "state": {"values": {}},
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    else:
        payload["container"] = {"type": "message", "message_ts": (message or {}).get("ts"),
                                "channel_id": channel_id, "is_ephemeral": is_ephemeral}
        payload["channel"] = {"id": channel_id, "name": "general"}
        if message is not None:
            payload["message"] = message
    return payload


def view_submission(
    *, user_id: str, view: dict[str, Any], values: dict[str, dict[str, dict[str, Any]]], team_id: str = "T0001",
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "coursebot"},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": "A0COURSEBOT",
        "token": "unused",
        "trigger_id": "trigger.0",
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
    }
