"""What the bot needs to know about people in Slack, as an interface the services depend on.

`bot.slack.directory.SlackDirectory` implements it over Slack's Web API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DirectoryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Person:
    """What Slack says about one user: enough to find them on the platform."""

    user_id: str
    email: str
    name: str = ""
    is_bot: bool = False
    deleted: bool = False


class Directory(Protocol):
    async def email_of(self, user_id: str) -> str | None: ...
    async def user_by_email(self, email: str) -> str | None: ...
    async def is_bot(self, user_id: str) -> bool: ...
    async def channel_members(self, channel_id: str) -> list[str]: ...
    async def usergroup_members(self, group_id: str) -> list[str]: ...
    async def people(self, user_ids: list[str]) -> dict[str, Person]: ...
