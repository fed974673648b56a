"""Background work: queued jobs and periodic tasks, declared once and run by `coursebot worker`.

Queued jobs (bulk invites, bulk completions) go through SAQ, a maintained asyncio job
queue on Redis: several workers share it, a job whose worker died is picked up again
(its own per-member progress in Redis makes the retry safe). With the embedded store
there is no second process to hand work to, so jobs run as tasks of the current process.

Which jobs and periodic tasks exist is one explicit table, `bot.background`. Periodic tasks
(approval sync, digest check) run in every worker on a timer; each one
guards itself with a Redis lock or a once-per-day key, so extra workers never double them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.core import metrics

if TYPE_CHECKING:
    from bot.core.config import Settings
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

JobRunner = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Runs the job named `name` with its keyword arguments (the worker's table, bot.background)."""


@dataclass(frozen=True)
class Periodic:
    name: str
    interval: Callable[[Settings], float]
    run: Callable[[Runtime], Awaitable[None]]


class JobQueue(Protocol):
    async def enqueue(self, name: str, *, key: str, **kwargs: Any) -> None:
        """Queue `name` once per `key`: enqueueing a key that is still queued or running does nothing."""

    async def depth(self) -> int:
        """Jobs waiting to be taken by a worker."""

    async def aclose(self) -> None: ...


@contextlib.contextmanager
def counted_job(kind: str) -> Iterator[None]:
    """Count one run of a queued job in coursebot_jobs_total: ok, error, or interrupted (cancelled)."""
    try:
        yield
    except asyncio.CancelledError:
        metrics.observe_job(kind, "interrupted")
        raise
    except Exception:
        metrics.observe_job(kind, "error")
        raise
    metrics.observe_job(kind, "ok")


@dataclass(frozen=True)
class JobTimings:
    """How a running job shows it is alive, and how soon a silent one is taken over.

    SAQ marks a job "stuck" once its `touched` time is older than `heartbeat` seconds, and a
    worker's sweep (every `sweep_seconds`, at most one sweep per period across workers) puts a
    stuck job back on the queue. SAQ itself never touches a running job, so the worker touches it
    every `beat_every` seconds while it runs (bot/worker.py): a long job stays put, and one whose
    worker was killed is picked up again within about heartbeat + sweep_seconds + abort_wait +
    retry_delay (a sweep first asks the job's worker to abort it, and waits that long for an
    answer a dead worker never gives). A job that must never run twice at once also holds its own
    Redis lock for `lock_seconds`, renewed every `beat_every` (bulk jobs do), since a stalled
    worker can be swept while alive. Everything follows COURSEBOT_JOB_HEARTBEAT_SECONDS: with the
    default 10 that is 3 s beats, a sweep every 5 s, 5 s abort wait, 2 s retry delay, a 15 s lock.
    """

    heartbeat: int = 10

    @classmethod
    def of(cls, settings: Settings) -> JobTimings:
        return cls(heartbeat=settings.coursebot_job_heartbeat_seconds)

    @property
    def beat_every(self) -> float:
        return self.heartbeat * 0.3

    @property
    def sweep_seconds(self) -> int:
        return max(1, self.heartbeat // 2)  # whole seconds: SAQ uses it as a Redis EX

    @property
    def abort_wait(self) -> float:
        return self.heartbeat * 0.5

    @property
    def retry_delay(self) -> float:
        """Before a job runs again after it failed or was swept (doubling on each retry, up to 30 s)."""
        return self.heartbeat * 0.2

    @property
    def lock_seconds(self) -> float:
        return self.heartbeat * 1.5


class SaqJobQueue:
    def __init__(self, redis_url: str, timings: JobTimings | None = None, **redis_options: Any) -> None:
        import redis.asyncio as aioredis
        from saq.queue.redis import RedisQueue

        self.timings = timings or JobTimings()
        abort_wait = self.timings.abort_wait

        class Queue(RedisQueue):
            async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
                return await super().sweep(lock, abort_wait)

        # Not RedisQueue.from_url: it passes no options to the client (REDIS_TLS_VERIFY needs them).
        self.queue = Queue(aioredis.from_url(redis_url, **redis_options), name="coursebot")

    async def enqueue(self, name: str, *, key: str, **kwargs: Any) -> None:
        await self.queue.enqueue(name, key=key, timeout=0, retries=1000, heartbeat=self.timings.heartbeat,
                                 retry_delay=self.timings.retry_delay, retry_backoff=30, **kwargs)

    async def depth(self) -> int:
        return int(await self.queue.count("queued"))

    async def aclose(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        with contextlib.suppress(RedisConnectionError, OSError):  # stopping must not fail because Redis is away
            await self.queue.disconnect()


class InProcessJobQueue:
    """For the embedded store: run the job as a task here, once per key at a time."""

    def __init__(self) -> None:
        self.runner: JobRunner | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def enqueue(self, name: str, *, key: str, **kwargs: Any) -> None:
        if key in self.tasks and not self.tasks[key].done():
            return
        assert self.runner is not None, "the runtime binds its in-process queue when it is created"
        self.tasks[key] = asyncio.create_task(self._run(name, key, kwargs), name=f"job:{key}")

    async def _run(self, name: str, key: str, kwargs: dict[str, Any]) -> None:
        assert self.runner is not None
        try:
            with counted_job(name):
                await self.runner(name, kwargs)
        except Exception:
            log.exception("job %s (%s) failed", name, key)

    async def depth(self) -> int:
        return 0  # a job starts as soon as it is queued

    async def aclose(self) -> None:
        for task in self.tasks.values():
            task.cancel()


async def run_periodic(rt: Runtime, task: Periodic, stop: asyncio.Event) -> None:
    """Run `task` now and then every interval until `stop` is set; a failure is logged, not fatal."""
    while not stop.is_set():
        try:
            await task.run(rt)
        except Exception:
            metrics.observe_periodic(task.name, "error")
            log.exception("periodic task %s failed; it runs again at the next interval", task.name)
        else:
            metrics.observe_periodic(task.name, "ok")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=task.interval(rt.settings))
