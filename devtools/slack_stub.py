"""In-process stand-in for the Slack Web API and for ``response_url`` webhooks.

``SlackWorkspace`` holds the state (users, channels, messages, views, files, recorded calls) and
``create_app(workspace)`` returns a Starlette ASGI app that speaks the wire format slack_sdk's
``AsyncWebClient`` sends:

* ``POST|GET /api/<method>`` with query params, ``application/x-www-form-urlencoded``,
  ``application/json`` or ``multipart/form-data`` bodies; token in ``Authorization: Bearer ...``
  (or a ``token`` param). Answers are HTTP 200 ``{"ok": true, ...}`` / ``{"ok": false, "error": ...}``,
  except rate limits (HTTP 429 + ``Retry-After``, error ``ratelimited``): injected ones, and the
  per-channel posting limit Slack has (``chat.postMessage``: about 1 message a second per channel
  after a burst of 5; on by default, see ``limit_posts``); and injected lost answers (``lose_answer_next``).
  Calls with a valid token carry the ``x-oauth-scopes`` header, as Slack's do: the scopes granted
  (``SlackWorkspace.granted_scopes``).
* ``POST /upload/<file_id>``: the upload URL handed out by ``files.getUploadURLExternal``.
* ``GET /files/<file_id>``: the ``url_private`` of a shared file.
* ``POST /respond/<id>``: a ``response_url`` minted with ``SlackWorkspace.new_response_url()``.
* Socket Mode: ``apps.connections.open`` (app-level ``xapp-`` token) hands out
  ``ws://<host>/socket/<id>``; that WebSocket speaks Slack's envelope protocol (``hello`` on connect,
  envelopes pushed with ``send_envelope``, acks read with ``socket_ack``, ``disconnect_socket`` and
  ``drop_socket`` to make the client reconnect). See "Socket Mode" in ``SlackWorkspace``.

Usage::

    ws = SlackWorkspace()
    ws.add_user("U1", "ada", "ada@example.com")
    ws.add_channel("C1", "general", ["U1"])
    with ServerThread(create_app(ws)) as url:
        ws.base_url = url
        client = AsyncWebClient(token="xoxb-test", base_url=url + "/api/")

Deliberate simplifications are listed in the docstrings of the individual methods.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import email.parser
import email.policy
import hashlib
import itertools
import json
import logging
import math
import mimetypes
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "RESPONSE_URL_MAX_AGE",
    "RESPONSE_URL_MAX_USES",
    "TEAM_ID",
    "Listener",
    "SlackWorkspace",
    "create_app",
]

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
Listener = Callable[[str, JSONDict], None]
"""``callback(kind, payload)``; kind is one of message/update/delete/ephemeral/response/view/home/file."""

TEAM_ID: Final = "T0001"
BOT_USER_ID: Final = "U0BOT"
BOT_ID: Final = "B0BOT"
APP_ID: Final = "A0BOT"

APP_TOKEN: Final = "xapp-1-A0BOT-1-test"
_APP_TOKEN_METHODS: Final = frozenset({"apps.connections.open"})
# The bot scopes coursebot's manifest.yml asks for (a real install grants exactly these).
DEFAULT_SCOPES: Final = ("commands", "chat:write", "users:read", "users:read.email", "channels:read", "groups:read",
                         "usergroups:read", "channels:history", "groups:history", "im:write", "files:write")

# Slack's per-channel limit of chat.postMessage: "1 message per second per channel, short bursts
# allowed". Modelled as a token bucket: BURST messages at once, then one more per second.
POSTS_PER_SECOND: Final = 1.0
POST_BURST: Final = 5

RESPONSE_URL_MAX_USES: Final = 5
RESPONSE_URL_MAX_AGE: Final = 30 * 60.0

MAX_MESSAGE_BLOCKS: Final = 50
MAX_VIEW_BLOCKS: Final = 100
MAX_TEXT_CHARS: Final = 40_000
MAX_SECTION_TEXT: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD_TEXT: Final = 2000
MAX_HEADER_TEXT: Final = 150
MAX_MESSAGE_BLOCK_CHARS: Final = 12_000
"""Slack refuses a message whose blocks hold more text than about this (``msg_blocks_too_long``;
undocumented, figure from Slack maintainers). Counted here as every ``text`` string in the blocks."""

# Params that carry JSON documents; in form bodies they arrive as JSON strings.
_JSON_PARAMS: Final[dict[str, str]] = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "metadata": "invalid_metadata_format",
    "view": "invalid_arguments",
    "files": "invalid_arguments",
}


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class _Ctx:
    base_url: str
    events: list[tuple[str, JSONDict]] = field(default_factory=list)

    def emit(self, kind: str, payload: JSONDict) -> None:
        self.events.append((kind, copy.deepcopy(payload)))


@dataclass
class _Socket:
    """One open Socket Mode connection: what the test pushes goes through `outbox` on the server's loop."""

    id: str
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[str | int | None]  # text to send; an int: close with that code; None: drop (no frame)


@dataclass
class ApiResult:
    """What one Web API call answers: HTTP status, JSON body, extra headers."""

    status: int
    body: JSONDict
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # break the connection mid-answer (an answer lost on the way)


# ---------------------------------------------------------------------------------------------
# small helpers


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return False


def _opt_str(params: JSONDict, key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _int_param(params: JSONDict, key: str, default: int, *, maximum: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _ApiError("invalid_limit") from None
    if value <= 0:
        return default
    return min(value, maximum)


def _ts_to_us(ts: str) -> int:
    """``"1700000000.000100"`` -> microseconds; raises ValueError when malformed."""
    sec, _, frac = ts.strip().partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(ts)
    return int(sec) * 1_000_000 + int((frac + "000000")[:6])


def _us_to_ts(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode("ascii")


def _decode_cursor(cursor: str | None, kind: str) -> str | None:
    if not cursor:
        return None
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise _ApiError("invalid_cursor") from None
    prefix, sep, value = decoded.partition(":")
    if prefix != kind or not sep:
        raise _ApiError("invalid_cursor")
    return value


def _paginate_offset(items: list[Any], params: JSONDict, *, default_limit: int, max_limit: int) -> JSONDict:
    """Offset pagination with an opaque cursor; returns ``{"items", "next_cursor"}``."""
    limit = _int_param(params, "limit", default_limit, maximum=max_limit)
    raw = _decode_cursor(_opt_str(params, "cursor"), "offset")
    start = 0
    if raw is not None:
        if not raw.isdigit():
            raise _ApiError("invalid_cursor")
        start = int(raw)
    page = items[start : start + limit]
    end = start + len(page)
    next_cursor = _encode_cursor("offset", str(end)) if end < len(items) else ""
    return {"items": page, "next_cursor": next_cursor}


def _split_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str | None, str | None, bytes]]:
    """Parse a multipart/form-data body into ``(field name, filename, bytes)`` parts (stdlib only)."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: list[tuple[str | None, str | None, bytes]] = []
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts.append((name if isinstance(name, str) else None, part.get_filename(), data))
    return parts


def blocks_text_chars(node: Any) -> int:
    """Characters of every ``text`` string in blocks (what the total-size limit counts, here)."""
    if isinstance(node, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else blocks_text_chars(v) for k, v in node.items())
    if isinstance(node, list):
        return sum(blocks_text_chars(item) for item in node)
    return 0


def block_problem(blocks: Any, *, maximum: int) -> str | None:
    """Why Slack would refuse these blocks (count and per-block sizes), or None."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
        return "blocks must be a list of objects with a type"
    if len(blocks) > maximum:
        return f"no more than {maximum} items allowed [json-pointer:/blocks]"
    for index, block in enumerate(blocks):
        text = block.get("text")
        text = text.get("text") if isinstance(text, dict) else None
        if block["type"] == "section":
            if isinstance(text, str) and len(text) > MAX_SECTION_TEXT:
                return f"must be less than {MAX_SECTION_TEXT + 1} characters [json-pointer:/blocks/{index}/text]"
            items = block.get("fields") or []
            if len(items) > MAX_FIELDS or any(len(str(f.get("text", ""))) > MAX_FIELD_TEXT for f in items):
                return f"fields too long or too many [json-pointer:/blocks/{index}/fields]"
        elif block["type"] == "header" and isinstance(text, str) and len(text) > MAX_HEADER_TEXT:
            return f"must be less than {MAX_HEADER_TEXT + 1} characters [json-pointer:/blocks/{index}/text]"
        elif block["type"] == "context":
            elements = block.get("elements") or []
            if len(elements) > 10 or any(len(str(e.get("text", ""))) > MAX_SECTION_TEXT for e in elements):
                return f"context too long [json-pointer:/blocks/{index}/elements]"
    return None


# ---------------------------------------------------------------------------------------------
# state


class SlackWorkspace:
    """State of one fake Slack workspace; every public method is thread-safe.

    Record attributes (``ephemeral``, ``responses``, ``views``, ``home_views``, ``files``, ``calls``) are
    read-only properties returning snapshots taken under the lock.
    """

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        team_id: str = TEAM_ID,
        team_name: str = "coursebot-dev",
        bot_name: str = "coursebot",
        base_url: str = "",
        clock: Callable[[], float] | None = None,
        app_token: str = APP_TOKEN,
        posts_per_second: float | None = POSTS_PER_SECOND,
        post_burst: int = POST_BURST,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.team_id = team_id
        self.team_name = team_name
        self.bot_user_id = BOT_USER_ID
        self.bot_id = BOT_ID
        self.app_id = APP_ID
        self.bot_name = bot_name
        self.base_url = base_url
        """Public root of the server (``http://127.0.0.1:PORT``), used to build response/upload URLs.

        Set it once the port is known. While empty, API calls fall back to the request's own base URL,
        but ``new_response_url()`` needs it."""
        self._clock: Callable[[], float] = clock if clock is not None else (lambda: time.time())
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._last_ts_us = 0

        self._users: dict[str, JSONDict] = {}
        self._channels: dict[str, JSONDict] = {}
        self._usergroups: dict[str, JSONDict] = {}
        self._messages: dict[str, list[JSONDict]] = {}
        self._ephemeral: list[JSONDict] = []
        self._responses: list[JSONDict] = []
        self._views: list[JSONDict] = []
        self._open_views: dict[str, JSONDict] = {}
        self._home_views: dict[str, JSONDict] = {}
        self._files: list[JSONDict] = []
        self._pending_uploads: dict[str, JSONDict] = {}
        self._calls: list[tuple[str, JSONDict]] = []
        self._listeners: list[Listener] = []
        self._ratelimits: dict[str, list[int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._lost_answers: dict[str, list[str]] = {}
        self._post_rate: float | None = posts_per_second
        self._post_burst = post_burst
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, when)
        self._post_times: dict[str, list[float]] = {}  # channel -> when each accepted post arrived
        self._ratelimited: list[tuple[str, str]] = []  # (method, channel) of every 429 answered
        self._response_urls: dict[str, JSONDict] = {}
        self._used_triggers: set[str] = set()
        self._socket_tickets: set[str] = set()
        self._sockets: dict[str, _Socket] = {}
        self._socket_acks: dict[str, JSONDict] = {}
        self._socket_ack_times: dict[str, float] = {}
        self._socket_connects = 0
        self.granted_scopes: list[str] = list(DEFAULT_SCOPES)
        """What the ``x-oauth-scopes`` header says the token was granted (set it to take some away)."""

        self._handlers: dict[str, Callable[[JSONDict, _Ctx], JSONDict]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.list": self._users_list,
            "conversations.members": self._conversations_members,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }
        self.add_user(BOT_USER_ID, bot_name, "", real_name=bot_name, is_bot=True)

    def reset(self, token: str = "xoxb-test", **options: Any) -> None:
        """Become a new `SlackWorkspace(token, **options)` in place, served where it is now (`base_url`
        is kept unless given): no users but the bot, no channels, messages, views, files, recorded
        calls, listeners or injected failures. The app from `create_app(self)` keeps serving it, so
        one server serves a fresh workspace to test after test. Call it while no request is in flight."""
        options.setdefault("base_url", self.base_url)
        with self._lock:
            for conn in self._sockets.values():  # a Socket Mode connection left open is closed ("going away")
                with contextlib.suppress(RuntimeError):  # its server loop is gone already
                    conn.loop.call_soon_threadsafe(conn.outbox.put_nowait, 1001)
            lock = self._lock
            SlackWorkspace.__init__(self, token, **options)
            self._lock = lock

    # -- seeding ------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str,
        real_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "UTC",
    ) -> None:
        """Add (or replace) a user. ``email=""`` means the profile has no email."""
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "name": name,
                "email": email,
                "real_name": real_name if real_name is not None else name,
                "is_bot": is_bot,
                "deleted": deleted,
                "tz": tz,
            }

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: list[str],
        is_private: bool = False,
        *,
        bot_is_member: bool = True,
    ) -> None:
        """Add (or replace) a channel. ``members`` is exactly what ``conversations.members`` lists.

        ``bot_is_member=False`` makes posting fail like Slack does for a bot outside the channel
        (``not_in_channel`` for public, ``channel_not_found`` for private channels)."""
        with self._lock:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "members": list(dict.fromkeys(members)),
                "is_private": is_private,
                "is_im": False,
                "is_mpim": False,
                "user": None,
                "bot_is_member": bot_is_member,
                "created": int(self._clock()),
            }
            self._messages.setdefault(channel_id, [])

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        with self._lock:
            self._usergroups[group_id] = {"id": group_id, "handle": handle, "users": list(users)}

    def add_message(
        self,
        channel: str,
        text: str,
        user: str,
        *,
        blocks: list[JSONDict] | None = None,
        thread_ts: str | None = None,
        metadata: JSONDict | None = None,
    ) -> JSONDict:
        """Store a message as if ``user`` had posted it (seed history, simulate a human). Notifies "message"."""
        ctx = _Ctx(self.base_url)
        with self._lock:
            if channel not in self._channels:
                raise KeyError(f"unknown channel {channel!r}")
            msg = self._store_message(channel, text, blocks or [], metadata, thread_ts, user=user, bot_id=None, ctx=ctx)
        self._notify(ctx.events)
        return msg

    def open_dm(self, user_id: str) -> str:
        """Return the DM channel id between the bot and ``user_id`` ("D" + user id), creating it."""
        with self._lock:
            if user_id not in self._users:
                raise KeyError(f"unknown user {user_id!r}")
            return self._ensure_dm(user_id)

    def new_response_url(
        self, *, channel: str | None = None, message_ts: str | None = None, user: str | None = None
    ) -> str:
        """Mint a ``<base_url>/respond/<id>`` URL, valid for 5 uses within 30 minutes (as Slack's).

        With ``channel``/``message_ts`` (the message holding the clicked button), ``replace_original`` and
        ``delete_original`` act on that stored message; with ``channel``, ``response_type=in_channel``
        posts a new bot message there. These side effects are silent: only "response" is notified."""
        if not self.base_url:
            raise RuntimeError("SlackWorkspace.base_url is not set (set it to the server URL first)")
        with self._lock:
            url_id = f"R{next(self._ids):08d}{secrets.token_hex(8)}"
            self._response_urls[url_id] = {
                "created": self._clock(),
                "uses": 0,
                "channel": channel,
                "message_ts": message_ts,
                "user": user,
            }
        return f"{self.base_url.rstrip('/')}/respond/{url_id}"

    def new_trigger_id(self) -> str:
        """A fresh trigger_id. Any non-empty trigger_id is accepted, but each only once (as in Slack)."""
        with self._lock:
            return f"{next(self._ids)}.{int(self._clock())}.{secrets.token_hex(16)}"

    # -- fault injection ----------------------------------------------------------------------

    def ratelimit_next(self, method: str, n: int, retry_after: int = 1) -> None:
        """The next ``n`` calls to ``method`` answer HTTP 429, ``Retry-After: retry_after``, error ratelimited."""
        with self._lock:
            self._ratelimits.setdefault(method, []).extend([retry_after] * n)

    def fail_next(self, method: str, n: int, error: str = "internal_error") -> None:
        """The next ``n`` calls to ``method`` answer HTTP 200 ``{"ok": false, "error": error}``."""
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * n)

    def lose_answer_next(self, method: str, n: int = 1, *, how: str = "500") -> None:
        """The next ``n`` calls to ``method`` are carried out (a message is stored), but the answer is
        lost: ``how="500"`` answers HTTP 500, ``how="drop"`` breaks the connection mid-answer. The
        caller cannot tell whether Slack took the call, as after a timeout or a reset."""
        if how not in ("500", "drop"):
            raise ValueError("how must be '500' or 'drop'")
        with self._lock:
            self._lost_answers.setdefault(method, []).extend([how] * n)

    def limit_posts(self, per_second: float | None = POSTS_PER_SECOND, burst: int = POST_BURST) -> None:
        """Slack's per-channel limit of chat.postMessage, as a token bucket per channel: ``burst``
        messages at once, then ``per_second``. Past it the call answers HTTP 429 ``ratelimited`` with
        ``Retry-After`` (whole seconds until a message would be taken) and nothing is posted.
        On by default (1 a second, burst 5); ``None`` turns it off."""
        with self._lock:
            self._post_rate = per_second
            self._post_burst = burst
            self._buckets.clear()

    @property
    def ratelimited(self) -> int:
        """How many calls were answered 429 ``ratelimited`` (injected or past the posting limit)."""
        with self._lock:
            return len(self._ratelimited)

    def ratelimited_calls(self) -> list[tuple[str, str]]:
        """``(method, channel)`` of every 429 answer, in order (channel "" for injected ones)."""
        with self._lock:
            return list(self._ratelimited)

    def busiest(self, seconds: float = 10.0, *, since: float | None = None) -> dict[str, int]:
        """Per channel, the most messages the bot posted within any ``seconds`` (thread replies count),
        counting posts from ``since`` on (the workspace clock's time) when given."""
        with self._lock:
            times = {channel: sorted(t for t in ts if since is None or t >= since)
                     for channel, ts in self._post_times.items()}
        most: dict[str, int] = {}
        for channel, moments in times.items():
            first, best = 0, 0
            for last, moment in enumerate(moments):
                while moment - moments[first] >= seconds:
                    first += 1
                best = max(best, last - first + 1)
            most[channel] = best
        return most

    def most_in_window(self, seconds: float = 10.0, *, since: float | None = None) -> int:
        """The most messages posted into one channel within any ``seconds``."""
        return max(self.busiest(seconds, since=since).values(), default=0)

    def now(self) -> float:
        """The workspace clock's time (what ``since`` is measured in)."""
        return self._clock()

    # -- listeners ----------------------------------------------------------------------------

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` for every bot output; returns an unsubscribe function.

        Callbacks run on the server's thread, outside the state lock; exceptions are logged."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, events: Iterable[tuple[str, JSONDict]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for kind, payload in events:
            for listener in listeners:
                try:
                    listener(kind, payload)
                except Exception:
                    log.exception("slackstub listener failed on %s", kind)

    # -- reading state ------------------------------------------------------------------------

    def messages(self, channel: str) -> list[JSONDict]:
        """All messages in ``channel`` (thread replies included), oldest first, as copies.

        Each is ``{channel, ts, text, blocks, metadata, thread_ts, user, bot_id}``; ``reply_broadcast``
        is present for broadcast replies."""
        with self._lock:
            return copy.deepcopy(self._messages.get(channel, []))

    @property
    def ephemeral(self) -> list[JSONDict]:
        """chat.postEphemeral messages: ``{channel, user, ts, text, blocks, thread_ts}``."""
        with self._lock:
            return copy.deepcopy(self._ephemeral)

    @property
    def responses(self) -> list[JSONDict]:
        """Bodies POSTed to response_urls, each with an added ``url_id``."""
        with self._lock:
            return copy.deepcopy(self._responses)

    @property
    def views(self) -> list[JSONDict]:
        """views.open/push/update: ``{method, trigger_id, view_id, view}`` (view = full view object)."""
        with self._lock:
            return copy.deepcopy(self._views)

    @property
    def home_views(self) -> dict[str, JSONDict]:
        """Current App Home view per user id (views.publish)."""
        with self._lock:
            return copy.deepcopy(self._home_views)

    @property
    def files(self) -> list[JSONDict]:
        """Completed uploads: ``{id, filename, title, bytes, channel, channels, thread_ts, initial_comment}``."""
        with self._lock:
            return copy.deepcopy(self._files)

    @property
    def calls(self) -> list[tuple[str, JSONDict]]:
        """Every API call received (also rejected/ratelimited ones): ``(method, parsed params)``."""
        with self._lock:
            return copy.deepcopy(self._calls)

    def call_count(self, method: str) -> int:
        with self._lock:
            return sum(1 for name, _ in self._calls if name == method)

    def calls_to(self, method: str) -> list[JSONDict]:
        """Parsed params of every call to ``method``, in order."""
        with self._lock:
            return [copy.deepcopy(params) for name, params in self._calls if name == method]

    def view(self, view_id: str) -> JSONDict | None:
        """The current state of an opened modal view, or None."""
        with self._lock:
            found = self._open_views.get(view_id)
            return copy.deepcopy(found) if found is not None else None

    # -- Socket Mode --------------------------------------------------------------------------
    #
    # apps.connections.open hands out a one-time URL; the client connects, gets {"type": "hello"},
    # and from then on the test pushes envelopes and reads the client's acks. Envelopes go to the
    # newest open connection. The client must ack each one (`{"envelope_id", "payload"?}`) on the
    # socket, as Slack requires within 3 seconds. Calls from the test thread are thread-safe; the
    # WebSocket itself runs on the server's event loop.

    @property
    def socket_connects(self) -> int:
        """How many Socket Mode connections were accepted so far (reconnects included)."""
        with self._lock:
            return self._socket_connects

    def open_sockets(self) -> list[str]:
        """Ids of the Socket Mode connections open now, oldest first."""
        with self._lock:
            return list(self._sockets)

    def send_envelope(self, kind: str, payload: JSONDict, *, accepts_response_payload: bool | None = None,
                      socket: str | None = None) -> str:
        """Push one envelope (`slash_commands`, `interactive` or `events_api`); returns its envelope_id.

        `accepts_response_payload` defaults to what Slack sends: true for commands and interactions,
        false for events (which also carry `retry_attempt`/`retry_reason`)."""
        envelope_id = str(uuid.uuid4())
        message: JSONDict = {
            "envelope_id": envelope_id, "type": kind, "payload": copy.deepcopy(payload),
            "accepts_response_payload": (kind != "events_api") if accepts_response_payload is None
            else accepts_response_payload,
        }
        if kind == "events_api":
            message.update(retry_attempt=0, retry_reason="")
        self._socket_push(json.dumps(message), socket)
        return envelope_id

    def socket_ack(self, envelope_id: str) -> JSONDict | None:
        """The client's ack of that envelope (`{"envelope_id", "payload"?}`), or None while there is none."""
        with self._lock:
            found = self._socket_acks.get(envelope_id)
            return copy.deepcopy(found) if found is not None else None

    def socket_ack_time(self, envelope_id: str) -> float | None:
        """`time.perf_counter()` when that ack arrived (for measuring), or None."""
        with self._lock:
            return self._socket_ack_times.get(envelope_id)

    def disconnect_socket(self, reason: str = "refresh_requested", *, socket: str | None = None) -> None:
        """Send Slack's `disconnect` message: the client should connect anew (this one stays open until it closes)."""
        self._socket_push(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "slackstub"}}),
                          socket)

    def drop_socket(self, *, code: int | None = None, socket: str | None = None) -> None:
        """Close the connection without warning: with no close frame at all (a dropped TCP connection),
        or with a close frame carrying `code` (e.g. 1011, a server error)."""
        self._socket_push(code, socket)

    def _socket_push(self, item: str | int | None, socket: str | None) -> None:
        with self._lock:
            if socket is not None:
                conn = self._sockets.get(socket)
            else:
                conn = next(reversed(self._sockets.values()), None)
        if conn is None:
            raise RuntimeError("no Socket Mode connection is open")
        conn.loop.call_soon_threadsafe(conn.outbox.put_nowait, item)

    def _apps_connections_open(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        if not ctx.base_url:
            raise _ApiError("internal_error", detail="SlackWorkspace.base_url is not set")
        ticket = secrets.token_hex(12)
        self._socket_tickets.add(ticket)
        return {"url": ctx.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
                + f"/socket/{ticket}"}

    def _socket_open(self, ticket: str, loop: asyncio.AbstractEventLoop) -> _Socket | None:
        with self._lock:
            if ticket not in self._socket_tickets:
                return None
            self._socket_tickets.discard(ticket)  # a URL serves one connection
            conn = _Socket(ticket, loop, asyncio.Queue())
            self._sockets[ticket] = conn
            self._socket_connects += 1
            return conn

    def _socket_closed(self, ticket: str) -> None:
        with self._lock:
            self._sockets.pop(ticket, None)

    def _socket_received(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("slackstub: a Socket Mode message that is not JSON: %.200s", text)
            return
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            with self._lock:
                self._socket_acks[message["envelope_id"]] = message
                self._socket_ack_times[message["envelope_id"]] = time.perf_counter()

    # -- dispatch -----------------------------------------------------------------------------

    def dispatch(self, method: str, params: JSONDict, token: str | None, *, base_url: str = "") -> ApiResult:
        """Run one Web API call (the HTTP layer calls this; usable directly too)."""
        params = dict(params)
        if token is None and "token" in params:
            token = str(params.pop("token"))
        params.pop("token", None)
        ctx = _Ctx(base_url=(self.base_url or base_url).rstrip("/"))
        decode_error: str | None = None
        for key, error in _JSON_PARAMS.items():
            value = params.get(key)
            if isinstance(value, str | bytes):
                text = value.decode() if isinstance(value, bytes) else value
                if not text.strip():
                    params[key] = None
                    continue
                try:
                    params[key] = json.loads(text)
                except ValueError:
                    decode_error = decode_error or error
        with self._lock:
            self._calls.append((method, copy.deepcopy(params)))
            expected = self.app_token if method in _APP_TOKEN_METHODS else self.token
            if not token or token != expected:
                error = "not_allowed_token_type" if token in (self.token, self.app_token) else "invalid_auth"
                return ApiResult(200, {"ok": False, "error": error})
            scopes = {"x-oauth-scopes": "connections:write" if method in _APP_TOKEN_METHODS
                      else ",".join(self.granted_scopes)}
            pending_limits = self._ratelimits.get(method)
            if pending_limits:
                retry_after = pending_limits.pop(0)
                self._ratelimited.append((method, ""))
                return ApiResult(429, {"ok": False, "error": "ratelimited"},
                                 {"Retry-After": str(retry_after), **scopes})
            pending_failures = self._failures.get(method)
            if pending_failures:
                return ApiResult(200, {"ok": False, "error": pending_failures.pop(0)}, scopes)
            if decode_error is not None:
                return ApiResult(200, {"ok": False, "error": decode_error}, scopes)
            posted_to = self._posting_channel(method, params)
            if posted_to is not None:
                wait = self._take_post_token(posted_to)
                if wait is not None:
                    self._ratelimited.append((method, posted_to))
                    return ApiResult(429, {"ok": False, "error": "ratelimited"},
                                     {"Retry-After": str(wait), **scopes})
            handler = self._handlers.get(method)
            try:
                body = handler(params, ctx) if handler is not None else {}
            except _ApiError as exc:
                return ApiResult(200, {"ok": False, "error": exc.error, **exc.extra}, scopes)
            if posted_to is not None:
                self._post_times.setdefault(posted_to, []).append(self._clock())
            lost = self._lost_answers.get(method)
            lost_how = lost.pop(0) if lost else None
        self._notify(ctx.events)
        if lost_how is not None:
            return ApiResult(500, {"ok": False, "error": "internal_error"}, scopes, drop=lost_how == "drop")
        return ApiResult(200, {"ok": True, **body}, scopes)

    # -- internals (call with the lock held) --------------------------------------------------

    def _posting_channel(self, method: str, params: JSONDict) -> str | None:
        """The channel a chat.postMessage posts into (None: another method, or no such channel)."""
        if method != "chat.postMessage" or self._post_rate is None:
            return None
        ref = _opt_str(params, "channel")
        if ref is None:
            return None
        if ref in self._channels:
            return ref
        if ref in self._users:
            return f"D{ref}"
        name = ref.removeprefix("#")
        return next((c["id"] for c in self._channels.values() if c["name"] == name), None)

    def _take_post_token(self, channel: str) -> int | None:
        """Spend one message of the channel's bucket; when empty, the whole seconds to wait instead."""
        rate = self._post_rate
        assert rate is not None
        now = self._clock()
        tokens, when = self._buckets.get(channel, (float(self._post_burst), now))
        tokens = min(float(self._post_burst), tokens + max(0.0, now - when) * rate)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self._buckets[channel] = (tokens - 1.0, now)
        return None

    def _next_ts(self) -> str:
        us = max(int(self._clock() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = us
        return _us_to_ts(us)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _ensure_dm(self, user_id: str) -> str:
        channel_id = f"D{user_id}"
        if channel_id not in self._channels:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": None,
                "members": [self.bot_user_id, user_id],
                "is_private": True,
                "is_im": True,
                "is_mpim": False,
                "user": user_id,
                "bot_is_member": True,
                "created": int(self._clock()),
            }
            self._messages[channel_id] = []
        return channel_id

    def _channel(self, ref: Any, *, allow_name: bool = False, open_dm: bool = False) -> JSONDict:
        if ref is None or ref == "":
            raise _ApiError("channel_not_found")
        ref = str(ref)
        if ref in self._channels:
            return self._channels[ref]
        if allow_name:
            name = ref.removeprefix("#")
            for channel in self._channels.values():
                if channel["name"] == name:
                    return channel
        if open_dm and ref in self._users:
            return self._channels[self._ensure_dm(ref)]
        raise _ApiError("channel_not_found")

    def _check_can_post(self, channel: JSONDict) -> None:
        if not channel["bot_is_member"]:
            raise _ApiError("channel_not_found" if channel["is_private"] else "not_in_channel")

    def _find_message(self, channel_id: str, ts: Any) -> JSONDict:
        for msg in self._messages.get(channel_id, []):
            if msg["ts"] == ts:
                return msg
        raise _ApiError("message_not_found")

    def _user_obj(self, user: JSONDict) -> JSONDict:
        profile: JSONDict = {
            "real_name": user["real_name"],
            "real_name_normalized": user["real_name"],
            "display_name": user["name"],
            "display_name_normalized": user["name"],
            "team": self.team_id,
        }
        if user["email"]:
            profile["email"] = user["email"]
        if user["id"] == self.bot_user_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": user["id"],
            "team_id": self.team_id,
            "name": user["name"],
            "real_name": user["real_name"],
            "deleted": user["deleted"],
            "is_bot": user["is_bot"],
            "is_app_user": False,
            "is_admin": False,
            "is_owner": False,
            "tz": user["tz"],
            "profile": profile,
        }

    def _channel_obj(self, channel: JSONDict) -> JSONDict:
        obj: JSONDict = {
            "id": channel["id"],
            "created": channel["created"],
            "is_im": channel["is_im"],
            "is_mpim": channel["is_mpim"],
            "is_private": channel["is_private"],
            "is_archived": False,
        }
        if channel["is_im"]:
            obj["user"] = channel["user"]
        else:
            obj.update(
                {
                    "name": channel["name"],
                    "is_channel": not channel["is_private"] and not channel["is_mpim"],
                    "is_group": channel["is_private"] and not channel["is_mpim"],
                    "is_member": channel["bot_is_member"],
                    "num_members": len(channel["members"]),
                }
            )
        return obj

    def _validate_blocks(self, blocks: Any, *, maximum: int, error: str = "invalid_blocks") -> list[JSONDict]:
        """Slack's limits: `maximum` blocks (50 in a message, 100 in a view), section text 3,000,
        10 fields of 2,000, header 150; and in a message, about 12,000 characters of text in all
        (`msg_blocks_too_long`)."""
        if blocks is None:
            return []
        problem = block_problem(blocks, maximum=maximum)
        if problem is not None:
            raise _ApiError(error, detail=problem)
        if maximum == MAX_MESSAGE_BLOCKS and blocks_text_chars(blocks) > MAX_MESSAGE_BLOCK_CHARS:
            raise _ApiError("msg_blocks_too_long")
        return list(blocks)

    def _validate_metadata(self, metadata: Any) -> JSONDict | None:
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload", {}), dict)
        ):
            raise _ApiError("invalid_metadata_format")
        return {"event_type": metadata["event_type"], "event_payload": metadata.get("event_payload", {})}

    def _store_message(
        self,
        channel: str,
        text: str,
        blocks: list[JSONDict],
        metadata: JSONDict | None,
        thread_ts: str | None,
        *,
        user: str,
        bot_id: str | None,
        ctx: _Ctx,
        reply_broadcast: bool = False,
    ) -> JSONDict:
        msg: JSONDict = {
            "channel": channel,
            "ts": self._next_ts(),
            "text": text,
            "blocks": copy.deepcopy(blocks),
            "metadata": copy.deepcopy(metadata),
            "thread_ts": thread_ts,
            "user": user,
            "bot_id": bot_id,
        }
        if reply_broadcast:
            msg["reply_broadcast"] = True
        self._messages.setdefault(channel, []).append(msg)
        ctx.emit("message", msg)
        return copy.deepcopy(msg)

    def _public_message(self, msg: JSONDict, *, include_metadata: bool) -> JSONDict:
        out: JSONDict = {
            "type": "message",
            "ts": msg["ts"],
            "text": msg["text"],
            "blocks": copy.deepcopy(msg["blocks"]),
            "user": msg["user"],
            "team": self.team_id,
        }
        if msg["bot_id"]:
            out["bot_id"] = msg["bot_id"]
            out["app_id"] = self.app_id
        if msg.get("edited"):
            out["edited"] = copy.deepcopy(msg["edited"])
        if msg["thread_ts"]:
            out["thread_ts"] = msg["thread_ts"]
        if msg.get("reply_broadcast"):
            out["subtype"] = "thread_broadcast"
        replies = [m for m in self._messages.get(msg["channel"], []) if m["thread_ts"] == msg["ts"] and m is not msg]
        if replies and not msg["thread_ts"]:
            out["thread_ts"] = msg["ts"]
        if replies:
            out["reply_count"] = len(replies)
            out["reply_users"] = list(dict.fromkeys(m["user"] for m in replies))
            out["latest_reply"] = replies[-1]["ts"]
        if include_metadata and msg["metadata"]:
            out["metadata"] = copy.deepcopy(msg["metadata"])
        return out

    @staticmethod
    def _ts_bound(params: JSONDict, key: str, error: str) -> int | None:
        raw = _opt_str(params, key)
        if raw is None:
            return None
        try:
            return _ts_to_us(raw)
        except ValueError:
            raise _ApiError(error) from None

    # -- API methods --------------------------------------------------------------------------

    def _auth_test(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        return {
            "url": f"https://{self.team_name}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        user = self._users.get(str(params.get("user", "")))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": self._user_obj(user)}

    def _users_lookup_by_email(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        email = str(params.get("email") or "").strip().lower()
        for user in self._users.values():
            if email and user["email"].lower() == email:
                return {"user": self._user_obj(user)}
        raise _ApiError("users_not_found")

    def _users_list(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        page = _paginate_offset(list(self._users.values()), params, default_limit=1000, max_limit=1000)
        return {
            "members": [self._user_obj(u) for u in page["items"]],
            "cache_ts": int(self._clock()),
            "response_metadata": {"next_cursor": page["next_cursor"]},
        }

    def _conversations_members(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"))
        page = _paginate_offset(list(channel["members"]), params, default_limit=100, max_limit=1000)
        return {"members": page["items"], "response_metadata": {"next_cursor": page["next_cursor"]}}

    def _conversations_info(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        """``is_member`` says whether the bot is in the channel; a private channel it is not in is
        invisible to it (``channel_not_found``), as in Slack."""
        channel = self._channel(params.get("channel"))
        if channel["is_private"] and not channel["bot_is_member"]:
            raise _ApiError("channel_not_found")
        return {"channel": self._channel_obj(channel)}

    def _conversations_open(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        if _opt_str(params, "channel"):
            return {"channel": self._channel_obj(self._channel(params.get("channel")))}
        users = _split_ids(params.get("users"))
        if not users:
            raise _ApiError("users_list_not_supplied")
        for user_id in users:
            if user_id not in self._users:
                raise _ApiError("user_not_found")
        if users == [self.bot_user_id]:
            raise _ApiError("cannot_dm_bot")
        if len(users) == 1:
            existed = f"D{users[0]}" in self._channels
            channel = self._channels[self._ensure_dm(users[0])]
        else:
            members = sorted(set(users) | {self.bot_user_id})
            channel_id = "G" + hashlib.sha1(",".join(members).encode()).hexdigest()[:10].upper()
            existed = channel_id in self._channels
            if not existed:
                self._channels[channel_id] = {
                    "id": channel_id,
                    "name": "mpdm-" + "--".join(members),
                    "members": members,
                    "is_private": True,
                    "is_im": False,
                    "is_mpim": True,
                    "user": None,
                    "bot_is_member": True,
                    "created": int(self._clock()),
                }
                self._messages[channel_id] = []
        body: JSONDict = {"channel": {"id": channel["id"]}}
        if _truthy(params.get("return_im")):
            body["channel"] = self._channel_obj(channel)
        if existed:
            body["no_op"] = True
            body["already_open"] = True
        return body

    def _conversations_history(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"))
        oldest = self._ts_bound(params, "oldest", "invalid_ts_oldest")
        latest = self._ts_bound(params, "latest", "invalid_ts_latest")
        inclusive = _truthy(params.get("inclusive"))
        before = _decode_cursor(_opt_str(params, "cursor"), "before")
        before_us = None
        if before is not None:
            try:
                before_us = _ts_to_us(before)
            except ValueError:
                raise _ApiError("invalid_cursor") from None
        limit = _int_param(params, "limit", 100, maximum=999)
        include_metadata = _truthy(params.get("include_all_metadata"))

        selected: list[JSONDict] = []
        for msg in reversed(self._messages.get(channel["id"], [])):
            if msg["thread_ts"] and msg["thread_ts"] != msg["ts"] and not msg.get("reply_broadcast"):
                continue
            us = _ts_to_us(msg["ts"])
            if oldest is not None and (us < oldest or (us == oldest and not inclusive)):
                continue
            if latest is not None and (us > latest or (us == latest and not inclusive)):
                continue
            if before_us is not None and us >= before_us:
                continue
            selected.append(msg)
        page, rest = selected[:limit], selected[limit:]
        next_cursor = _encode_cursor("before", page[-1]["ts"]) if rest else ""
        return {
            "messages": [self._public_message(m, include_metadata=include_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"))
        ts = _opt_str(params, "ts")
        if ts is None:
            raise _ApiError("invalid_arguments")
        try:
            target = self._find_message(channel["id"], ts)
        except _ApiError:
            raise _ApiError("thread_not_found") from None
        root_ts = target["thread_ts"] or target["ts"]
        thread = [m for m in self._messages[channel["id"]] if m["ts"] == root_ts or m["thread_ts"] == root_ts]
        after = _decode_cursor(_opt_str(params, "cursor"), "after")
        if after is not None:
            try:
                after_us = _ts_to_us(after)
            except ValueError:
                raise _ApiError("invalid_cursor") from None
            thread = [m for m in thread if _ts_to_us(m["ts"]) > after_us and m["ts"] != root_ts]
        limit = _int_param(params, "limit", 1000, maximum=1000)
        include_metadata = _truthy(params.get("include_all_metadata"))
        page, rest = thread[:limit], thread[limit:]
        next_cursor = _encode_cursor("after", page[-1]["ts"]) if rest else ""
        return {
            "messages": [self._public_message(m, include_metadata=include_metadata) for m in page],
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _usergroups_list(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        include_users = _truthy(params.get("include_users"))
        groups = []
        for group in self._usergroups.values():
            obj: JSONDict = {
                "id": group["id"],
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": group["handle"],
                "handle": group["handle"],
                "description": "",
                "date_delete": 0,
                "user_count": len(group["users"]),
            }
            if include_users:
                obj["users"] = list(group["users"])
            groups.append(obj)
        return {"usergroups": groups}

    def _usergroups_users_list(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        group = self._usergroups.get(str(params.get("usergroup", "")))
        if group is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(group["users"])}

    def _chat_post_message(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"), allow_name=True, open_dm=True)
        self._check_can_post(channel)
        text = str(params.get("text") or "")
        blocks = self._validate_blocks(params.get("blocks"), maximum=MAX_MESSAGE_BLOCKS)
        if not text and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        metadata = self._validate_metadata(params.get("metadata"))
        msg = self._store_message(
            channel["id"],
            text[:MAX_TEXT_CHARS],
            blocks,
            metadata,
            _opt_str(params, "thread_ts"),
            user=self.bot_user_id,
            bot_id=self.bot_id,
            ctx=ctx,
            reply_broadcast=_truthy(params.get("reply_broadcast")),
        )
        stored = self._find_message(channel["id"], msg["ts"])
        return {
            "channel": channel["id"],
            "ts": msg["ts"],
            "message": self._public_message(stored, include_metadata=True),
        }

    def _chat_update(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"))
        msg = self._find_message(channel["id"], params.get("ts"))
        if msg["user"] != self.bot_user_id:
            raise _ApiError("cant_update_message")
        if params.get("text") is not None:
            text = str(params["text"])
            if len(text) > MAX_TEXT_CHARS:
                raise _ApiError("msg_too_long")
            msg["text"] = text
        if params.get("blocks") is not None:
            msg["blocks"] = copy.deepcopy(self._validate_blocks(params["blocks"], maximum=MAX_MESSAGE_BLOCKS))
        if params.get("metadata") is not None:
            msg["metadata"] = self._validate_metadata(params["metadata"])
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        ctx.emit("update", msg)
        return {
            "channel": channel["id"],
            "ts": msg["ts"],
            "text": msg["text"],
            "message": self._public_message(msg, include_metadata=True),
        }

    def _chat_post_ephemeral(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"), allow_name=True, open_dm=True)
        user = _opt_str(params, "user")
        if user is None or user not in self._users:
            raise _ApiError("user_not_found")
        if user not in channel["members"]:
            raise _ApiError("user_not_in_channel")
        text = str(params.get("text") or "")
        blocks = self._validate_blocks(params.get("blocks"), maximum=MAX_MESSAGE_BLOCKS)
        if not text and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        record: JSONDict = {
            "channel": channel["id"],
            "user": user,
            "ts": self._next_ts(),
            "text": text,
            "blocks": copy.deepcopy(blocks),
            "thread_ts": _opt_str(params, "thread_ts"),
        }
        self._ephemeral.append(record)
        ctx.emit("ephemeral", record)
        return {"message_ts": record["ts"]}

    def _chat_delete(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        channel = self._channel(params.get("channel"))
        msg = self._find_message(channel["id"], params.get("ts"))
        if msg["user"] != self.bot_user_id:
            raise _ApiError("cant_delete_message")
        self._messages[channel["id"]].remove(msg)
        ctx.emit("delete", msg)
        return {"channel": channel["id"], "ts": msg["ts"]}

    # views

    def _validate_view(self, view: Any, allowed: set[str]) -> JSONDict:
        if not isinstance(view, dict) or view.get("type") not in allowed:
            raise _ApiError("invalid_arguments")
        self._validate_blocks(view.get("blocks", []), maximum=MAX_VIEW_BLOCKS, error="invalid_arguments")
        if view["type"] == "modal":
            for key, required in (("title", True), ("submit", False), ("close", False)):
                text_obj = view.get(key)
                if text_obj is None and not required:
                    continue
                if not isinstance(text_obj, dict) or not 0 < len(str(text_obj.get("text", ""))) <= 24:
                    raise _ApiError("invalid_arguments", detail=f"{key} must be plain_text of 1-24 chars")
        if len(str(view.get("private_metadata", ""))) > 3000 or len(str(view.get("callback_id", ""))) > 255:
            raise _ApiError("invalid_arguments")
        return view

    def _take_trigger(self, params: JSONDict) -> str:
        trigger_id = _opt_str(params, "trigger_id") or _opt_str(params, "interactivity_pointer")
        if trigger_id is None:
            raise _ApiError("invalid_arguments")
        if trigger_id in self._used_triggers:
            raise _ApiError("exchanged_trigger_id")
        return trigger_id

    def _full_view(self, view: JSONDict, view_id: str, *, root_view_id: str, previous: str | None) -> JSONDict:
        full: JSONDict = {
            "id": view_id,
            "team_id": self.team_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            "blocks": [],
        }
        full.update(copy.deepcopy(view))
        full.update(
            {
                "id": view_id,
                "state": {"values": {}},
                "hash": f"{int(self._clock())}.{self._new_id('h')}",
                "root_view_id": root_view_id,
                "previous_view_id": previous,
                "app_id": self.app_id,
                "bot_id": self.bot_id,
            }
        )
        return full

    def _check_external_id(self, view: JSONDict, own_id: str | None) -> None:
        external_id = view.get("external_id")
        if not external_id:
            return
        for existing in self._open_views.values():
            if existing["external_id"] == external_id and existing["id"] != own_id:
                raise _ApiError("duplicate_external_id")

    def _record_view(self, method: str, trigger_id: str | None, full: JSONDict, ctx: _Ctx) -> None:
        self._open_views[full["id"]] = full
        entry = {"method": method, "trigger_id": trigger_id, "view_id": full["id"], "view": copy.deepcopy(full)}
        self._views.append(entry)
        ctx.emit("view", entry)

    def _views_open(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        trigger_id = self._take_trigger(params)
        view = self._validate_view(params.get("view"), {"modal"})
        self._check_external_id(view, None)
        self._used_triggers.add(trigger_id)
        view_id = self._new_id("V")
        full = self._full_view(view, view_id, root_view_id=view_id, previous=None)
        self._record_view("views.open", trigger_id, full, ctx)
        return {"view": copy.deepcopy(full)}

    def _views_push(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        trigger_id = self._take_trigger(params)
        view = self._validate_view(params.get("view"), {"modal"})
        self._check_external_id(view, None)
        self._used_triggers.add(trigger_id)
        view_id = self._new_id("V")
        full = self._full_view(view, view_id, root_view_id=view_id, previous=None)
        self._record_view("views.push", trigger_id, full, ctx)
        return {"view": copy.deepcopy(full)}

    def _views_update(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        view_id = _opt_str(params, "view_id")
        external_id = _opt_str(params, "external_id")
        current: JSONDict | None = None
        if view_id is not None:
            current = self._open_views.get(view_id)
        elif external_id is not None:
            current = next((v for v in self._open_views.values() if v["external_id"] == external_id), None)
        else:
            raise _ApiError("invalid_arguments")
        if current is None:
            raise _ApiError("not_found")
        expected_hash = _opt_str(params, "hash")
        if expected_hash is not None and expected_hash != current["hash"]:
            raise _ApiError("hash_conflict")
        view = self._validate_view(params.get("view"), {"modal"})
        self._check_external_id(view, current["id"])
        full = self._full_view(
            view, current["id"], root_view_id=current["root_view_id"], previous=current["previous_view_id"]
        )
        self._record_view("views.update", None, full, ctx)
        return {"view": copy.deepcopy(full)}

    def _views_publish(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        user_id = _opt_str(params, "user_id")
        if user_id is None or user_id not in self._users:
            raise _ApiError("user_not_found")
        view = self._validate_view(params.get("view"), {"home"})
        current = self._home_views.get(user_id)
        expected_hash = _opt_str(params, "hash")
        if expected_hash is not None and current is not None and expected_hash != current["hash"]:
            raise _ApiError("hash_conflict")
        view_id = current["id"] if current is not None else self._new_id("V")
        full = self._full_view(view, view_id, root_view_id=view_id, previous=None)
        self._home_views[user_id] = full
        ctx.emit("home", {"user_id": user_id, "view": full})
        return {"view": copy.deepcopy(full)}

    # files

    def _files_get_upload_url(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        filename = _opt_str(params, "filename")
        length = params.get("length")
        if filename is None or length is None:
            raise _ApiError("invalid_arguments")
        try:
            length_int = int(length)
        except (TypeError, ValueError):
            raise _ApiError("invalid_arguments") from None
        if not ctx.base_url:
            raise _ApiError("internal_error", detail="SlackWorkspace.base_url is not set")
        file_id = self._new_id("F")
        self._pending_uploads[file_id] = {
            "id": file_id,
            "filename": filename,
            "length": length_int,
            "alt_txt": _opt_str(params, "alt_txt"),
            "snippet_type": _opt_str(params, "snippet_type"),
            "bytes": None,
        }
        return {"upload_url": f"{ctx.base_url}/upload/{file_id}", "file_id": file_id}

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """Store bytes POSTed to an upload URL; False when the file id is unknown or already completed."""
        with self._lock:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return False
            pending["bytes"] = bytes(data)
            return True

    def file_bytes(self, file_id: str) -> bytes | None:
        with self._lock:
            for record in self._files:
                if record["id"] == file_id:
                    return bytes(record["bytes"])
            return None

    def _files_complete_upload(self, params: JSONDict, ctx: _Ctx) -> JSONDict:
        items = params.get("files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
            raise _ApiError("invalid_arguments")
        channel_refs = _split_ids(params.get("channel_id")) or _split_ids(params.get("channels"))
        channels = [self._channel(ref, open_dm=True) for ref in channel_refs]
        for channel in channels:
            self._check_can_post(channel)
        pendings = []
        for item in items:
            pending = self._pending_uploads.get(str(item["id"]))
            if pending is None or pending["bytes"] is None:
                raise _ApiError("file_not_found")
            pendings.append((item, pending))
        thread_ts = _opt_str(params, "thread_ts")
        initial_comment = _opt_str(params, "initial_comment")
        channel_ids = [c["id"] for c in channels]
        out = []
        for item, pending in pendings:
            del self._pending_uploads[pending["id"]]
            title = str(item.get("title") or pending["filename"])
            data: bytes = pending["bytes"]
            mimetype = mimetypes.guess_type(pending["filename"])[0] or "application/octet-stream"
            record: JSONDict = {
                "id": pending["id"],
                "filename": pending["filename"],
                "title": title,
                "bytes": data,
                "size": len(data),
                "mimetype": mimetype,
                "channel": channel_ids[0] if channel_ids else None,
                "channels": list(channel_ids),
                "thread_ts": thread_ts,
                "initial_comment": initial_comment,
                "alt_txt": pending["alt_txt"],
            }
            self._files.append(record)
            ctx.emit("file", record)
            out.append(
                {
                    "id": pending["id"],
                    "created": int(self._clock()),
                    "name": pending["filename"],
                    "title": title,
                    "mimetype": mimetype,
                    "filetype": pending["filename"].rpartition(".")[2] if "." in pending["filename"] else "",
                    "user": self.bot_user_id,
                    "size": len(data),
                    "url_private": f"{ctx.base_url}/files/{pending['id']}",
                    "channels": [c for c in channel_ids if not c.startswith(("D", "G"))],
                    "groups": [c for c in channel_ids if c.startswith("G")],
                    "ims": [c for c in channel_ids if c.startswith("D")],
                }
            )
        return {"files": out}

    # response_url

    def post_to_response_url(self, url_id: str, payload: JSONDict) -> tuple[int, str]:
        """Handle a POST to ``/respond/<url_id>``; returns (HTTP status, text body)."""
        ctx = _Ctx(self.base_url)
        with self._lock:
            info = self._response_urls.get(url_id)
            if info is None:
                return 404, "no_service"
            if self._clock() - info["created"] > RESPONSE_URL_MAX_AGE:
                return 404, "expired_url"
            if info["uses"] >= RESPONSE_URL_MAX_USES:
                return 404, "used_url"
            delete = _truthy(payload.get("delete_original"))
            if not delete and not payload.get("text") and not payload.get("blocks"):
                return 400, "no_text"
            blocks = payload.get("blocks")
            if isinstance(blocks, str):
                try:
                    blocks = json.loads(blocks)
                except ValueError:
                    return 400, "invalid_blocks"
            if blocks is not None and block_problem(blocks, maximum=MAX_MESSAGE_BLOCKS) is not None:
                return 400, "invalid_blocks"
            if blocks is not None and blocks_text_chars(blocks) > MAX_MESSAGE_BLOCK_CHARS:
                return 400, "msg_blocks_too_long"
            info["uses"] += 1
            record = {"url_id": url_id, **copy.deepcopy(payload)}
            self._responses.append(record)
            ctx.emit("response", record)
            self._apply_response(info, payload)
        self._notify(ctx.events)
        return 200, "ok"

    def _apply_response(self, info: JSONDict, payload: JSONDict) -> None:
        channel_id: str | None = info["channel"]
        if channel_id is None or channel_id not in self._channels:
            return
        original = next((m for m in self._messages.get(channel_id, []) if m["ts"] == info["message_ts"]), None)
        blocks = payload.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                blocks = None
        if _truthy(payload.get("delete_original")):
            if original is not None:
                self._messages[channel_id].remove(original)
            return
        if _truthy(payload.get("replace_original")):
            if original is not None:
                original["text"] = str(payload.get("text") or "")
                original["blocks"] = copy.deepcopy(blocks) if isinstance(blocks, list) else []
            return
        if payload.get("response_type") == "in_channel":
            self._store_message(
                channel_id,
                str(payload.get("text") or ""),
                blocks if isinstance(blocks, list) else [],
                None,
                _opt_str(payload, "thread_ts"),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                ctx=_Ctx(self.base_url),  # silent: the "response" event already reports it
            )


# ---------------------------------------------------------------------------------------------
# HTTP layer


class _BadBody(Exception):
    pass


async def _read_params(request: Request) -> JSONDict:
    params: JSONDict = dict(request.query_params.items())
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            raise _BadBody("invalid_json") from None
        if not isinstance(parsed, dict):
            raise _BadBody("invalid_json")
        params.update(parsed)
    elif mime == "multipart/form-data":
        for name, filename, data in _parse_multipart(body, content_type):
            if name is None:
                continue
            params[name] = data if filename is not None else data.decode("utf-8", errors="replace")
    else:
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _BadBody("invalid_form_data") from None
        params.update(pairs)
    return params


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def create_app(workspace: SlackWorkspace) -> Starlette:
    """The ASGI app serving ``workspace``: /api/<method>, /upload/<file_id>, /files/<file_id>, /respond/<id>,
    and the Socket Mode WebSocket /socket/<id>."""

    async def socket_mode(websocket: WebSocket) -> None:
        conn = workspace._socket_open(websocket.path_params["ticket"], asyncio.get_running_loop())
        if conn is None:
            await websocket.close(code=4001)  # unknown or used URL: the handshake is refused
            return
        await websocket.accept()
        try:
            await websocket.send_json({
                "type": "hello", "num_connections": len(workspace.open_sockets()),
                "debug_info": {"host": "slackstub", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": workspace.app_id},
            })

            async def outgoing() -> None:
                while True:
                    item = await conn.outbox.get()
                    if item is None:
                        return  # returning without a close frame: uvicorn drops the TCP connection
                    if isinstance(item, int):
                        await websocket.close(code=item)
                        return
                    await websocket.send_text(item)

            async def incoming() -> None:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    text = message.get("text")
                    if text is None and message.get("bytes") is not None:
                        text = message["bytes"].decode("utf-8", errors="replace")
                    if text:
                        workspace._socket_received(text)

            tasks = [asyncio.create_task(outgoing()), asyncio.create_task(incoming())]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            workspace._socket_closed(conn.id)

    async def api(request: Request) -> Response:
        method = request.path_params["method"]
        try:
            params = await _read_params(request)
        except _BadBody as exc:
            return JSONResponse({"ok": False, "error": str(exc)})
        base = str(request.base_url).rstrip("/")
        result = workspace.dispatch(method, params, _bearer(request), base_url=base)
        if result.drop:
            # Announce more than is sent: the server closes the connection mid-answer.
            partial = json.dumps(result.body).encode()[:8]
            return Response(partial, status_code=200, media_type="application/json",
                            headers={"content-length": str(len(partial) + 512)})
        return JSONResponse(result.body, status_code=result.status, headers=result.headers)

    async def upload(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        data = body
        if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
            parts = _parse_multipart(body, content_type)
            files = [p for p in parts if p[1] is not None] or [p for p in parts if p[0] in {"file", "content"}]
            if not files:
                return PlainTextResponse("no file part", status_code=400)
            data = files[0][2]
        if not workspace.receive_upload(file_id, data):
            return PlainTextResponse("file_not_found", status_code=404)
        return PlainTextResponse(f"OK - {len(data)}")

    async def download(request: Request) -> Response:
        data = workspace.file_bytes(request.path_params["file_id"])
        if data is None:
            return PlainTextResponse("file_not_found", status_code=404)
        return Response(data, media_type="application/octet-stream")

    async def respond(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if content_type == "application/x-www-form-urlencoded":
                form = dict(urllib.parse.parse_qsl(body.decode("utf-8")))
                payload = json.loads(form.get("payload", "{}"))
            else:
                payload = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict):
            return PlainTextResponse("invalid_payload", status_code=400)
        status, text = workspace.post_to_response_url(request.path_params["url_id"], payload)
        return PlainTextResponse(text, status_code=status)

    return Starlette(
        routes=[
            Route("/api/{method}", api, methods=["GET", "POST"]),
            Route("/upload/{file_id}", upload, methods=["POST", "PUT"]),
            Route("/files/{file_id}", download, methods=["GET"]),
            Route("/respond/{url_id}", respond, methods=["POST"]),
            WebSocketRoute("/socket/{ticket}", socket_mode),
        ]
    )
