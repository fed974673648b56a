"""`coursebot doctor` against the local Slack and Nexudus: the lines a deployer reads, and the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.slack.scopes import BOT_SCOPES
from devtools.slack_stub import APP_TOKEN, DEFAULT_SCOPES, SlackWorkspace
from tests.conftest import APPROVALS, MANAGER, REDIS_URL, SLACK_TOKEN, Tenant

ROOT = Path(__file__).resolve().parents[1]
DIGEST = "C0DIGEST"
OWN = ("SLACK_", "COURSEBOT_", "NEXUDUS_", "MELTINGSPOT_", "COURSE_PLATFORM", "REDIS_", "LOG_")


def doctor(tenant: Tenant, slack: SlackWorkspace, **overrides: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN)}
    env.update({
        "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": "signing-secret",
        "SLACK_API_URL": slack.base_url + "/api/", "REDIS_URL": REDIS_URL,
        "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": tenant.url, "NEXUDUS_USERNAME": tenant.fake.username,
        "NEXUDUS_PASSWORD": tenant.fake.password, "COURSEBOT_MANAGERS": f"{MANAGER},S0LEADS",
        "COURSEBOT_APPROVALS_CHANNEL": APPROVALS, "COURSEBOT_DIGEST_CHANNEL": DIGEST, **overrides,
    })
    result = subprocess.run([sys.executable, "-m", "bot.cli", "doctor"], env=env, capture_output=True, text=True,
                            timeout=120, cwd="/tmp")
    print(result.stdout)  # the sample run shown with `pytest -s`
    assert result.stderr == ""
    assert SLACK_TOKEN not in result.stdout and tenant.fake.password not in result.stdout
    return result.returncode, result.stdout.splitlines()


@pytest.fixture
def workspace(slack: SlackWorkspace) -> SlackWorkspace:
    slack.add_channel(DIGEST, "daily-digest", [MANAGER])
    slack.add_usergroup("S0LEADS", "course-leads", [MANAGER, "U0ADA"])
    return slack


def test_a_healthy_deployment_passes_every_check(nexudus: Tenant, workspace: SlackWorkspace) -> None:
    code, lines = doctor(nexudus, workspace)
    port = REDIS_URL.rsplit(":", 1)[1]
    assert lines == [
        f"ok   redis: reachable and writable at redis://127.0.0.1:{port}",
        "ok   redis eviction: maxmemory-policy is noeviction",
        "ok   slack token: valid: workspace coursebot-dev, bot user @coursebot (U0BOT)",
        "ok   slack connection: HTTP: Slack sends requests to POST /slack/events (the request URLs in the app's "
        "settings must reach serve)",
        f"ok   slack scopes: all {len(BOT_SCOPES)} bot scopes of manifest.yml granted",
        f"ok   approvals channel: the bot is a member of #approvals ({APPROVALS})",
        f"ok   digest channel: the bot is a member of #daily-digest ({DIGEST})",
        f"ok   manager {MANAGER}: Mia Manager",
        "ok   manager S0LEADS: user group with 2 members",
        f"ok   platform: Nexudus at {nexudus.url}: logged in as {nexudus.fake.username}; 4 courses",
    ]
    assert code == 0
    # One login and one read of the platform; nothing written anywhere.
    assert nexudus.fake.token_requests == 1
    assert [(method, path) for method, path, *_ in nexudus.fake.requests] == [
        ("POST", "/api/token"), ("GET", "/api/content/courses")]


def test_a_missing_scope_and_a_channel_without_the_bot_fail_with_the_fix(
    nexudus: Tenant, workspace: SlackWorkspace,
) -> None:
    workspace.granted_scopes = [s for s in DEFAULT_SCOPES if s not in ("usergroups:read", "files:write")]
    workspace.add_channel(DIGEST, "daily-digest", [MANAGER], bot_is_member=False)
    code, lines = doctor(nexudus, workspace, COURSEBOT_MANAGERS=f"{MANAGER},U0NOSUCH")
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        "FAIL slack scopes: missing usergroups:read (members of an @user-group for /course invite and "
        "COURSEBOT_MANAGERS); "
        "files:write (the digest's 14-day chart). Add them to the app's bot scopes (paste manifest.yml again, or "
        "OAuth & Permissions › Scopes) and reinstall the app to the workspace.",
        f"FAIL digest channel: the bot is not a member of #daily-digest ({DIGEST}): open the channel in Slack and "
        "type /invite @coursebot.",
        "FAIL manager U0NOSUCH: no such user in this workspace (user_not_found). Copy the id from Slack (a profile's "
        "⋮ › Copy member ID) into COURSEBOT_MANAGERS.",
    ]
    assert f"ok   approvals channel: the bot is a member of #approvals ({APPROVALS})" in lines
    assert len(lines) == 10  # every check still ran


def test_a_wrong_token_fails_once_and_skips_what_needs_it(nexudus: Tenant, workspace: SlackWorkspace) -> None:
    code, lines = doctor(nexudus, workspace, SLACK_BOT_TOKEN="xoxb-not-the-token")
    assert code == 1
    assert lines[2].startswith("FAIL slack token: SLACK_BOT_TOKEN was refused by Slack (invalid_auth). Copy the "
                               "Bot User OAuth Token")
    assert lines[3].startswith("ok   slack connection: HTTP")
    assert [line.split(":")[0] for line in lines[4:8]] == [
        "skip slack scopes", "skip approvals channel", "skip digest channel", "skip managers"]
    assert lines[-1].startswith("ok   platform: Nexudus")


def test_wrong_platform_credentials_and_a_private_channel_the_bot_cannot_see(
    nexudus: Tenant, workspace: SlackWorkspace,
) -> None:
    workspace.add_channel("G0SECRET", "secret", [MANAGER], is_private=True, bot_is_member=False)
    code, lines = doctor(nexudus, workspace, NEXUDUS_PASSWORD="wrong", COURSEBOT_APPROVALS_CHANNEL="G0SECRET")
    assert code == 1
    assert ("FAIL approvals channel: G0SECRET (COURSEBOT_APPROVALS_CHANNEL) is not a channel the bot can see. Check "
            "the id (the channel's About tab); for a private channel, open the channel in Slack and type "
            "/invite @coursebot first.") in lines
    assert lines[-1] == (f"FAIL platform: Nexudus at {nexudus.url}: Nexudus did not accept the API user's "
                         "credentials (NEXUDUS_USERNAME / NEXUDUS_PASSWORD). Check them, and that the user has API "
                         "access and no two-factor prompt.")


def test_unset_settings_are_named(nexudus: Tenant, workspace: SlackWorkspace) -> None:
    code, lines = doctor(nexudus, workspace, COURSEBOT_MANAGERS="", COURSEBOT_DIGEST_CHANNEL="",
                         NEXUDUS_USERNAME="")
    assert code == 1
    assert "skip digest channel: COURSEBOT_DIGEST_CHANNEL is not set: no daily digest is posted." in lines
    assert ("FAIL managers: COURSEBOT_MANAGERS is empty: nobody may change anything. Set it to Slack user ids (U…) "
            "and/or user-group ids (S…), comma-separated.") in lines
    assert "FAIL platform: NEXUDUS_USERNAME is required but not set: set it." in lines


def test_the_bot_scopes_doctor_expects_are_those_manifest_yml_asks_for() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]
    assert tuple(BOT_SCOPES) == DEFAULT_SCOPES  # the Slack stand-in grants what a real install would


def test_socket_mode_is_checked_with_the_app_level_token(nexudus: Tenant, workspace: SlackWorkspace) -> None:
    code, lines = doctor(nexudus, workspace, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET="")
    assert code == 0
    assert "ok   slack connection: Socket Mode: the app-level token opens a connection" in lines
    code, lines = doctor(nexudus, workspace, SLACK_APP_TOKEN="xapp-1-A0BOT-1-revoked", SLACK_SIGNING_SECRET="")
    assert code == 1
    [line] = [line for line in lines if "slack connection" in line]
    assert line.startswith("FAIL slack connection: SLACK_APP_TOKEN: Slack refused to open a Socket Mode connection "
                           "(invalid_auth). Use the app-level token (xapp-…)")


def test_http_mode_needs_the_signing_secret(nexudus: Tenant, workspace: SlackWorkspace) -> None:
    code, lines = doctor(nexudus, workspace, SLACK_SIGNING_SECRET="")
    assert code == 1
    assert ("FAIL slack connection: SLACK_SIGNING_SECRET is not set: serve needs it to take Slack's requests over "
            "HTTP. Copy it from Basic Information › App Credentials, or set SLACK_APP_TOKEN to use Socket "
            "Mode.") in lines
