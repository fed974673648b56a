"""Block Kit builders. Text objects are made only here: mrkdwn from `Mrkdwn`, plain_text from `Plain`.

`check_texts` walks any blocks (or a view) and refuses a text object whose text was not made by
the renderer: a block dict written by hand with a raw `str` fails the first time it is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bot.render.mrkdwn import Mrkdwn, Plain, md, plain

Block = dict[str, Any]

SECTION_MAX = 3000  # a section's (or a context element's) text
FIELD_MAX = 2000  # one field of a section
FIELDS_MAX = 10
HEADER_MAX = 150
BUTTON_MAX = 75
OPTION_MAX = 75
CONTEXT_ELEMENTS = 10


def mrkdwn_text(text: Mrkdwn) -> dict[str, Any]:
    if not isinstance(text, Mrkdwn):
        raise TypeError(f"a mrkdwn text object takes Mrkdwn (bot.render.md), not {type(text).__name__}")
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def plain_text(text: str, limit: int | None = None, *, emoji: bool = True) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain(text, limit), "emoji": emoji}


def section(text: Mrkdwn, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn_text(text)}
    if accessory:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id[:255]
    return block


def fields(pairs: Sequence[tuple[str, Mrkdwn]]) -> Block:
    """A section of labelled fields; the labels are the bot's words, the values Mrkdwn."""
    return {"type": "section", "fields": [mrkdwn_text(md("*{}*\n{}", label, value)) for label, value in pairs]}


def context(*texts: Mrkdwn) -> Block:
    return {"type": "context", "elements": [mrkdwn_text(text) for text in texts]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain_text(text, HEADER_MAX)}


def divider() -> Block:
    return {"type": "divider"}


def confirm(title: str, text: str, ok: str, deny: str = "Cancel") -> dict[str, Any]:
    return {"title": plain_text(title, 100), "text": plain_text(text, 300), "confirm": plain_text(ok, 30),
            "deny": plain_text(deny, 30)}


def button(label: str, action_id: str, value: str, *, style: Literal["primary", "danger"] | None = None,
           confirmation: dict[str, Any] | None = None) -> Block:
    element: Block = {"type": "button", "action_id": action_id, "value": value[:2000],
                      "text": plain_text(label, BUTTON_MAX)}
    if style:
        element["style"] = style
    if confirmation:
        element["confirm"] = confirmation
    return element


def actions(block_id: str, elements: list[Block]) -> Block:
    return {"type": "actions", "block_id": block_id[:255], "elements": elements}


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain_text(text, OPTION_MAX, emoji=False), "value": value[:150]}


def input_block(block_id: str, label: str, element: Block, *, optional: bool = False, hint: str = "") -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": plain_text(label, 2000), "element": element,
                    "optional": optional}
    if hint:
        block["hint"] = plain_text(hint, 2000)
    return block


# ---- the check ------------------------------------------------------------------------------------

def check_texts(node: Any, where: str = "blocks") -> None:
    """Every text object under `node` holds text the renderer made (TypeError otherwise)."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "mrkdwn" and not isinstance(node.get("text"), Mrkdwn):
            raise TypeError(f"{where}: a mrkdwn text was not made by bot.render (md, mention, …): "
                            f"{str(node.get('text'))[:60]!r}")
        if kind == "plain_text" and not isinstance(node.get("text"), Plain):
            raise TypeError(f"{where}: a plain_text was not made by bot.render.plain: {str(node.get('text'))[:60]!r}")
        for value in node.values():
            if isinstance(value, dict | list):
                check_texts(value, where)
    elif isinstance(node, list):
        for item in node:
            check_texts(item, where)


def block_chars(node: Any) -> int:
    """Characters of text in blocks, as Slack's total-size limit counts them (every text string)."""
    if isinstance(node, dict):
        total = 0
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                total += len(value)
            elif isinstance(value, dict | list):
                total += block_chars(value)
        return total
    if isinstance(node, list):
        return sum(block_chars(item) for item in node)
    return 0
