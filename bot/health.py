"""What `GET /healthz` reports, and the worker heartbeat it reads.

Redis is asked on every probe (one PING): it is the only component whose loss makes `serve`
useless, so it alone decides the status code (200 or 503). Slack (`auth.test`) and the course
platform (one cheap authenticated read) are checked at most once per CHECK_SECONDS, in the
background: a probe never waits for them (except briefly for the first result), and probes
never cost the platform more than one request a minute per process, however often they come.

Workers write a heartbeat into Redis (`keys.WORKERS`) every WORKER_BEAT_SECONDS; the probe
counts those seen within WORKER_SEEN_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.core import keys, metrics
from bot.core.store import Redis
from bot.platforms.base import PlatformError
from bot.slack.client import error_code

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0  # how long a Slack or platform result is reused
CHECK_TIMEOUT = 15.0  # a check still running after this counts as failed
FIRST_WAIT = 2.0  # how long the first probe waits for a first result before saying "unknown"
REDIS_TIMEOUT = 2.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat(redis: Redis, member: str, *, now: float | None = None) -> None:
    """Record that `member` (a worker) is alive now, and forget workers silent for too long."""
    now = time.time() if now is None else now
    key = keys.WORKERS()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {member: now})
        pipe.zremrangebyscore(key, "-inf", now - keys.WORKER_SEEN_SECONDS)
        pipe.expire(key, keys.WORKERS.ttl or keys.WORKER_SEEN_SECONDS)
        await pipe.execute()


async def leave(redis: Redis, member: str) -> None:
    """A worker stopping cleanly says so, rather than being counted until its beat expires."""
    await redis.zrem(keys.WORKERS(), member)


async def workers_seen(redis: Redis, *, now: float | None = None) -> list[float]:
    """When each live worker last beat (unix times), newest first."""
    now = time.time() if now is None else now
    seen = await redis.zrevrangebyscore(keys.WORKERS(), "+inf", now - keys.WORKER_SEEN_SECONDS, withscores=True)
    return [float(entry[1]) for entry in seen]


class CachedCheck:
    """The last result of a slow check, refreshed in the background at most every `ttl` seconds.

    `check` returns nothing when all is well and raises when not; the exception becomes `detail`.
    """

    def __init__(self, check: Callable[[], Awaitable[None]], describe: Callable[[Exception], str], *,
                 ttl: float = CHECK_SECONDS, timeout: float = CHECK_TIMEOUT, first_wait: float = FIRST_WAIT) -> None:
        self._check, self._describe = check, describe
        self.ttl, self.timeout, self.first_wait = ttl, timeout, first_wait
        self.status = "unknown"
        self.detail = ""
        self.checked_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def state(self) -> dict[str, Any]:
        now = time.monotonic()
        stale = self.checked_at is None or now - self.checked_at >= self.ttl
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._refresh(), name="healthz-check")
        if self.checked_at is None and self._task is not None:
            await asyncio.wait({self._task}, timeout=self.first_wait)
        state: dict[str, Any] = {"status": self.status}
        if self.detail:
            state["detail"] = self.detail
        if self.checked_at is not None:
            state["checked_seconds_ago"] = round(time.monotonic() - self.checked_at)
        return state

    async def _refresh(self) -> None:
        try:
            await asyncio.wait_for(self._check(), timeout=self.timeout)
        except TimeoutError:
            self.status, self.detail = "error", f"no answer within {self.timeout:g} s"
        except Exception as exc:
            self.status, self.detail = "error", self._describe(exc)
        else:
            self.status, self.detail = "ok", ""
        self.checked_at = time.monotonic()


def _slack_problem(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"auth.test: {error_code(exc)}"
    return f"Slack unreachable: {type(exc).__name__}"


def _platform_problem(exc: Exception) -> str:
    return exc.message if isinstance(exc, PlatformError) else f"{type(exc).__name__}"


class Health:
    """The `/healthz` report of one `serve` process."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.slack = CachedCheck(self._check_slack, _slack_problem)
        self.platform = CachedCheck(self._check_platform, _platform_problem)

    async def _check_slack(self) -> None:
        await self.rt.slack.auth_test()

    async def _check_platform(self) -> None:
        await self.rt.platform.check_access()

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body): 503 only when Redis does not answer."""
        redis_state: dict[str, Any] = {"status": "ok"}
        try:
            await asyncio.wait_for(self.rt.redis.ping(), timeout=REDIS_TIMEOUT)
        except Exception as exc:
            redis_state = {"status": "error", "detail": type(exc).__name__}
        redis_ok = redis_state["status"] == "ok"
        slack_state, platform_state = await asyncio.gather(self.slack.state(), self.platform.state())
        body = {
            "ok": redis_ok,
            "store": "embedded" if self.rt.settings.embedded_store else "redis",
            "platform": self.rt.platform.name,
            "checks": {
                "redis": redis_state,
                "slack": slack_state,
                "platform": platform_state,
                "worker": await self._worker(redis_ok),
            },
        }
        return (200 if redis_ok else 503), body

    async def _worker(self, redis_ok: bool) -> dict[str, Any]:
        if self.rt.settings.embedded_store:
            return {"status": "in-process"}  # this process runs the periodic tasks and the jobs itself
        if not redis_ok:
            return {"status": "unknown"}
        try:
            seen = await workers_seen(self.rt.redis)
        except Exception as exc:
            return {"status": "unknown", "detail": type(exc).__name__}
        if not seen:
            return {"status": "missing", "detail": f"no worker heartbeat in the last {keys.WORKER_SEEN_SECONDS} s: "
                                                   "start `coursebot worker`"}
        return {"status": "ok", "workers": len(seen), "last_seen_seconds_ago": round(time.time() - seen[0])}


async def read_gauges(rt: Runtime) -> None:
    """Set the gauges read from Redis (queue depth, workers seen) just before a scrape."""
    try:
        metrics.QUEUE_DEPTH.set(await rt.jobs.depth())
        metrics.WORKERS_SEEN.set(0 if rt.settings.embedded_store else len(await workers_seen(rt.redis)))
    except Exception as exc:  # Redis away: the scrape still answers, with the last values
        log.warning("metrics: could not read the queue from Redis: %s", type(exc).__name__)
