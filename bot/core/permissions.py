"""Who may change things: the users and user groups listed in COURSEBOT_MANAGERS."""

from __future__ import annotations

import logging

from bot.slack.directory import Directory, DirectoryError

log = logging.getLogger(__name__)

NO_MANAGERS_HINT = (
    "No managers are configured yet, so nobody can make changes. Set COURSEBOT_MANAGERS to Slack user IDs "
    "(U…) and/or user-group IDs (S…), comma-separated, and restart the bot."
)


class Permissions:
    def __init__(self, managers: list[str], directory: Directory) -> None:
        self.users = frozenset(m for m in managers if not m.startswith("S"))
        self.groups = tuple(m for m in managers if m.startswith("S"))
        self.directory = directory

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)

    async def is_manager(self, user_id: str) -> bool:
        if user_id in self.users:
            return True
        for group in self.groups:
            try:
                if user_id in await self.directory.usergroup_members(group):
                    return True
            except DirectoryError as exc:
                log.warning("could not read manager group %s: %s", group, exc.message)
        return False

    def refusal(self) -> str:
        if not self.configured:
            return NO_MANAGERS_HINT
        return (
            "Only course managers can do that, so nothing was changed. "
            "Ask a manager, or an admin to add you to COURSEBOT_MANAGERS."
        )
