"""Posting the daily digest: exactly one message per channel per local day.

Every worker runs `digest_tick` every 30 s. Once the local wall clock in COURSEBOT_TIMEZONE
is at or past COURSEBOT_DIGEST_TIME and today's digest is not recorded, a worker claims the
day with `SET digest:<channel>:<date> claim:<token> NX EX 120` and keeps that lease alive
while it builds and posts. Then:

- posted: the key's value becomes the message ts (kept 3 days), so nobody posts again;
- failed to post: the claim is released (compare-and-delete) and the day is retried after
  a pause, so a day is never lost;
- the worker died mid-way: the lease runs out and another worker claims the day. Because
  its predecessor may have died *after* Slack accepted the message, a marker set just before
  chat.postMessage tells the next claimer to look in the channel for a message carrying
  this day's metadata before posting, so a day is never posted twice either.

A worker that was down at the hour posts when it comes back, the same day; the next
morning, before the hour, it does nothing (yesterday's digest is not sent a day late).
The chart goes in the digest's thread, so the channel gets one message a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from slack_sdk.errors import SlackApiError

from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.models import Enrolment
from bot.core.store import Redis
from bot.digest import keys
from bot.digest import render as render
from bot.digest.chart import render_chart
from bot.digest.service import Digest, DigestService, RuleApproval, day_start, is_due, local_day, utcnow
from bot.render import File, file_title

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

EVENT_TYPE = "coursebot_digest"
LEASE = 120  # seconds a claim lives without a heartbeat
HEARTBEAT = 30
WARM_RETRY = 600  # after a failed ledger build, wait this long before trying again
_warm_failed_at: dict[int, float] = {}

_EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_FINISH = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
           "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0")
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

Status = Literal["sent", "recovered", "already", "busy", "skipped", "failed", "not_configured"]


@dataclass(frozen=True)
class SendResult:
    status: Status
    day: date
    ts: str | None = None
    digest: Digest | None = None
    error: str = ""


class DayClaim:
    """A lease on one channel's day, renewed while held, turned into the ts once posted.

    The lease is a Redis TTL (real time); `clock` paces its renewal.
    """

    def __init__(self, redis: Redis, key: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.redis = redis
        self.key = key
        self.clock = clock
        self.value = "claim:" + secrets.token_hex(8)
        self._extend = redis.register_script(_EXTEND)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.value, nx=True, ex=LEASE))

    async def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours."""
        return bool(await self._extend(keys=[self.key], args=[self.value, LEASE]))

    async def finish(self, result: str) -> bool:
        return bool(await self._finish(keys=[self.key], args=[self.value, result, keys.DIGEST_SENT.ttl or 0]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.value])

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await self.clock.sleep(HEARTBEAT)
                if not await self.renew():
                    log.warning("digest: lost the claim on %s while working", self.key)
                    return

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def service(rt: Runtime) -> DigestService:
    return DigestService(rt.platform, rt.redis, rt.settings, waiting=lambda: waiting_requests(rt),
                         auto_approved=lambda since: rule_approvals(rt, since))


async def rule_approvals(rt: Runtime, since: datetime) -> list[RuleApproval]:
    """What the auto-approve rules approved since the last digest (kept 15 days by bot.approvals.rules)."""
    return [RuleApproval(e.get("member", ""), e.get("course", ""), e.get("rule", ""))
            for e in await rt.rules.approved_since(since.timestamp())]


async def waiting_requests(rt: Runtime) -> list[Enrolment] | None:
    """The approval requests the sync keeps in Redis (no platform read), if the sync is running."""
    approvals = rt.approvals
    if not approvals.available:
        return None
    last = await approvals.store.last_synced()
    if last is None or time.time() - last > 3 * rt.settings.coursebot_sync_seconds:
        return None  # no worker is syncing: the digest reads the platform itself
    return [Enrolment(id=r.enrolment_id, course_id=r.course_id, member_id=r.member_id, member_name=r.member_label,
                      course_title=r.course_title, created_on=r.waiting_since)
            for r in await approvals.waiting()]


async def send_digest(rt: Runtime, *, now: datetime | None = None) -> SendResult:
    """Build and post today's digest unless this channel already has it (or another worker is on it)."""
    now = now or utcnow()
    settings = rt.settings
    day = local_day(now, settings.zone)
    channel = settings.coursebot_digest_channel
    if not channel:
        return SendResult("not_configured", day)
    sent_key = keys.DIGEST_SENT(channel, day.isoformat())
    raw = await rt.redis.get(sent_key)
    if raw is not None:
        current = str(raw)
        busy = current.startswith("claim:")
        return SendResult("busy" if busy else "already", day, ts=None if busy else current)
    claim = DayClaim(rt.redis, sent_key, rt.clock)
    if not await claim.acquire():
        return SendResult("busy", day)
    posting_key = keys.DIGEST_POSTING(channel, day.isoformat())
    try:
        async with claim.heartbeat():
            if await rt.redis.exists(posting_key):
                found = await find_posted(rt, channel, day)
                if found:
                    await _record(rt, claim, channel, day, found, None)
                    log.info("digest: %s for %s was already posted (ts %s); recorded it", channel, day, found)
                    return SendResult("recovered", day, ts=found)
            digest = await service(rt).build(now, channel=channel)
            if digest.empty and settings.coursebot_digest_skip_empty:
                await claim.finish("skipped")
                log.info("digest: nothing new for %s on %s; skipped (COURSEBOT_DIGEST_SKIP_EMPTY)", channel, day)
                return SendResult("skipped", day, digest=digest)
            message = render.digest_message(digest)
            if not await claim.renew():
                return SendResult("busy", day)
            await rt.redis.set(posting_key, claim.value, ex=keys.DIGEST_POSTING.ttl)
            pages = message.pages("thread")
            posted = await rt.poster.post_page(
                channel, pages[0], unfurl_links=False, unfurl_media=False,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"date": day.isoformat()}},
            )
            ts = posted.ts
            await _record(rt, claim, channel, day, ts, digest)
    except Exception as exc:
        await claim.release()
        await rt.redis.set(keys.DIGEST_RETRY(channel, day.isoformat()), "1", ex=keys.DIGEST_RETRY.ttl)
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        hint = " Invite the bot to the channel (/invite @coursebot) and check COURSEBOT_DIGEST_CHANNEL." \
            if error in ("not_in_channel", "channel_not_found", "is_archived") else ""
        log.exception("digest: could not post to %s for %s (%s); will try again in %d s.%s",
                      channel, day, error, keys.DIGEST_RETRY.ttl, hint)
        return SendResult("failed", day, error=str(error))
    log.info("digest: posted to %s for %s (ts %s)", channel, day, ts)
    if len(pages) > 1:  # the lists the digest had to cut, complete, in its thread
        await rt.poster.post_follow_ups(posted.channel, ts, pages[1:])
    for file in message.files:
        await post_file(rt, channel, ts, file)
    if digest.chart_has_data:
        await post_chart(rt, channel, ts, digest)
    return SendResult("sent", day, ts=ts, digest=digest)


async def _record(rt: Runtime, claim: DayClaim, channel: str, day: date, ts: str, digest: Digest | None) -> None:
    if not await claim.finish(ts):
        log.warning("digest: the claim on %s %s ran out before the post was recorded", channel, day)
        await rt.redis.set(claim.key, ts, ex=keys.DIGEST_SENT.ttl)
    if digest is not None:
        last = {"date": day.isoformat(), "as_of": digest.as_of.isoformat(), "ts": ts}
        await rt.redis.set(keys.DIGEST_LAST(channel), json.dumps(last))
    await rt.redis.delete(keys.DIGEST_POSTING(channel, day.isoformat()))


async def find_posted(rt: Runtime, channel: str, day: date) -> str | None:
    """The ts of this day's digest if it is already in the channel (found by its metadata)."""
    oldest = f"{day_start(day, rt.settings.zone).timestamp():.6f}"
    cursor: str | None = None
    try:
        for _ in range(10):
            response = await rt.slack.conversations_history(channel=channel, oldest=oldest, limit=200,
                                                           include_all_metadata=True, cursor=cursor)
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == EVENT_TYPE and payload.get("date") == day.isoformat():
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
    except SlackApiError as exc:
        log.warning("digest: could not read %s to check for an earlier post (%s); posting anyway",
                    channel, exc.response.get("error"))
    return None


async def post_file(rt: Runtime, channel: str, ts: str, file: File) -> None:
    """A file of the digest (its complete lists) into its thread."""
    try:
        await rt.poster.upload(channel, thread_ts=ts, content=file.content, filename=file.filename, title=file.title)
    except SlackApiError as exc:
        log.warning("digest: %s could not be uploaded to %s (%s)", file.filename, channel, exc.response.get("error"))


async def post_chart(rt: Runtime, channel: str, ts: str, digest: Digest) -> None:
    """Upload the 14-day chart into the digest's thread (files.getUploadURLExternal + complete)."""
    days = [d.day for d in digest.chart]
    enrolled = [d.enrolments for d in digest.chart]
    completed = [d.completions for d in digest.chart]
    label = digest.chart_label.capitalize()
    try:
        png = await asyncio.to_thread(render_chart, days, enrolled, completed, completions_label=label)
        await rt.poster.upload(
            channel, thread_ts=ts, content=png,
            filename=file_title(f"coursebot-digest-{digest.day.isoformat()}.png"),
            title=file_title(f"Enrolments and {digest.chart_label}, {days[0]:%d %b} – {days[-1]:%d %b}"),
            alt_txt=file_title(f"Bar chart per day from {days[0]:%d %B} to {days[-1]:%d %B}: {sum(enrolled)} new "
                               f"enrolments and {sum(completed)} {digest.chart_label} in all.", 1000),
        )
    except Exception as exc:  # the digest itself is posted; a missing chart is not worth a second message
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("digest: the chart could not be uploaded to %s (%s)", channel, error)


async def digest_tick(rt: Runtime) -> None:
    """Every 30 s in every worker: post today's digest if it is due and not yet posted."""
    channel = rt.settings.coursebot_digest_channel
    if not channel:
        return
    now = utcnow()
    if not is_due(now, rt.settings):
        await _warm(rt, now)
        return
    day = local_day(now, rt.settings.zone).isoformat()
    if await rt.redis.exists(keys.DIGEST_SENT(channel, day), keys.DIGEST_RETRY(channel, day)):
        return
    await send_digest(rt, now=now)


async def _warm(rt: Runtime, now: datetime) -> None:
    """Before the hour: make sure the progress ledger exists, so the digest itself is quick."""
    failed = _warm_failed_at.get(id(rt))
    if failed is not None and time.monotonic() - failed < WARM_RETRY:
        return
    try:
        await service(rt).warm(now)
    except Exception:
        _warm_failed_at[id(rt)] = time.monotonic()
        log.warning("digest: could not build the progress ledger ahead of time; trying again in %d s",
                    WARM_RETRY, exc_info=True)
    else:
        _warm_failed_at.pop(id(rt), None)


def schedule(rt: Runtime) -> str:
    settings = rt.settings
    return f"every day at {settings.coursebot_digest_time:%H:%M} ({settings.coursebot_timezone})"
