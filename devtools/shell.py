"""`coursebot shell`: the bot in a terminal, with no Slack workspace and no platform account.

It serves the in-process Slack stand-in (`devtools.slack_stub`) on a loopback port, points the
bot's Slack client at it, and sends the real Bolt app signed requests, exactly as Slack
would. What the bot says (ephemeral replies, channel messages, modals) is printed as it
arrives, with every button numbered so you can press it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import sys
from typing import Any

import httpx
from pydantic import SecretStr

from bot.app import build_web
from bot.core.config import Settings
from bot.platforms.base import CoursePlatform
from bot.platforms.sandbox import demo_members
from bot.render.terminal import TerminalView
from bot.runtime import Runtime
from devtools import requests as slack_requests
from devtools.servers import ServerThread
from devtools.slack_stub import SlackWorkspace, create_app

MANAGER = "U0MANAGER"
GUEST = "U0GUEST"
GENERAL = "C0GENERAL"
APPROVALS = "C0APPROVALS"
NEWCOMERS = "C0NEWMEMBERS"
MANAGERS_GROUP = "S0MANAGERS"

HELP = """Type /course commands as the Slack user shown in the prompt. Shell commands:
  <n> or press <n>     press button number n
  as <user id>         act as another Slack user (see: users)
  users                the Slack users of this demo workspace
  channel <id>         post commands from another channel (see: channels)
  channels             the demo channels
  set <field> <value>  fill a field of the open form (a number picks from a menu's list)
  submit / cancel      send the open form, or drop it
  quit                 leave (or Ctrl-D)"""


def demo_workspace(token: str) -> SlackWorkspace:
    """A Slack workspace whose people are the sandbox's members (same emails)."""
    ws = SlackWorkspace(token)
    ws.add_user(MANAGER, "you", "manager@example.com", real_name="You (course manager)")
    ws.add_user(GUEST, "sam", "sam.guest@example.com", real_name="Sam (not a manager)")
    people = []
    for index, member in enumerate(demo_members()[:12]):
        user_id = f"U{member.id}"
        # One person uses a different email in Slack: the case `/course link` exists for.
        email = "ada@personal.example" if index == 0 else member.email
        ws.add_user(user_id, member.full_name.split()[0].lower(), email, real_name=member.full_name)
        people.append(user_id)
    ws.add_channel(GENERAL, "general", [MANAGER, GUEST, *people])
    ws.add_channel(APPROVALS, "course-approvals", [MANAGER])
    ws.add_channel(NEWCOMERS, "new-members", people[6:12])
    ws.add_usergroup(MANAGERS_GROUP, "course-managers", [MANAGER])
    return ws


SHELL_POSTS_PER_SECOND = 20  # per channel, in the shell's own stand-in Slack (Slack's is 1)

CHANNEL_NAMES = {GENERAL: "#general", APPROVALS: "#course-approvals", NEWCOMERS: "#new-members"}


class Shell:
    """The bot behind a stand-in Slack; also what the tests drive, with their own workspace."""

    def __init__(
        self,
        settings: Settings,
        *,
        as_user: str | None,
        workspace: SlackWorkspace | None = None,
        platform: CoursePlatform | None = None,
    ) -> None:
        self.token = workspace.token if workspace else "xoxb-shell-" + secrets.token_hex(8)
        self.secret = secrets.token_hex(16)
        if workspace is None:
            # The shell's own Slack takes messages faster than Slack, and the bot is told so: its
            # cards appear at once instead of one a second, still through the same pacer.
            posts = max(settings.slack_posts_per_second, SHELL_POSTS_PER_SECOND)
            workspace = demo_workspace(self.token)
            workspace.limit_posts(per_second=posts, burst=posts + 1)
            settings = settings.model_copy(update={"slack_posts_per_second": posts})
        self.ws = workspace
        self.platform = platform
        self.server: ServerThread | None = ServerThread(create_app(self.ws))
        self.user = as_user or MANAGER
        self.channel = GENERAL
        self.view = TerminalView(color=sys.stdout.isatty(), channel_names=CHANNEL_NAMES)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.last_events: list[tuple[str, dict[str, Any]]] = []
        self.last_response: httpx.Response | None = None
        self.form_values: dict[str, dict[str, Any]] = {}
        self.ws.subscribe(lambda kind, payload: self.events.append((kind, payload)))
        self.base_settings = settings

    async def __aenter__(self) -> Shell:
        if self.ws.base_url or self.server is None:  # already served (by a test)
            url, self.server = self.ws.base_url, None
        else:
            url = self.server.start()
            self.ws.base_url = url
        overrides: dict[str, Any] = {
            "slack_api_url": url + "/api/", "slack_bot_token": SecretStr(self.token),
            "slack_signing_secret": SecretStr(self.secret),
        }
        if not self.base_settings.coursebot_managers:
            overrides["coursebot_managers"] = [MANAGERS_GROUP]
        if not self.base_settings.coursebot_approvals_channel:
            overrides["coursebot_approvals_channel"] = APPROVALS
        if not self.base_settings.coursebot_digest_channel:
            overrides["coursebot_digest_channel"] = GENERAL
        settings = self.base_settings.model_copy(update=overrides)
        self.runtime = Runtime.create(settings, platform=self.platform)
        self.view.names = {u["id"]: u["name"] for u in self._users()}
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_web(self.runtime)),
                                      base_url="http://coursebot.local")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.runtime.aclose()
        if self.server is not None:
            self.server.stop()

    async def _post(self, body: str) -> httpx.Response:
        response = await self.http.post("/slack/events", content=body,
                                        headers=slack_requests.signed_headers(self.secret, body))
        await self._settle()
        return response

    async def _settle(self) -> None:
        """Wait for the work Bolt started after its ack, so the output is complete."""
        for _ in range(100):
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            if not others:
                return
            await asyncio.wait(others, timeout=0.2)

    async def command(self, text: str) -> list[str]:
        url = self.ws.new_response_url(channel=self.channel, user=self.user)
        body = slack_requests.slash_command(text, user_id=self.user, channel_id=self.channel, response_url=url,
                                            trigger_id=self.ws.new_trigger_id())
        response = await self._post(body)
        return self._output(response)

    async def press(self, number: int) -> list[str]:
        button = self.view.buttons.get(number)
        if button is None:
            return [f"There is no button {number}."]
        url = self.ws.new_response_url(channel=button.channel, message_ts=(button.message or {}).get("ts"),
                                       user=self.user)
        payload = slack_requests.block_action(
            user_id=self.user, action=button.action, channel_id=button.channel, message=button.message,
            response_url=url, trigger_id=self.ws.new_trigger_id(), is_ephemeral=button.ephemeral,
            view=button.view,
        )
        response = await self._post(slack_requests.interaction(payload))
        return self._output(response)

    def _output(self, response: httpx.Response) -> list[str]:
        self.last_response = response
        lines: list[str] = []
        if response.status_code != 200:
            lines.append(f"(the bot answered HTTP {response.status_code})")
        elif response.content and response.headers.get("content-type", "").startswith("application/json"):
            lines += self.view.event("response", response.json())
        elif response.text.strip():
            lines.append(response.text)
        return lines + self._drain()

    def _drain(self) -> list[str]:
        """Everything the bot sent to Slack since the last look."""
        events, self.events = self.events, []
        self.last_events = events
        lines: list[str] = []
        for kind, payload in events:
            lines += self.view.event(kind, payload)
        return lines

    async def handle(self, line: str) -> list[str] | None:
        line = line.strip()
        if not line or line.startswith("#"):
            return []
        if line in ("quit", "exit"):
            return None
        first = line.split(maxsplit=1)[0]
        if first == "/course":
            return await self.command(line.removeprefix("/course").strip())
        if first.startswith("/"):
            return [f"There is no {first} command here: type `/course help` (with a space after /course)."]
        words = shlex.split(line) if line.count('"') % 2 == 0 else line.split()
        if words[0] == "press" and len(words) == 2 and words[1].isdigit():
            return await self.press(int(words[1]))
        if words[0].isdigit() and len(words) == 1:
            return await self.press(int(words[0]))
        if words[0] == "set" and len(words) >= 3:
            return await self.set_field(words[1], " ".join(words[2:]))
        if words[0] == "submit" and len(words) == 1:
            return await self.submit()
        if words[0] == "cancel" and len(words) == 1:
            self.view.form, self.form_values = None, {}
            return ["Form dropped."]
        if words[0] == "as" and len(words) == 2:
            self.user = words[1]
            return [f"Now acting as {self.user}."]
        if words[0] == "channel" and len(words) == 2:
            self.channel = words[1]
            return [f"Now in {self.view.channel_name(self.channel)}."]
        if words[0] == "users":
            return [f"  {u['id']:<12} {u.get('real_name') or u['name']:<28} {u.get('profile', {}).get('email', '')}"
                    for u in self._users()]
        if words[0] == "channels":
            return [f"  {GENERAL}  #general", f"  {APPROVALS}  #course-approvals (approval cards)",
                    f"  {NEWCOMERS}  #new-members", f"  {MANAGERS_GROUP}  @course-managers (user group)"]
        if words[0] in ("help", "?"):
            return HELP.splitlines()
        return ["Type a /course command, a button number, or `help`."]

    # ---- forms (modals) ----------------------------------------------------------------------

    def _input(self, block_id: str) -> dict[str, Any] | None:
        form = self.view.form or {}
        return next((b for b in form.get("blocks") or [] if b.get("type") == "input"
                     and b.get("block_id") == block_id), None)

    async def set_field(self, block_id: str, text: str) -> list[str]:
        if self.view.form is None:
            return ["No form is open."]
        block = self._input(block_id)
        if block is None:
            fields = [b.get("block_id") for b in self.view.form.get("blocks") or [] if b.get("type") == "input"]
            return [f"The form has no field `{block_id}`; its fields: {', '.join(map(str, fields))}."]
        element = block["element"]
        kind = str(element.get("type"))
        value: dict[str, Any] = {"type": kind}
        if kind in ("static_select", "radio_buttons", "external_select"):
            options = element.get("options") or []
            if kind == "external_select":
                options = await self._suggest(block, text)
            option = self._pick(options, text)
            if option is None:
                listed = [f"  {n}) {self.view._text(o.get('text'))}" for n, o in enumerate(options, start=1)]
                return [f"Pick one of these for `{block_id}` by number or by a unique part of its name:", *listed]
            value["selected_option"] = option
        elif kind == "checkboxes" or kind == "multi_static_select":
            picks = [self._pick(element.get("options") or [], part) for part in re.split(r"[\s,]+", text)]
            value["selected_options"] = [o for o in picks if o is not None]
        elif kind == "multi_users_select":
            value["selected_users"] = re.findall(r"U[A-Z0-9]+", text)
        elif kind in ("multi_conversations_select", "multi_channels_select"):
            key = "selected_conversations" if kind == "multi_conversations_select" else "selected_channels"
            value[key] = re.findall(r"[CGD][A-Z0-9]+", text)
        elif kind in ("users_select", "conversations_select", "channels_select"):
            noun = kind.removesuffix("s_select")
            value[f"selected_{noun}"] = text.strip()
        else:
            value["value"] = text
        self.form_values[block_id] = {element.get("action_id", block_id): value}
        return [f"{block_id} set."]

    @staticmethod
    def _pick(options: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
        text = text.strip()
        if text.isdigit() and 1 <= int(text) <= len(options):
            return options[int(text) - 1]
        matches = [o for o in options if text.lower() in str((o.get("text") or {}).get("text", "")).lower()
                   or text == o.get("value")]
        return matches[0] if len(matches) == 1 else None

    async def _suggest(self, block: dict[str, Any], text: str) -> list[dict[str, Any]]:
        """Ask the bot for a type-ahead menu's options, as Slack does while someone types."""
        assert self.view.form is not None
        payload = {
            "type": "block_suggestion", "user": {"id": self.user, "team_id": self.ws.team_id},
            "team": {"id": self.ws.team_id}, "api_app_id": "A0COURSEBOT", "token": "unused",
            "container": {"type": "view", "view_id": self.view.form.get("id")},
            "action_id": block["element"].get("action_id"), "block_id": block.get("block_id"),
            "value": text.strip(), "view": self.view.form,
        }
        response = await self._post(slack_requests.interaction(payload))
        body = response.json() if response.content else {}
        options = list(body.get("options") or [])
        for group in body.get("option_groups") or []:
            options += group.get("options") or []
        return options

    def _initial_values(self) -> dict[str, dict[str, Any]]:
        """What Slack would send for the fields nobody touched: their initial values."""
        values: dict[str, dict[str, Any]] = {}
        for block in (self.view.form or {}).get("blocks") or []:
            element = block.get("element") or {}
            if block.get("type") != "input" or not element:
                continue
            value: dict[str, Any] = {"type": element.get("type")}
            for source, target in (("initial_value", "value"), ("initial_option", "selected_option"),
                                   ("initial_options", "selected_options"), ("initial_users", "selected_users"),
                                   ("initial_conversations", "selected_conversations")):
                if source in element:
                    value[target] = element[source]
            if len(value) == 1 and element.get("type") in ("plain_text_input", "number_input"):
                value["value"] = None
            values[block["block_id"]] = {element.get("action_id", block["block_id"]): value}
        return values

    async def submit(self) -> list[str]:
        if self.view.form is None:
            return ["No form is open."]
        values = {**self._initial_values(), **self.form_values}
        payload = slack_requests.view_submission(user_id=self.user, view=self.view.form, values=values)
        form, self.view.form = self.view.form, None
        response = await self._post(slack_requests.interaction(payload))
        body = response.json() if response.content and response.headers.get("content-type", "").startswith(
            "application/json") else {}
        if body.get("response_action") == "errors":
            self.view.form = form  # still open: fix and submit again
            self.last_response = response
            return [f"⚠️ {field}: {message}" for field, message in (body.get("errors") or {}).items()] + \
                self._drain()
        self.form_values = {}
        self.last_response = response
        lines = self._drain()
        if body.get("response_action") in ("update", "push") and body.get("view"):
            lines += self.view.event("view", {"view": body["view"]})
        return lines or ["Form sent."]

    def _users(self) -> list[dict[str, Any]]:
        result = self.ws.dispatch("users.list", {}, self.token)
        return [u for u in result.body.get("members", []) if not u.get("is_bot")]


async def run_shell(settings: Settings, *, as_user: str | None) -> int:
    interactive = sys.stdin.isatty()
    async with Shell(settings, as_user=as_user) as shell:
        if interactive:
            print(f"coursebot shell: {shell.runtime.platform.display_name}, "
                  f"{'embedded store' if settings.embedded_store else 'Redis'}. "
                  "Try `/course help`, or `help` for the shell's own commands.")
        loop = asyncio.get_running_loop()
        while True:
            prompt = f"{shell.user} {shell.view.channel_name(shell.channel)}> " if interactive else ""
            try:
                line = await loop.run_in_executor(None, input, prompt)
            except EOFError:
                break
            if not interactive and line.strip():
                print(f"> {line.strip()}")
            output = await shell.handle(line)
            if output is None:
                break
            for text in output:
                print(text)
    return 0
