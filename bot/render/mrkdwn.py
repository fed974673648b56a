"""Slack text that is safe by construction: `Mrkdwn` for what Slack parses, `Plain` for what it shows as is.

Slack reads `&`, `<` and `>` as control characters in mrkdwn and in a message's `text`: `<!channel>`
pings everyone, `<https://evil.example|Reset password>` is a disguised link, `<@U1>` a mention.
A member called `Eve <!channel>` must reach Slack as `Eve &lt;!channel&gt;`.

Rather than trusting every call site to remember `esc()`, every builder of the renderer takes
`Mrkdwn`, and a `Mrkdwn` can only come from here:

- `md(template, *values)`: the template is the bot's own words (a literal: its `&`, `<`, `>` are
  escaped too, since the bot never writes a control sequence by hand); each value that is a `str`
  is untrusted and made inert (`inline()`); a value that is already `Mrkdwn` goes in as it is;
- trusted constructors that build control sequences from ids, never from names: `mention()`,
  `channel()`, `when()`, `link()` (http(s) only), `code()`, and `join()` of `Mrkdwn` parts.

mypy (strict) rejects a `str` where `Mrkdwn` is wanted, and the builders check again at run
time (`check_texts`), so a hand-written block dict with a raw string fails loudly in tests.

Untrusted names and titles are also kept on one line and unformatted (`inline()`): line breaks
and every other whitespace collapse to one space; bidi overrides, isolates and marks and invisible
characters are dropped; `*`, `~` and backticks become look-alikes, and `_` too where it could
open or close italics, so a name cannot open bold, strike or code over the bot's own words or
forge a second line ("approved by …") on a card. Emails keep their characters (`email()`).

Plain-text surfaces get the same cleaning without escaping (`plain()`); file titles and CSV
cells, which Slack or a spreadsheet may still interpret, get `file_title()` and `csv_cell()`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

NAME_MAX = 80  # a name or title in a list
VALUE_MAX = 500  # any other untrusted value (an error message, a reason)
ELLIPSIS = "…"

_TRUST = object()


def _restore_mrkdwn(text: str) -> Mrkdwn:
    return Mrkdwn(text, _TRUST)


def _restore_plain(text: str) -> Plain:
    return Plain(text, _TRUST)


class Mrkdwn(str):
    """Text that is safe to send to Slack as mrkdwn (or as a message's `text`).

    Made only by `md()` and the trusted constructors of this module; `Mrkdwn("…")` without the
    module's token raises. Concatenating two of them gives a `str` (use `md()` or `join()`)."""

    __slots__ = ()

    def __new__(cls, text: str, trust: object) -> Mrkdwn:
        if trust is not _TRUST:
            raise TypeError("Mrkdwn is made by bot.render's md(), mention(), when(), link() or join()")
        return super().__new__(cls, text)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _restore_mrkdwn, (str(self),)


class Plain(str):
    """Text for a `plain_text` object (headers, buttons, options, modal titles), cleaned by `plain()`."""

    __slots__ = ()

    def __new__(cls, text: str, trust: object) -> Plain:
        if trust is not _TRUST:
            raise TypeError("Plain is made by bot.render's plain()")
        return super().__new__(cls, text)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _restore_plain, (str(self),)


def _trusted(text: str) -> Mrkdwn:
    return Mrkdwn(text, _TRUST)


EMPTY = _trusted("")


# ---- cleaning ------------------------------------------------------------------------------------

# Bidi embeddings/overrides (U+202A–U+202E), isolates (U+2066–U+2069), marks (U+200E, U+200F, U+061C),
# and invisible characters that only serve to disguise text (zero-width space, word joiner and the
# invisible operators, BOM, soft hyphen). The zero-width (non-)joiners stay: emoji and scripts need them.
_DROP = str.maketrans(dict.fromkeys(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 controls: \n \r \v \f \x85 … (and \t)
_MARKS = str.maketrans({"*": "∗", "~": "∼", "`": "ˋ"})
_LONE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an `_` not between two letters or digits
_PARTIAL_TAIL = re.compile(r"(&[a-z#0-9]*|<[^>]*)$")


def clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def one_line(value: object, limit: int | None = VALUE_MAX) -> str:
    """One line of visible text: no line breaks or other controls, no bidi tricks, single spaces."""
    text = _CONTROL.sub(" ", str(value).translate(_DROP))
    return clip(" ".join(text.split()), limit)


def esc(text: object) -> str:
    """Escape Slack's three control characters; `&` first. (A `str`: builders take `Mrkdwn`.)"""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline(value: object, limit: int | None = VALUE_MAX) -> str:
    """An untrusted value as mrkdwn text: one line, unformatted, escaped (a `str`, for md's use)."""
    text = one_line(value, limit).translate(_MARKS)
    return esc(_LONE_UNDERSCORE.sub("ˍ", text))


# ---- building Mrkdwn -----------------------------------------------------------------------------

_FORMATTER = string.Formatter()


def _field(value: object, spec: str) -> str:
    if isinstance(value, Mrkdwn):
        if spec:
            raise ValueError("md(): a Mrkdwn value takes no format spec")
        return str(value)
    if isinstance(value, bool):
        raise TypeError("md(): say what a bool means in words")
    if isinstance(value, int | float | Decimal):
        return esc(format(value, spec))
    if isinstance(value, str):
        return inline(format(value, spec) if spec else value)
    raise TypeError(f"md() takes str, numbers and Mrkdwn, not {type(value).__name__}: use when(), mention()…")


def md(template: str, /, *args: object, **kwargs: object) -> Mrkdwn:
    """The bot's mrkdwn `template` (str.format fields) filled with values made safe.

    The template's own text is escaped as well (write `<course>` in it, not `&lt;course&gt;`);
    its formatting (`*bold*`, `_italic_`, backticks, emoji) is kept. A `str` value is untrusted
    (`inline()`); numbers are formatted; `Mrkdwn` values go in unchanged."""
    out: list[str] = []
    auto = 0
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        if literal:
            out.append(esc(literal))
        if name is None:
            continue
        if conversion:
            raise ValueError("md(): no !r/!s conversions")
        value: object
        if name == "":
            value, auto = args[auto], auto + 1
        elif name.isdigit():
            value = args[int(name)]
        elif name.isidentifier():
            value = kwargs[name]
        else:
            raise ValueError(f"md(): plain field names only, not {name!r}")
        out.append(_field(value, spec or ""))
    return _trusted("".join(out))


def name(value: object, limit: int = NAME_MAX) -> Mrkdwn:
    """An untrusted name or title, shortened for a list."""
    return _trusted(inline(value, limit))


def sentence(value: object, limit: int = VALUE_MAX) -> Mrkdwn:
    """A sentence the bot composed around untrusted parts (an error's message, what a user typed):
    escaped, on one line, without bidi tricks; its backticks and other formatting are kept."""
    return _trusted(esc(one_line(value, limit)))


def email(value: object) -> Mrkdwn:
    """An email address: escaped and on one line, its characters otherwise kept."""
    return _trusted(esc(one_line(value, 254)))


def code(value: object, limit: int = VALUE_MAX) -> Mrkdwn:
    """Untrusted text shown as inline code (backticks inside become look-alikes)."""
    return _trusted("`" + esc(one_line(value, limit).replace("`", "ˋ")) + "`")


_SLACK_ANY_ID = re.compile(r"^[A-Z0-9]{2,}$")
_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def mention(user_id: str) -> Mrkdwn:
    """`<@U…>` from a Slack user id; anything that is not an id is shown as text."""
    if _SLACK_ANY_ID.match(user_id):
        return _trusted(f"<@{user_id}>")
    return name(user_id)


def channel(channel_id: str) -> Mrkdwn:
    if _SLACK_CHANNEL.match(channel_id):
        return _trusted(f"<#{channel_id}>")
    return name(channel_id)


_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_HANDLE = re.compile(r"^[a-z0-9._-]{1,80}$")


def usergroup(group_id: str, handle: str = "") -> Mrkdwn:
    """`<!subteam^S…|@handle>` from a user group id (Slack shows the group's current handle)."""
    if not _SLACK_GROUP.match(group_id):
        return name(f"@{handle}" if handle else group_id)
    label = f"|@{handle}" if _HANDLE.match(handle) else ""
    return _trusted(f"<!subteam^{group_id}{label}>")


def when(moment: datetime | None) -> Mrkdwn:
    """A date Slack shows in the reader's own time zone, with a plain fallback."""
    if moment is None:
        return _trusted("unknown")
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return _trusted(f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>")


_URL = re.compile(r"^https?://[^\s<>|]+$", re.IGNORECASE)


def link(url: str, label: str) -> Mrkdwn:
    """`<url|label>` for an http(s) URL; anything else is shown as the label alone."""
    shown = inline(label, 200)
    if not _URL.match(url or ""):
        return _trusted(shown)
    return _trusted(f"<{esc(url)}|{shown}>")


def join(parts: Iterable[Mrkdwn], sep: str = ", ") -> Mrkdwn:
    """Mrkdwn parts joined by the bot's own separator (escaped like a template's text)."""
    items = list(parts)
    for part in items:
        if not isinstance(part, Mrkdwn):
            raise TypeError(f"join() takes Mrkdwn parts, not {type(part).__name__}")
    return _trusted(esc(sep).join(items))


def clip_mrkdwn(text: Mrkdwn, limit: int) -> Mrkdwn:
    """At most `limit` characters, never cutting an entity or a `<…>` sequence in two."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_TAIL.sub("", str(text)[: max(0, limit - 1)])
    return _trusted(cut.rstrip() + ELLIPSIS)


def split_lines(text: Mrkdwn) -> list[Mrkdwn]:
    """A Mrkdwn text's lines, each still Mrkdwn (a line break never falls inside a value)."""
    return [_trusted(line) for line in str(text).split("\n")]


def lines(parts: Iterable[Mrkdwn]) -> Mrkdwn:
    return join(parts, "\n")


# ---- plain text, file titles, CSV ------------------------------------------------------------------

_ANGLES = str.maketrans({"<": "‹", ">": "›"})


def plain(value: object, limit: int | None = None) -> Plain:
    """Text for a plain_text object: one line, no bidi tricks, at most `limit` characters. Slack
    shows plain_text as it is, but `<` and `>` still become look-alikes (‹ ›), so no control
    sequence ever reaches Slack outside what `md()` and the trusted constructors build."""
    return Plain(one_line(value, limit).translate(_ANGLES) or ELLIPSIS, _TRUST)


def file_title(value: object, limit: int = 250) -> str:
    """A file's title or name in Slack: one line, and no `<…>` Slack could ever read as a control sequence."""
    return one_line(value, limit).translate(_ANGLES) or "file"


_FORMULA = ("=", "+", "-", "@")


def csv_cell(value: object) -> str:
    """A CSV cell: one line, no `<…>`, and never a spreadsheet formula (a leading `= + - @` gets an apostrophe)."""
    text = one_line(value, None).translate(_ANGLES)
    return "'" + text if text.startswith(_FORMULA) else text
