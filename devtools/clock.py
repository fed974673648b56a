"""Clocks for tests and benches (the bot's own is bot.core.clock.SYSTEM_CLOCK)."""

from __future__ import annotations

import asyncio
import time


class FastClock:
    """Intervals pass `factor` times faster: `sleep(3)` waits 3/factor real seconds, and
    `monotonic()` advances `factor` seconds per real second.

    `now()` stays real wall-clock time: what it is compared with runs in real time (the
    windows `limits` keeps for budgets, Redis TTLs, the timestamps a platform records). So a
    runtime on this clock updates progress, renews locks and leases and beats its heartbeats
    sooner, while it still never writes faster than its budget.
    """

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.factor)
