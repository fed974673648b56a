"""Budgets shared by every bot process: how fast the bot may call a platform.

Built on `limits` (moving windows kept in Redis, so two workers together stay under one
budget; in memory for the embedded store). `acquire()` waits for a slot instead of
failing, which is what a background job wants.
"""

from __future__ import annotations

import math
from typing import Any

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bot.core.clock import SYSTEM_CLOCK, Clock


def make_storage(redis_url: str | None, **redis_options: Any) -> Storage:
    if redis_url:
        return RedisStorage(redis_url, implementation="redispy", key_prefix="coursebot:limits", **redis_options)
    return MemoryStorage()


def smooth_per_minute(per_minute: int) -> RateLimitItem:
    """`n`/minute as the smallest window that keeps every 60 s under n without long bursts.

    60/min becomes 1 per second and 600/min 10 per second, so writes are spread out
    rather than sent in one burst that a stricter short-window limit would refuse.
    """
    g = math.gcd(per_minute, 60)
    return RateLimitItemPerSecond(per_minute // g, 60 // g)


def smooth_per_seconds(count: int, seconds: int) -> RateLimitItem:
    g = math.gcd(count, seconds)
    return RateLimitItemPerSecond(count // g, seconds // g)


GUARD_SHARE = 0.03  # of the pace window (30 ms for a 1 s window: the pace is at most 3% under the limit)
GUARD_MAX = 0.25


class BudgetExceeded(Exception):
    def __init__(self, retry_at: float) -> None:
        super().__init__(f"budget exhausted until {retry_at}")
        self.retry_at = retry_at


class Budget:
    """A named budget made of a short window (pace) and optionally a long one (daily).

    The windows are kept by `limits` on the real wall clock; `clock` only decides how long
    `acquire` waits before it asks again (see bot.core.clock: its `now()` must be real time).
    """

    def __init__(
        self, storage: Storage, name: str, pace: RateLimitItem, daily: int | None = None, *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.clock = clock
        # A unit freed at the window's edge is taken a little after it: the platform counts when a
        # request arrives, not when it was paced, and arrivals jitter by some milliseconds. Without
        # this margin a full window here can be one over at the platform (throttled, then retried).
        self.guard = min(GUARD_MAX, GUARD_SHARE * float(pace.get_expiry()))
        self.pace = pace
        self.daily = RateLimitItemPerDay(daily) if daily else None
        self._limiter = MovingWindowRateLimiter(storage)

    async def acquire(self, *, max_wait: float | None = None) -> None:
        """Wait until one unit may be spent, then spend it.

        Raises BudgetExceeded when the daily budget is spent (or waiting would exceed max_wait).
        """
        clock = self.clock
        started = clock.monotonic()
        while True:
            if self.daily is not None and not await self._limiter.test(self.daily, self.name):
                stats = await self._limiter.get_window_stats(self.daily, self.name)
                raise BudgetExceeded(stats.reset_time)
            if await self._limiter.hit(self.pace, self.name):
                # The test above and this hit are not one step: acquirers racing for the day's last
                # units all pass the test, and only the hit (atomic) tells who got one.
                if self.daily is not None and not await self._limiter.hit(self.daily, self.name):
                    stats = await self._limiter.get_window_stats(self.daily, self.name)
                    raise BudgetExceeded(stats.reset_time)
                return
            stats = await self._limiter.get_window_stats(self.pace, self.name)
            delay = max(0.005, min(stats.reset_time - clock.now(), float(self.pace.get_expiry()))) + self.guard
            if max_wait is not None and clock.monotonic() - started + delay > max_wait:
                raise BudgetExceeded(clock.now() + delay)
            await clock.sleep(delay)

    async def remaining_today(self) -> int | None:
        if self.daily is None:
            return None
        stats = await self._limiter.get_window_stats(self.daily, self.name)
        return int(stats.remaining)

    def per_second(self) -> float:
        return self.pace.amount / self.pace.get_expiry()
