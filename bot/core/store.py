"""The Redis connection: a real server when REDIS_URL is set, else an embedded one.

The embedded store is fakeredis (a maintained, full implementation of the Redis
protocol in-process, with Lua), so every code path - locks, scripts, the job queue -
is the same in `coursebot shell` as in production. It is per process: state is neither
shared between processes nor kept across restarts.
"""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import redis.asyncio as aioredis

from bot.core import keys
from bot.core.config import Settings

Redis = aioredis.Redis

_EMBEDDED_SERVER: fakeredis.FakeServer | None = None


def connect(settings: Settings) -> Redis:
    if settings.redis_url:
        return aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    return embedded()


def embedded() -> Redis:
    """One shared in-process server, so every client in this process sees the same data."""
    global _EMBEDDED_SERVER
    if _EMBEDDED_SERVER is None:
        _EMBEDDED_SERVER = fakeredis.FakeServer()
    client: Redis = fakeredis.FakeAsyncRedis(server=_EMBEDDED_SERVER, decode_responses=True)
    return client


async def audit(redis: Redis, *, actor: str, action: str, target: str, outcome: str, detail: str = "") -> None:
    """Append to the bounded audit log (newest first)."""
    entry = {"at": time.time(), "actor": actor, "action": action, "target": target, "outcome": outcome}
    if detail:
        entry["detail"] = detail
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.AUDIT(), json.dumps(entry))
        pipe.ltrim(keys.AUDIT(), 0, keys.AUDIT_MAX - 1)
        await pipe.execute()


async def audit_entries(redis: Redis, limit: int = 50) -> list[dict[str, Any]]:
    raw = await redis.lrange(keys.AUDIT(), 0, limit - 1)
    return [json.loads(item) for item in raw]
