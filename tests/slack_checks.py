"""Checks over everything the bot sent to the Slack stand-in: no control sequence it did not build itself.

Slack reads `<…>` as a control sequence in mrkdwn and in a message's `text`: `<!channel>` pings,
`<https://evil.example|Reset password>` is a disguised link. The bot builds only these, from ids
and its own dates and links: `<@U…>`, `<#C…>`, `<!date^…|…>`, and links to the platform's admin
panel. Any other `<` in any string it sent (message texts, blocks, views, response URL payloads,
file titles, file contents) is a defect, as is a bidi override or a line break inside a name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from devtools.slack_stub import SlackWorkspace

# Keys whose strings Slack never shows: button values, metadata, ids, URLs the client calls.
HIDDEN_KEYS = frozenset({"value", "private_metadata", "metadata", "action_id", "block_id", "callback_id", "ts",
                         "thread_ts", "channel", "channel_id", "channels", "user", "users", "user_id", "token",
                         "trigger_id", "view_id", "hash", "external_id", "response_url", "url", "id", "file"})
TRUSTED = re.compile(r"<(?:@[UWB][A-Z0-9]+|#[CGD][A-Z0-9]+(?:\|[^<>]*)?|!subteam\^S[A-Z0-9]+(?:\|@[a-z0-9._-]+)?"
                     r"|!date\^\d+\^[^<>|]*\|[^<>]*)>")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every shown string under `node` (JSON documents given as strings are parsed)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in HIDDEN_KEYS:
                yield from strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from strings(item, f"{path}/{index}")
    elif isinstance(node, str):
        if path.endswith(("/blocks", "/view", "/files", "/attachments")) and node[:1] in "[{":
            yield from strings(json.loads(node), path)
        else:
            yield path, node


def unsafe_sequences(text: str, links: tuple[str, ...] = ()) -> list[str]:
    """The `<…>` sequences in `text` the bot could not have built itself (and a stray `<`)."""
    found = []
    rest = TRUSTED.sub("", text)
    for match in re.finditer(r"<[^<>]*>?", rest):
        token = match.group(0)
        if any(token.startswith(f"<{prefix}") and "|" in token and token.endswith(">") for prefix in links):
            continue
        found.append(token)
    return found


def sent(ws: SlackWorkspace) -> Iterator[tuple[str, Any]]:
    """(where, document) for everything the bot sent: Web API calls, response URL posts, files."""
    yield from ws.calls
    for response in ws.responses:
        yield "response_url", response
    for record in ws.files:
        yield "file", {"title": record["title"], "filename": record["filename"], "alt_txt": record.get("alt_txt")}
        if str(record.get("mimetype", "")).startswith("text/") or record["filename"].endswith(".csv"):
            yield "file content", {"content": record["bytes"].decode()}


def problems(ws: SlackWorkspace, *, links: tuple[str, ...] = (), extra: list[Any] | None = None) -> list[str]:
    """Every string the bot sent that carries an unescaped control sequence or a bidi control."""
    out = []
    documents = [*sent(ws), *(("ack", doc) for doc in extra or [])]
    for where, document in documents:
        for path, text in strings(document):
            bad = unsafe_sequences(text, links)
            if bad:
                out.append(f"{where}{path}: {bad[:3]} in {text[:160]!r}")
            if BIDI.search(text):
                out.append(f"{where}{path}: bidi control in {text[:160]!r}")
    return out
