"""The Redis connection: a real server when REDIS_URL is set, else an embedded one.

The embedded store is fakeredis (a maintained, full implementation of the Redis
protocol in-process, with Lua), so every code path - locks, scripts, the job queue -
is the same in `coursebot shell` as in production. It is per process: state is neither
shared between processes nor kept across restarts. It is imported only when used: with
REDIS_URL set, a process never loads it (nor numpy, which it pulls in: a third of a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bot.core.config import Settings

if TYPE_CHECKING:
    import fakeredis

Redis = aioredis.Redis

_EMBEDDED_SERVER: fakeredis.FakeServer | None = None


def connect(settings: Settings) -> Redis:
    if settings.redis_url:
        return aioredis.Redis.from_url(settings.redis_url, decode_responses=True, **settings.redis_options())
    return embedded()


def embedded() -> Redis:
    """One shared in-process server, so every client in this process sees the same data."""
    import fakeredis

    global _EMBEDDED_SERVER
    if _EMBEDDED_SERVER is None:
        _EMBEDDED_SERVER = fakeredis.FakeServer()
    client: Redis = fakeredis.FakeAsyncRedis(server=_EMBEDDED_SERVER, decode_responses=True)
    return client
