"""A message, and the pages it is sent as: every message stays within Slack's limits, whatever it holds.

Slack refuses a message with more than 50 blocks or a section text over 3,000 characters
(`invalid_blocks`), and one whose blocks hold more than about 12,000 characters of text in all
(`msg_blocks_too_long`, not in the documentation; see the platform notes). Views take 100 blocks.

`Message.pages()` is the one place that enforces it, for every message the bot sends:
a section too long is split at its lines (a single line too long is shortened), fields and
context elements are clipped, and once a page is full (50 blocks, or `MESSAGE_CHARS` of text,
which leaves Slack a margin) it ends with a line saying how many more lines follow, and the rest
goes on the next page. The sender posts the pages in the first one's thread (channel messages),
or one after the other (private replies). A renderer that knows its lists better (the digest,
the pending list, bulk reports) cuts them itself, saying "…and N more", and hands the full lists
over as `follow_ups`, sent the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.render.blocks import (
    CONTEXT_ELEMENTS,
    FIELD_MAX,
    FIELDS_MAX,
    HEADER_MAX,
    SECTION_MAX,
    Block,
    block_chars,
    check_texts,
    context,
    mrkdwn_text,
    section,
)
from bot.render.mrkdwn import Mrkdwn, Plain, clip_mrkdwn, file_title, lines, md, plain, split_lines

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SLACK_MESSAGE_CHARS = 12_000  # what Slack refuses above (about; msg_blocks_too_long)
MESSAGE_CHARS = 11_000  # what the bot sends at most: a margin under Slack's figure
TEXT_MAX = 3_000  # a message's `text` (the notification); Slack cuts at 40,000, readers far sooner
NOTE_RESERVE = 200  # room kept on a full page for its "…and N more" line

Where = Literal["thread", "below", "none"]
_WHERE = {"thread": " in the thread", "below": " in the next message", "none": " not shown here"}


@dataclass(frozen=True)
class File:
    """A file that goes with a message (in its thread): a CSV of what the message could only count."""

    filename: str
    title: str
    content: str

    @classmethod
    def of(cls, filename: str, title: str, content: str) -> File:
        return cls(file_title(filename), file_title(title), content)


@dataclass
class Message:
    """A message's `text` (the notification and fallback) and its blocks, both built by the renderer.

    `follow_ups` are sent after it (in its thread, or below it): the full lists a message names
    in "…and N more"; `files` go in its thread too (when the lists are too long for messages).
    `noun` is what its lines are, for the "…and N more" line of a full page."""

    text: Mrkdwn
    blocks: list[Block] = field(default_factory=list)
    follow_ups: list[Message] = field(default_factory=list)
    noun: str = "lines"
    files: list[File] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.text, Mrkdwn):
            raise TypeError(f"Message.text takes Mrkdwn (bot.render.md), not {type(self.text).__name__}")
        check_texts(self.blocks, "Message.blocks")

    def pages(self, where: Where = "thread") -> list[dict[str, Any]]:
        """`text` and `blocks` of every message to send, in order, each within Slack's limits."""
        pages = _paginate(self.blocks, MESSAGE_BLOCKS, MESSAGE_CHARS, where, self.noun)
        if where == "none":
            pages = pages[:1]
        out = [{"text": _page_text(self.text, index), "blocks": blocks} for index, blocks in enumerate(pages)]
        if where != "none":
            for follow_up in self.follow_ups:
                out += follow_up.pages(where)
        return out

    def as_kwargs(self) -> dict[str, Any]:
        """One message only (a card, an update, an ack): the first page, saying what it leaves out."""
        return self.pages("none")[0]


def _page_text(text: Mrkdwn, index: int) -> Mrkdwn:
    if index == 0:
        return clip_mrkdwn(text, TEXT_MAX)
    return md("{} (continued)", clip_mrkdwn(text, 300))


# ---- views ------------------------------------------------------------------------------------------

def view(kind: Literal["modal", "home"], blocks: list[Block], **parts: Any) -> dict[str, Any]:
    """A modal or a Home tab within 100 blocks (the rest is counted in a last line)."""
    check_texts(blocks, f"{kind} view")
    check_texts(parts, f"{kind} view")
    fitted = _paginate(blocks, VIEW_BLOCKS, None, "none", "lines")[0]
    return {"type": kind, **parts, "blocks": fitted}


def modal(callback_id: str, title: str, blocks: list[Block], *, submit: str | None = None, close: str = "Close",
          private_metadata: str = "") -> dict[str, Any]:
    parts: dict[str, Any] = {"callback_id": callback_id, "title": _modal_text(title),
                             "close": _modal_text(close), "private_metadata": private_metadata[:3000]}
    if submit:
        parts["submit"] = _modal_text(submit)
    return view("modal", blocks, **parts)


def home(blocks: list[Block]) -> dict[str, Any]:
    return view("home", blocks)


def _modal_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain(text, 24), "emoji": True}


# ---- fitting ----------------------------------------------------------------------------------------

def _normalise(blocks: list[Block]) -> list[Block]:
    """Blocks each within its own limits: long sections split at their lines, the rest clipped."""
    out: list[Block] = []
    for block in blocks:
        kind = block.get("type")
        text = (block.get("text") or {}).get("text") if kind in ("section", "header") else None
        if kind == "section" and isinstance(text, Mrkdwn) and len(text) > SECTION_MAX:
            parts = _split(text, SECTION_MAX)
            first = {**block, "text": mrkdwn_text(parts[0])}
            out.append(first)
            out += [section(part) for part in parts[1:]]
        elif kind == "section" and block.get("fields"):
            items = [_clip_text(f, FIELD_MAX) for f in block["fields"]]
            for start in range(0, len(items), FIELDS_MAX):
                out.append({**block, "fields": items[start:start + FIELDS_MAX]} if start == 0
                           else {"type": "section", "fields": items[start:start + FIELDS_MAX]})
        elif kind == "context":
            out.append({**block, "elements": [_clip_text(e, SECTION_MAX)
                                              for e in block.get("elements", [])[:CONTEXT_ELEMENTS]]})
        elif kind == "header" and isinstance(text, Plain) and len(text) > HEADER_MAX:
            out.append({**block, "text": {**block["text"], "text": plain(text, HEADER_MAX)}})
        else:
            out.append(block)
    return out


def _clip_text(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    text = obj.get("text")
    if isinstance(text, Mrkdwn) and len(text) > limit:
        return {**obj, "text": clip_mrkdwn(text, limit)}
    if isinstance(text, Plain) and len(text) > limit:
        return {**obj, "text": plain(text, limit)}
    return obj


def _split(text: Mrkdwn, limit: int) -> list[Mrkdwn]:
    """Text cut at line ends into parts of at most `limit` characters (a longer line is shortened)."""
    parts: list[Mrkdwn] = []
    chunk: list[Mrkdwn] = []
    size = 0
    for line in split_lines(text):
        line = clip_mrkdwn(line, limit)
        if chunk and size + 1 + len(line) > limit:
            parts.append(lines(chunk))
            chunk, size = [], 0
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
    if chunk:
        parts.append(lines(chunk))
    return parts


def _unit(queue: deque[Block]) -> int:
    """How many blocks go together at the head of the queue: a section and the buttons under it."""
    if len(queue) > 1 and queue[0].get("type") == "section" and queue[1].get("type") == "actions":
        return 2
    return 1


def _count(blocks: deque[Block]) -> int:
    """Lines of content left (context lines are hints, dividers and buttons no content)."""
    total = 0
    for block in blocks:
        if block.get("type") == "section":
            text = (block.get("text") or {}).get("text")
            total += len(str(text).split("\n")) if text else 1
    return total


def _note(count: int, where: Where, noun: str) -> Block:
    if count:
        return context(md("…and {} more {}{}.", count, noun, md(_WHERE[where])))
    return context(md("…continued{}.", md(_WHERE[where])))


def _paginate(blocks: list[Block], max_blocks: int, max_chars: int | None, where: Where,
              noun: str) -> list[list[Block]]:
    queue = deque(_normalise(blocks))
    limit = max_chars if max_chars is not None else 1 << 62
    pages: list[list[Block]] = []
    while queue:
        if len(queue) <= max_blocks and block_chars(list(queue)) <= limit:
            pages.append(list(queue))
            break
        page: list[Block] = []
        used = 0
        while queue:
            take = _unit(queue)
            size = block_chars([queue[i] for i in range(take)])
            room = limit - NOTE_RESERVE - used
            if len(page) + take <= max_blocks - 1 and size <= room:
                for _ in range(take):
                    page.append(queue.popleft())
                used += size
                continue
            head = queue[0]
            text = (head.get("text") or {}).get("text")
            if (head.get("type") == "section" and take == 1 and isinstance(text, Mrkdwn) and "\n" in text
                    and len(page) < max_blocks - 1):
                first, rest = _split_at(text, room - block_chars({**head, "text": {"text": ""}}))
                if first is not None and rest is not None:
                    page.append({**head, "text": mrkdwn_text(first)})
                    queue[0] = section(rest)
            break
        if not page:  # one unit bigger than a page: cannot happen once normalised, but never loop
            page.append(queue.popleft())
        if queue:
            page.append(_note(_count(queue), where, noun))
        pages.append(page)
    return pages or [[]]


def _split_at(text: Mrkdwn, room: int) -> tuple[Mrkdwn | None, Mrkdwn | None]:
    """The first lines of `text` that fit in `room` characters, and the others."""
    parts = split_lines(text)
    size = -1
    for index, line in enumerate(parts):
        size += len(line) + 1
        if size > room:
            if index == 0:
                return None, None
            return lines(parts[:index]), lines(parts[index:])
    return None, None
