"""`coursebot worker`: runs queued jobs (SAQ) and the periodic tasks (approval sync, digest)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from bot import health
from bot.background import JOBS, PERIODIC
from bot.core import keys
from bot.core.clock import Clock
from bot.core.config import Settings
from bot.core.jobs import JobTimings, SaqJobQueue, counted_job, run_periodic
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def start_periodic(rt: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(run_periodic(rt, task, stop), name=f"periodic:{task.name}")
            for task in PERIODIC]


async def _heartbeat(job: Any, clock: Clock, every: float) -> None:
    """Keep a running job's `touched` fresh, so SAQ's sweep leaves it alone (see bot.core.jobs.JobTimings)."""
    while True:
        await clock.sleep(every)
        try:
            await job.update()
        except Exception as exc:  # Redis hiccup: the next beat tries again
            log.warning("heartbeat of job %s failed: %s", getattr(job, "key", "?"), type(exc).__name__)


def saq_functions(rt: Runtime, timings: JobTimings) -> list[tuple[str, Any]]:
    def wrap(name: str) -> Any:
        async def run(ctx: dict[str, Any], **kwargs: Any) -> Any:
            job = ctx.get("job")
            beat = asyncio.create_task(_heartbeat(job, rt.clock, timings.beat_every)) if job is not None else None
            try:
                with counted_job(name):
                    return await JOBS[name](rt, kwargs)
            finally:
                if beat is not None:
                    beat.cancel()
                    await asyncio.gather(beat, return_exceptions=True)

        run.__qualname__ = run.__name__ = name
        return run

    return [(name, wrap(name)) for name in JOBS]


def saq_worker(rt: Runtime, *, concurrency: int = 10) -> Any:
    """The SAQ worker for this runtime's queue. It leaves signals to its caller (SIGTERM stops
    `run_worker`, which then stops the worker), so it can also run outside the main thread."""
    from saq import Worker

    assert isinstance(rt.jobs, SaqJobQueue)
    timings = rt.jobs.timings
    timers: Any = {"sweep": timings.sweep_seconds}
    worker = Worker(rt.jobs.queue, functions=saq_functions(rt, timings), concurrency=concurrency, timers=timers)
    worker.SIGNALS = []
    return worker


async def _announce(rt: Runtime, stop: asyncio.Event) -> None:
    """Write this worker's heartbeat every WORKER_BEAT_SECONDS (read by /healthz and /metrics)."""
    member = health.worker_id()
    while not stop.is_set():
        try:
            await health.beat(rt.redis, member)
        except Exception as exc:  # Redis hiccup: the next beat tries again
            log.warning("worker heartbeat not written: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=keys.WORKER_BEAT_SECONDS)
    with contextlib.suppress(Exception):
        await health.leave(rt.redis, member)


async def run_worker(settings: Settings, *, concurrency: int = 10) -> int:
    """Run until SIGTERM/SIGINT (exit code 0), or until the job worker itself fails (1)."""
    rt = Runtime.create(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    periodic = start_periodic(rt, stop)
    announce: asyncio.Task[None] | None = None
    worker_task: asyncio.Task[None] | None = None
    if isinstance(rt.jobs, SaqJobQueue):
        announce = asyncio.create_task(_announce(rt, stop), name="worker-heartbeat")
        worker = saq_worker(rt, concurrency=concurrency)
        worker_task = asyncio.create_task(worker.start())
        log.info("worker started: %d job types, %d periodic tasks", len(JOBS), len(PERIODIC))
    else:
        log.warning("REDIS_URL is not set: this worker runs its periodic tasks only; jobs run inside the process "
                    "that queued them. Set REDIS_URL to share work between processes.")
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([t for t in (stopping, worker_task) if t is not None], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if worker_task is not None and worker_task.done():
        failure = None if worker_task.cancelled() else worker_task.exception()
        log.error("the job worker stopped by itself (%s); stopping so that the process manager restarts it",
                  type(failure).__name__ if failure else "no error")
        code = 1
    log.info("worker stopping")
    stop.set()
    stopping.cancel()
    if worker_task is not None and not worker_task.done():
        await worker.stop()
    for task in periodic:
        task.cancel()
    await asyncio.gather(*periodic, return_exceptions=True)
    if announce is not None:  # it ends by itself once `stop` is set, taking this worker off the list
        with contextlib.suppress(Exception):
            await asyncio.wait_for(announce, timeout=5)
    await rt.aclose()
    return code
