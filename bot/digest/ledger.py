"""Which lessons each enrolment has completed, and when first: kept in Redis for the digest.

Why: a course is completed when every one of its lessons is, and a completed-lesson record
says nothing about the member's other lessons. Reading each active member's history from
the platform every morning would cost one request per member. Instead the ledger is built
once from every completion record (a page at a time, so memory stays flat), and then kept
current by folding in the completions each digest reads anyway (`from_…_CreatedOn`).

`synced_until` is the guarantee: every completion created before it is in the ledger. A
digest reads completions from a moment no later than that, so nothing falls in a gap. If
no digest has run for `MAX_GAP` the ledger is rebuilt rather than trusted.

A completion deleted on the platform after it was folded in stays in the ledger until the
next rebuild (deletions leave no trace a date-range read can see).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from redis.exceptions import LockError

from bot.core.models import CompletedLesson
from bot.core.store import Redis
from bot.digest import keys
from bot.platforms.base import CoursePlatform

log = logging.getLogger(__name__)

MAX_GAP = timedelta(days=30)
SKEW = timedelta(minutes=5)  # the platform's clock and ours may differ a little; re-read that much
_CHUNK = 500

# Merge "lesson:epoch,..." into each hash field, keeping the earliest time per lesson. Atomic,
# and the same result in any order, so two processes folding the same pages cannot lose a lesson.
_MERGE = """
for i = 1, #ARGV, 2 do
  local field, add = ARGV[i], ARGV[i + 1]
  local first, order = {}, {}
  for _, text in ipairs({redis.call('HGET', KEYS[1], field) or '', add}) do
    for lesson, at in string.gmatch(text, '([^:,]+):(%d+)') do
      local t = tonumber(at)
      if first[lesson] == nil then
        table.insert(order, lesson)
        first[lesson] = t
      elseif t < first[lesson] then
        first[lesson] = t
      end
    end
  end
  local parts = {}
  for _, lesson in ipairs(order) do
    table.insert(parts, lesson .. ':' .. string.format('%d', first[lesson]))
  end
  redis.call('HSET', KEYS[1], field, table.concat(parts, ','))
end
return #ARGV / 2
"""

_ADVANCE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'synced_until') or '0')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'synced_until', ARGV[1])
end
return 1
"""

Progress = dict[str, int]  # lesson id -> epoch seconds of its first completion


def parse(text: str) -> Progress:
    progress: Progress = {}
    for part in text.split(","):
        lesson, _, at = part.partition(":")
        if lesson and at.isdigit():
            progress[lesson] = int(at)
    return progress


class ProgressLedger:
    def __init__(self, redis: Redis, platform: CoursePlatform) -> None:
        self.redis = redis
        self.platform = platform
        self._merge = redis.register_script(_MERGE)
        self._advance = redis.register_script(_ADVANCE)

    async def synced_until(self, now: datetime) -> datetime | None:
        """Until when the ledger is complete, or None when it must be (re)built first."""
        raw = await self.redis.hget(keys.DIGEST_LEDGER_META(), "synced_until")
        if not raw:
            return None
        synced = datetime.fromtimestamp(float(raw), UTC)
        return synced if now - synced <= MAX_GAP else None

    async def ensure(self, now: datetime) -> datetime:
        """The moment from which completions must be read to keep the ledger whole; builds it if needed."""
        synced = await self.synced_until(now)
        return synced if synced is not None else await self.rebuild(now)

    async def rebuild(self, now: datetime) -> datetime:
        """Read every completion once (one process at a time; others wait and reuse its work)."""
        lock = self.redis.lock(keys.DIGEST_LEDGER_LOCK(), timeout=keys.DIGEST_LEDGER_LOCK.ttl,
                               blocking_timeout=keys.DIGEST_LEDGER_LOCK.ttl)
        if not await lock.acquire():
            raise TimeoutError("another process has been building the digest's progress ledger for too long")
        try:
            synced = await self.synced_until(now)
            if synced is not None:
                return synced
            started = datetime.now(UTC) - SKEW
            log.info("digest: building the progress ledger from every completed lesson (once)")
            await self.redis.unlink(keys.DIGEST_LEDGER(), keys.DIGEST_LEDGER_META())
            total = 0
            async for page in self.platform.completed_lesson_pages():
                await self.fold(page)
                total += len(page)
            await self.redis.hset(keys.DIGEST_LEDGER_META(), mapping={
                "synced_until": str(started.timestamp()), "built_at": str(datetime.now(UTC).timestamp()),
                "completions": str(total),
            })
            log.info("digest: progress ledger built from %d completed lessons", total)
            return started
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    async def fold(self, completions: Iterable[CompletedLesson]) -> None:
        grouped: dict[str, list[str]] = defaultdict(list)
        for done in completions:
            at = int(done.created_on.timestamp()) if done.created_on else 0
            grouped[done.enrolment_id].append(f"{done.lesson_id}:{at}")
        items = list(grouped.items())
        for start in range(0, len(items), _CHUNK):
            args: list[str] = []
            for enrolment_id, parts in items[start:start + _CHUNK]:
                args += [enrolment_id, ",".join(parts)]
            await self._merge(keys=[keys.DIGEST_LEDGER()], args=args)

    async def advance(self, until: datetime) -> None:
        """Record that every completion created before `until` has been folded in."""
        await self._advance(keys=[keys.DIGEST_LEDGER_META()], args=[str(until.timestamp())])

    async def progress(self, enrolment_ids: Iterable[str]) -> dict[str, Progress]:
        ids = list(dict.fromkeys(enrolment_ids))
        found: dict[str, Progress] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for enrolment_id, text in zip(chunk, await self.redis.hmget(keys.DIGEST_LEDGER(), chunk), strict=True):
                if text:
                    found[enrolment_id] = parse(str(text))
        return found
