"""Every message and update the bot sends into a channel: paced as Slack asks, and safe to retry.

**Pacing, shared by every process.** Slack takes about one `chat.postMessage` a second per
channel after a short burst; past it, it answers 429 `ratelimited`, or worse says `ok` without
promising the message is stored or shown. So each post first takes a unit of its channel's
budget: POST_BURST messages at once, then one a second (a `limits` moving window in Redis,
bot.core.pacing, so `serve` and every worker share it). `chat.update` is Tier 3, about 50 a
minute per workspace: updates take a unit of the workspace's budget and one of a per-channel
budget (UPDATE_BURST at once, then two a second), so a burst of card updates (Approve all, many
clicks) does not flood one channel. A 429 all the same is waited out (`Retry-After`, set as a
hold in Redis that every process respects) and the message is sent again: Slack said it did
nothing. Nothing is dropped silently: what cannot be sent raises.

**Pages.** A message is posted as `Message.pages()`: the first page where it was asked, the rest
in its thread (channel messages) or below it (direct messages), each paced like any post.

**Safe to retry.** slack_sdk's blind re-sends of `chat.postMessage` are off (bot.slack.retries).
When a post's outcome is unknown (a reset connection, a timeout, a 5xx, `internal_error`), the
Poster looks in the channel for a message carrying the metadata it sent (every post carries
some: the caller's, or a random post id) and adopts it; only if none is there does it post
again. Direct messages cannot be looked at (the app has no `im:history`): there a message
whose answer was lost is sent again, since one that arrives twice beats one that never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientConnectorError, ClientError
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import Storage
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core import keys
from bot.core.pacing import Budget
from bot.core.store import Redis
from bot.render import Message, Where

log = logging.getLogger(__name__)

POST_BURST = 4  # messages into one channel at once; then one a second (Slack: 1/s, short bursts)
UPDATES_PER_MINUTE = 50  # chat.update is Tier 3: 50+ a minute per workspace
UPDATE_BURST = 10  # updates of messages in one channel at once; then two a second (an edit notifies nobody)
POST_EVENT = "coursebot_post"  # the metadata of a post whose caller gave none: a random post id
MAX_SENDS = 3  # attempts at one post whose outcome stays unknown
MAX_RATELIMITED = 10  # 429 answers waited out for one call before its caller is told
LOOK_BACK = 120.0  # seconds before the first attempt that the channel is searched from (clock skew)
HOLD_MAX = keys.SLACK_HOLD.ttl or 300
# Slack errors after which the call may have been carried out ("It's possible some aspect of
# the operation succeeded before the error was raised").
UNKNOWN_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable"})
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def per_channel(burst: int = POST_BURST, per_second: int = 1) -> RateLimitItem:
    """`burst` at once, then at most `per_second` on average: a moving window of `burst` messages per
    ceil(burst/per_second) s. `limits` counts windows in whole seconds, so past `burst` a second the
    window is one second holding `per_second` messages (a burst that large)."""
    window = max(1, math.ceil(burst / per_second))
    return RateLimitItemPerSecond(max(burst, per_second) if window == 1 else burst, window)


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str
    adopted: bool = False  # found in the channel after an unknown outcome, rather than posted again


@dataclass
class _Waiting:
    """An update waiting for its turn; later updates of the same message replace its content."""

    kwargs: dict[str, Any]
    sent: asyncio.Future[AsyncSlackResponse]


class PostUnknown(Exception):
    """Slack may or may not have posted the message, and the channel could not be read to tell."""


class _CannotCheck(Exception):
    pass


def slack_error(exc: BaseException) -> str:
    """Slack's error code, `http_<status>`, or the exception's type: for logs."""
    if isinstance(exc, SlackApiError):
        data = exc.response.data
        error = data.get("error") if isinstance(data, dict) else None
        return str(error or f"http_{exc.response.status_code}")
    return type(exc).__name__


def outcome_unknown(exc: BaseException) -> bool:
    """Did this failure leave open whether Slack carried the call out?"""
    if isinstance(exc, SlackApiError):
        return exc.response.status_code >= 500 or slack_error(exc) in UNKNOWN_ERRORS
    if isinstance(exc, ClientConnectorError):
        return False  # the connection never opened
    return isinstance(exc, ClientError | TimeoutError)


def retry_after(exc: SlackApiError) -> float:
    raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return min(float(HOLD_MAX), max(1.0, float(raw)))
    except (TypeError, ValueError):
        return 1.0


def _same_metadata(found: Any, sent: dict[str, Any]) -> bool:
    if not isinstance(found, dict) or found.get("event_type") != sent.get("event_type"):
        return False
    return json.dumps(found.get("event_payload") or {}, sort_keys=True, default=str) == \
        json.dumps(sent.get("event_payload") or {}, sort_keys=True, default=str)


class Poster:
    def __init__(self, slack: AsyncWebClient, redis: Redis, storage: Storage, *, burst: int = POST_BURST,
                 posts_per_second: int = 1, updates_per_minute: int = UPDATES_PER_MINUTE) -> None:
        """`posts_per_second` per channel is Slack's 1; a stand-in Slack that takes more (the tests'
        and the shell's, see SLACK_POSTS_PER_SECOND) may raise it, and updates follow (twice that)."""
        self.slack = slack
        self.redis = redis
        self.storage = storage
        self.pace = {"post": per_channel(burst, posts_per_second),
                     "update": per_channel(UPDATE_BURST, per_second=2 * posts_per_second)}
        self.workspace_updates = Budget(storage, "slack:update", RateLimitItemPerMinute(updates_per_minute))
        self._budgets: dict[str, Budget] = {}
        self._dm: dict[str, str] = {}
        self._updates: dict[tuple[str, str], _Waiting] = {}

    # ---- sending ----------------------------------------------------------------------

    async def post(self, channel: str, message: Message, *, metadata: dict[str, Any] | None = None,
                   thread_ts: str | None = None, where: Where = "thread", **options: Any) -> Posted:
        """Post `message` into `channel` (a user id: their direct messages), each page once, at the
        channel's pace. Its first page carries `metadata` and `options`; the pages that follow
        (`Message.pages`) go into the first one's thread (`where="thread"`) or below it ("below").

        Raises SlackApiError when Slack refused the first page (nothing was posted), PostUnknown
        when Slack may have posted it and the channel could not be read to tell. A later page that
        fails is logged: the first says how many more follow."""
        pages = message.pages(where)
        first = await self.post_page(channel, pages[0], metadata=metadata, thread_ts=thread_ts, **options)
        if len(pages) > 1:
            await self.post_follow_ups(first.channel, thread_ts or (first.ts if where == "thread" else None),
                                       pages[1:])
        return first

    async def post_follow_ups(self, channel: str, thread_ts: str | None, pages: list[dict[str, Any]]) -> int:
        """`pages` one after the other (in the thread of `thread_ts`, if given); how many Slack took."""
        posted = 0
        for page in pages:
            try:
                await self.post_page(channel, page, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False)
                posted += 1
            except (SlackApiError, PostUnknown) as exc:
                log.warning("could not post page %d of %d into %s (%s)", posted + 1, len(pages), channel,
                            slack_error(exc))
        return posted

    async def post_page(self, channel: str, page: dict[str, Any], *, metadata: dict[str, Any] | None = None,
                        thread_ts: str | None = None, **options: Any) -> Posted:
        """One chat.postMessage (`page`: text and blocks from `Message.pages`), paced, never posted twice."""
        channel = await self.channel_of(channel)
        metadata = metadata or {"event_type": POST_EVENT, "event_payload": {"post": secrets.token_hex(8)}}
        since = time.time() - LOOK_BACK
        last: BaseException | None = None
        for _ in range(MAX_SENDS):
            try:
                response = await self._paced("post", channel, lambda: self.slack.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, metadata=metadata, **page, **options))
                return Posted(str(response["channel"]), str(response["ts"]))
            except Exception as exc:
                if not outcome_unknown(exc):
                    raise
                last = exc
            log.warning("chat.postMessage to %s: no clear answer (%s); looking for the message before posting "
                        "again", channel, slack_error(last))
            try:
                found = await self._find(channel, metadata, thread_ts, since)
            except _CannotCheck as cannot:
                if not channel.startswith("D"):
                    raise PostUnknown(f"could not read {channel} to see whether the post arrived ({cannot})") \
                        from last
                log.info("direct message %s: cannot look (%s); sending again", channel, cannot)
                continue
            if found is not None:
                log.info("chat.postMessage to %s: the message had arrived (ts %s); not posted again", channel, found)
                return Posted(channel, found, adopted=True)
        raise PostUnknown(f"chat.postMessage to {channel}: no clear answer after {MAX_SENDS} tries") from last

    async def update(self, channel: str, ts: str, message: Message, *,
                     metadata: dict[str, Any] | None = None) -> AsyncSlackResponse:
        """chat.update with the message's first page (`Message.as_kwargs`); see `update_page`."""
        return await self.update_page(channel, ts, message.as_kwargs(), metadata=metadata)

    async def update_page(self, channel: str, ts: str, page: dict[str, Any], *,
                          metadata: dict[str, Any] | None = None) -> AsyncSlackResponse:
        """chat.update at the channel's and the workspace's pace (an update may safely be repeated).

        Updates of one message that wait for their turn together are sent once, with the newest
        content (twenty clicks on one card make one update, not twenty queued behind each other)."""
        kwargs: dict[str, Any] = dict(page)
        if metadata is not None:
            kwargs["metadata"] = metadata
        key = (channel, ts)
        waiting = self._updates.get(key)
        if waiting is not None:  # not sent yet: it will carry this content
            waiting.kwargs = kwargs
            return await asyncio.shield(waiting.sent)
        waiting = self._updates[key] = _Waiting(kwargs, asyncio.get_running_loop().create_future())

        def send() -> Awaitable[AsyncSlackResponse]:
            if self._updates.get(key) is waiting:  # from now on, a newer update waits for its own turn
                del self._updates[key]
            return self.slack.chat_update(channel=channel, ts=ts, **waiting.kwargs)

        try:
            response = await self._paced("update", channel, send)
        except BaseException as exc:
            if self._updates.get(key) is waiting:
                del self._updates[key]
            if isinstance(exc, Exception):
                waiting.sent.set_exception(exc)
                waiting.sent.exception()  # retrieved: the ones sharing it re-raise it themselves
            else:
                waiting.sent.cancel()
            raise
        waiting.sent.set_result(response)
        return response

    async def upload(self, channel: str, **kwargs: Any) -> Any:
        """files_upload_v2 shared into `channel` (a message there too), at the channel's posting pace."""
        channel = await self.channel_of(channel)
        await self._budget("post", channel).acquire()
        return await self.slack.files_upload_v2(channel=channel, **kwargs)

    async def channel_of(self, channel: str) -> str:
        """A user id becomes their direct-message channel, so one person's messages share one pace."""
        if not _USER.match(channel):
            return channel
        if channel not in self._dm:
            opened = await self.slack.conversations_open(users=channel)
            self._dm[channel] = str(opened["channel"]["id"])
        return self._dm[channel]

    # ---- pacing -----------------------------------------------------------------------

    def _budget(self, kind: str, channel: str) -> Budget:
        name = f"slack:{kind}:{channel}"
        budget = self._budgets.get(name)
        if budget is None:
            budget = self._budgets[name] = Budget(self.storage, name, self.pace[kind])
        return budget

    async def _paced(self, kind: str, channel: str,
                     call: Callable[[], Awaitable[AsyncSlackResponse]]) -> AsyncSlackResponse:
        """Wait for the budgets (and any hold after a 429), then call; a 429 is waited out and sent again."""
        hold = keys.SLACK_HOLD(kind, channel if kind == "post" else "*")
        limited = 0
        while True:
            await self._wait(hold)
            await self._budget(kind, channel).acquire()
            if kind == "update":
                await self.workspace_updates.acquire()
            try:
                return await call()
            except SlackApiError as exc:
                if exc.response.status_code != 429 or limited >= MAX_RATELIMITED:
                    raise
                limited += 1
                wait = retry_after(exc)
                log.warning("Slack answered 429 ratelimited to a %s into %s: waiting %.0f s, then sending it again",
                            kind, channel, wait)
                await self.redis.set(hold, "1", px=math.ceil(wait * 1000))

    async def _wait(self, hold: str) -> None:
        remaining = await self.redis.pttl(hold)
        if remaining and remaining > 0:
            await asyncio.sleep(remaining / 1000)

    # ---- finding a message whose answer was lost --------------------------------------

    async def _find(self, channel: str, metadata: dict[str, Any], thread_ts: str | None, since: float) -> str | None:
        """The ts of a message in the channel (or thread) carrying exactly this metadata, if any."""
        try:
            if thread_ts:
                response = await self.slack.conversations_replies(channel=channel, ts=thread_ts, limit=200,
                                                                  oldest=f"{since:.6f}", include_all_metadata=True)
            else:
                response = await self.slack.conversations_history(channel=channel, limit=200, oldest=f"{since:.6f}",
                                                                  include_all_metadata=True)
        except (SlackApiError, ClientError, TimeoutError) as exc:
            raise _CannotCheck(slack_error(exc)) from exc
        for message in response.get("messages") or []:
            if _same_metadata(message.get("metadata"), metadata) and message.get("ts"):
                return str(message["ts"])
        return None
