"""Block Kit as terminal text: what `coursebot digest --dry-run` prints and `coursebot shell` shows.

Buttons are numbered as they are drawn, so the shell can press them by number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

EMOJI = {
    "white_check_mark": "✅", "hourglass_flowing_sand": "⏳", "no_entry": "⛔", "warning": "⚠️", "x": "❌",
    "lock": "🔒", "globe_with_meridians": "🌐", "moneybag": "💰", "see_no_evil": "🙈", "grey_question": "❔",
    "link": "🔗", "tada": "🎉", "white_circle": "⚪", "information_source": "ℹ️", "no_entry_sign": "🚫",
    "bell": "🔔", "inbox_tray": "📥", "chart_with_upwards_trend": "📈", "raised_hands": "🙌", "zzz": "💤",
    "arrows_counterclockwise": "🔄", "clipboard": "📋", "mortar_board": "🎓", "email": "📧",
    "rocket": "🚀", "double_vertical_bar": "⏸️", "alarm_clock": "⏰", "wastebasket": "🗑️",
    "scales": "⚖️", "busts_in_silhouette": "👥", "ballot_box_with_check": "☑️", "mag": "🔍", "robot_face": "🤖",
}


@dataclass
class Button:
    action: dict[str, Any]
    channel: str | None
    message: dict[str, Any] | None
    ephemeral: bool
    view: dict[str, Any] | None = None


class TerminalView:
    """Turns Block Kit into readable terminal text and numbers the buttons."""

    def __init__(self, *, color: bool, channel_names: dict[str, str] | None = None) -> None:
        self.channel_names = dict(channel_names or {})
        self.color = color
        self.buttons: dict[int, Button] = {}
        self._next = 1
        self.names: dict[str, str] = {}
        self.form: dict[str, Any] | None = None  # the modal on screen, if any

    def _bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.color else text

    def _dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.color else text

    def mrkdwn(self, text: str) -> str:
        def special(match: re.Match[str]) -> str:
            body, _, label = match.group(1).partition("|")
            if body.startswith("@"):
                return "@" + self.names.get(body[1:], label or body[1:])
            if body.startswith("#"):
                return "#" + (label or body[1:])
            if body.startswith("!date^"):
                return label
            if body.startswith("!subteam^"):
                return label or "@group"
            if body.startswith("!"):
                return "@" + body[1:]
            return f"{label} ({body})" if label else body

        text = re.sub(r"<([^<>]+)>", special, text)
        text = re.sub(r":([a-z0-9_+-]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
        text = re.sub(r"\*([^*\n]+)\*", lambda m: self._bold(m.group(1)), text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _text(self, obj: dict[str, Any] | None) -> str:
        if not obj:
            return ""
        text = str(obj.get("text", ""))
        return self.mrkdwn(text) if obj.get("type") == "mrkdwn" else text

    def _button(self, element: dict[str, Any], where: Button) -> str:
        number = self._next
        self._next += 1
        self.buttons[number] = Button({k: element.get(k) for k in ("action_id", "value", "block_id")},
                                      where.channel, where.message, where.ephemeral, where.view)
        return f"[{number}] {self._text(element.get('text'))}"

    def blocks(self, blocks: list[dict[str, Any]], where: Button) -> list[str]:
        lines: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                lines.append(self._bold(self._text(block.get("text")).upper()))
            elif kind == "section":
                if block.get("text"):
                    lines.extend(self._text(block["text"]).splitlines())
                for f in block.get("fields") or []:
                    label, _, value = self._text(f).partition("\n")
                    lines.append(f"  {label}: {value}")
                accessory = block.get("accessory")
                if accessory and accessory.get("type") == "button":
                    lines.append("  " + self._button({**accessory, "block_id": block.get("block_id")}, where))
            elif kind == "context":
                lines.append(self._dim("  " + " ".join(self._text(e) for e in block.get("elements", []))))
            elif kind == "actions":
                buttons = [self._button({**e, "block_id": block.get("block_id")}, where)
                           for e in block.get("elements", []) if e.get("type") == "button"]
                lines.append("  " + "   ".join(buttons))
            elif kind == "divider":
                lines.append(self._dim("  " + "─" * 40))
            elif kind == "input":
                element = block.get("element") or {}
                optional = " (optional)" if block.get("optional") else ""
                lines.append(f"  ▸ {self._text(block.get('label'))}{optional}  "
                             + self._dim(f"[set {block.get('block_id')} …] {element.get('type', '')}"))
                for number, option in enumerate(element.get("options") or [], start=1):
                    lines.append(f"      {number}) {self._text(option.get('text'))}")
            elif kind == "image":
                lines.append(f"  [image: {block.get('alt_text', '')}]")
        return lines

    def event(self, kind: str, payload: dict[str, Any]) -> list[str]:
        blocks = payload.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if kind == "response":
            where = Button({}, payload.get("channel") or None, None, ephemeral=True)
            title = "only you can see this" if payload.get("response_type") != "in_channel" else "in the channel"
        elif kind in ("message", "update"):
            channel = str(payload.get("channel", ""))
            where = Button({}, channel, payload, ephemeral=False)
            name = self.channel_name(channel)
            thread = " (in thread)" if payload.get("thread_ts") else ""
            title = f"{'updated in' if kind == 'update' else 'posted to'} {name}{thread}"
        elif kind == "ephemeral":
            where = Button({}, payload.get("channel"), None, ephemeral=True)
            title = "only you can see this"
        elif kind == "view":
            view = payload.get("view") or payload
            self.form = view if any(b.get("type") == "input" for b in view.get("blocks") or []) else None
            where = Button({}, None, None, ephemeral=False, view=view)
            blocks = view.get("blocks") or []
            title = f"form: {self._text(view.get('title'))}"
            if self.form is not None:
                hint = "Fill it with `set &lt;field&gt; &lt;value&gt;`, then `submit` (or `cancel`)."
                blocks = [*blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": hint}]}]
        elif kind == "home":
            view = payload.get("view") or payload
            where = Button({}, None, None, ephemeral=False, view=view)
            blocks = view.get("blocks") or []
            title = "App Home"
        elif kind == "file":
            return [self._dim(f"── file shared: {payload.get('title') or payload.get('filename')}")]
        else:
            return []
        body = self.blocks(blocks, where) if blocks else [self.mrkdwn(str(payload.get("text", "")))]
        return [self._dim(f"── {title}"), *body]

    def channel_name(self, channel: str) -> str:
        return self.channel_names.get(channel, "a direct message" if channel.startswith("D") else channel)
