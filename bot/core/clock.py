"""The one clock the bot's schedulers read: budgets, the bulk runner, job and lease heartbeats.

Production uses `SYSTEM_CLOCK` (time.time, time.monotonic, asyncio.sleep). Tests hand a
runtime another clock (devtools.clock) so that intervals which only pace the bot's own work
(a progress message every 3 s, a lease renewed every 30 s) pass faster, while whatever must
run in real time (a platform's rate limit, a Redis TTL) keeps it.

`now()` is wall-clock time. Budgets compare it with the windows that `limits` keeps, and
`limits` reads `time.time()` itself (MemoryStorage, and RedisStorage, which sends the
client's timestamps to its Lua scripts), so a clock given to a `Budget` must agree with
`time.time()` on `now()`; only its waiting may be shortened.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (time.time)."""

    def monotonic(self) -> float:
        """Seconds of a clock that never goes back, for intervals (time.monotonic)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
