"""The bot scopes `manifest.yml` asks for, and what each one is for.

`coursebot doctor` compares them with the scopes Slack granted the token (the `x-oauth-scopes`
header). The manifest is not shipped inside the package, so the list lives here too;
tests/test_doctor.py fails when the two differ.
"""

from __future__ import annotations

BOT_SCOPES: dict[str, str] = {
    "commands": "/course",
    "chat:write": "approval cards, progress messages, digest, replies",
    "users:read": "who clicked, names in cards",
    "users:read.email": "@mentions resolved to platform members by email",
    "channels:read": "members of a public #channel for /course invite",
    "groups:read": "members of a private channel the bot was invited to",
    "usergroups:read": "members of an @user-group for /course invite and COURSEBOT_MANAGERS",
    "channels:history": "approval cards found again after a Redis flush",
    "groups:history": "the same when the approvals channel is private",
    "im:write": "a member told the outcome of their request by direct message",
    "files:write": "the digest's 14-day chart",
}
