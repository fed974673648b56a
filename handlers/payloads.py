"""What Slack sends, as typed models: slash commands, button clicks, form submissions, menus, events.

Only the fields the bot reads are declared; everything else Slack adds is ignored. A payload
that does not fit is refused at the edge (handlers.middleware) before any listener runs.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as Required

from bot.approvals.requests import CardRef


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ref(_Payload):
    id: str


# Slack escapes &, < and > in slash-command text, except in its own <@U…>, <#C…>, <!subteam^…> and links.
_SLACK_TOKEN = re.compile(r"(<[^<>]*>)")


def unescape_command_text(text: str) -> str:
    """Undo Slack's `&amp;` `&lt;` `&gt;` outside its own `<…>` tokens (which stay as they are)."""
    return "".join(part if _SLACK_TOKEN.fullmatch(part) else html.unescape(part) for part in _SLACK_TOKEN.split(text))


class SlashCommand(_Payload):
    command: str
    text: str = ""
    user_id: str = Required(min_length=1)
    channel_id: str = ""
    team_id: str = ""
    response_url: str = ""
    trigger_id: str = ""

    @field_validator("text")
    @classmethod
    def _unescape(cls, value: str) -> str:
        return unescape_command_text(value)


class Action(_Payload):
    action_id: str
    block_id: str = ""
    value: str = ""


class Container(_Payload):
    type: str = ""
    channel_id: str | None = None
    message_ts: str | None = None
    is_ephemeral: bool = False
    view_id: str | None = None


class Message(_Payload):
    ts: str | None = None
    text: str = ""
    blocks: list[dict[str, Any]] = []
    metadata: dict[str, Any] | None = None


class Option(_Payload):
    value: str = ""
    text: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return str(self.text.get("text") or "")


class Field(_Payload):
    """What one input of a form holds when it is submitted."""

    type: str = ""
    value: str | None = None
    selected_option: Option | None = None
    selected_options: list[Option] = []
    selected_users: list[str] = []
    selected_conversations: list[str] = []

    @property
    def text(self) -> str:
        return self.value or ""

    @property
    def choice(self) -> str | None:
        return self.selected_option.value if self.selected_option and self.selected_option.value else None


class View(_Payload):
    id: str = ""
    callback_id: str = ""
    private_metadata: str = ""
    team_id: str = ""
    blocks: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    @property
    def values(self) -> dict[str, Any]:
        values = self.state.get("values") or {}
        return values if isinstance(values, dict) else {}

    def field(self, block_id: str, action_id: str | None = None) -> Field:
        """The input in block `block_id` (its only element, or `action_id`); empty when absent or malformed."""
        elements = self.values.get(block_id)
        if not isinstance(elements, dict) or not elements:
            return Field()
        found = elements.get(action_id) if action_id else next(iter(elements.values()))
        try:
            return Field.model_validate(found) if isinstance(found, dict) else Field()
        except ValueError:
            return Field()

    def metadata(self) -> dict[str, Any]:
        try:
            found = json.loads(self.private_metadata or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


class BlockAction(_Payload):
    """A button click: who, which button (and its value), on which surface."""

    user: Ref
    actions: list[Action] = Required(min_length=1)
    container: Container = Container()
    message: Message | None = None
    view: View | None = None
    response_url: str = ""
    trigger_id: str = ""
    team: Ref | None = None

    @property
    def action(self) -> Action:
        return self.actions[0]

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def surface(self) -> str:
        """"home" (App Home), "list" (an ephemeral reply), else "card" (a channel message)."""
        if self.container.type == "view":
            return "home"
        if self.container.is_ephemeral:
            return "list"
        return "card"

    @property
    def card(self) -> CardRef | None:
        """The channel message clicked, when it is one (not ephemeral, not a view)."""
        if self.surface == "card" and self.container.channel_id and self.container.message_ts:
            return CardRef(self.container.channel_id, self.container.message_ts)
        return None


class ViewSubmission(_Payload):
    user: Ref
    view: View
    team: Ref | None = None

    @property
    def user_id(self) -> str:
        return self.user.id


class BlockSuggestion(_Payload):
    user: Ref
    action_id: str
    block_id: str = ""
    value: str = ""

    @property
    def user_id(self) -> str:
        return self.user.id


class AppHomeOpened(_Payload):
    user: str
    tab: str = "home"
