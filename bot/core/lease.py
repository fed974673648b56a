"""Short claims in Redis that stay alive while their holder works, and die soon after it does.

A claim is `SET key <json> NX PX ttl`; its holder renews it every third of its lifetime while
the work runs, and releases it by compare-and-delete. A holder that is killed stops renewing, so
its claim frees itself within `ttl` seconds instead of blocking everyone for minutes. The value
says who holds it and for what, so a second caller can be told who is busy.
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

from bot.core.store import Redis

log = logging.getLogger(__name__)

DEFAULT_TTL = 15.0

_RENEW = """
local raw = redis.call('GET', KEYS[1])
if raw == false then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if raw == false then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, for what, since when (epoch seconds)."""

    actor: str
    action: str
    at: float


class Lease:
    def __init__(self, redis: Redis, key: str, *, actor: str, action: str, ttl: float = DEFAULT_TTL) -> None:
        self.redis = redis
        self.key = key
        self.actor = actor
        self.action = action
        self.ttl = ttl
        self.token = secrets.token_hex(8)
        self.lost = False

    async def acquire(self) -> bool:
        value = json.dumps({"token": self.token, "actor": self.actor, "action": self.action, "at": time.time()})
        return bool(await self.redis.set(self.key, value, nx=True, px=int(self.ttl * 1000)))

    async def renew(self) -> bool:
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.token, int(self.ttl * 1000)))

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.token)

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        """Renew the claim every third of its lifetime until the block ends; then release it."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.ttl / 3)
                try:
                    if not await self.renew():
                        self.lost = True
                        log.warning("claim %s was lost while its work ran", self.key)
                        return
                except Exception as exc:  # Redis hiccup: the next beat tries again
                    log.warning("could not renew claim %s: %s", self.key, type(exc).__name__)

        task = asyncio.create_task(renew_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):  # it expires by itself if Redis is down
                await self.release()


async def holder(redis: Redis, key: str) -> Holder | None:
    raw = await redis.get(key)
    if not raw:
        return None
    data = json.loads(raw)
    return Holder(str(data.get("actor", "")), str(data.get("action", "")), float(data.get("at", 0)))
