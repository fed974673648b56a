"""Bulk jobs: one step applied to many members, as fast as the platform's budget allows and never faster.

A bulk job is a course, a list of resolved people (bot.bulk.targets) and one *kind* of
step to apply to each of them. Everything else is shared by every kind:

- planning (`BulkService.plan`): the people and an estimate are stored under a job id; above
  CONFIRM_ABOVE people, or when the day's write budget will not do, a manager confirms first;
- the queue: `start` queues the job (`rt.jobs`, SAQ on Redis: any worker may take it);
- running (`BulkRunner`): one runner per job at a time (JOB_LOCK). The step reads the platform
  in bulk once (`prepare`), then for each member not yet in JOB_DONE it checks and, if needed,
  applies. Each outcome is written to JOB_DONE as soon as it is known, and a member is put in
  JOB_INFLIGHT before its write, so a runner killed at any point resumes where it stopped:
  members already recorded are skipped, and only the in-flight ones are looked up again on the
  platform (`check(fresh=True)`) before anything is sent again;
- pacing: writes spend the platform's shared budget (bot.pacing, `rate_budget()`), so every
  process together stays under the limit; when the daily budget is spent the job pauses until
  it frees up, and says so;
- control and progress: a cancel flag in Redis is read between members; a `ProgressSink` gets a
  snapshot at most every PROGRESS_SECONDS and the final `Report` (every person and outcome).

Adding a kind of bulk job (the extension point)
-----------------------------------------------
Subclass `BulkStep` (bot.bulk.step), give it `labels`, and add it to `KINDS` in bot.bulk.kinds::

    class CompleteLesson(BulkStep):
        labels = StepLabels(verb="Complete", doing="Completing", done="completed",
                            already="already completed", target="for")

        async def prepare(self, items):           # bulk reads, once per run (e.g. all completions)
            ...
        async def check(self, item, *, fresh):    # already done? fresh=True: ask the platform now
            ...
        async def apply(self, item):              # do it once; raise PlatformError(reason) if refused
            ...

The step gets the platform, the course and the job's `params` (e.g. `{"lesson_id": "12"}`).
Then `plan = await service.plan(actor, "complete", course_query, targets, params=...)` and
`service.start(...)` (handlers.bulk.run_bulk does both and all the Slack parts) give it the same
queue, pacing, confirmation, progress message, cancel button, resume and report as `invite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel
from redis.exceptions import LockError

from bot.bulk import keys
from bot.bulk.kinds import KINDS, make_step
from bot.bulk.step import BulkStep, StepLabels
from bot.bulk.targets import BulkItem, Outcome, People, Unresolved, resolve_people
from bot.core.audit import audit
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.directory import Directory
from bot.core.errors import UserFacingError
from bot.core.grammar import Ref
from bot.core.jobs import JobQueue, JobTimings
from bot.core.models import Course
from bot.core.pacing import BudgetExceeded
from bot.core.permissions import Permissions
from bot.core.store import Redis
from bot.enrolment.resolve import Resolver
from bot.platforms.base import CoursePlatform, PlatformError

log = logging.getLogger(__name__)

CONFIRM_ABOVE = 50  # more people than this: ask before starting
PROGRESS_SECONDS = 3.0  # the progress message is updated at most this often
CONTROL_SECONDS = 0.5  # how often a runner looks at the cancel flag
# JOB_LOCK lives JobTimings.lock_seconds (15 s by default) and is extended every JobTimings.beat_every (3 s).
MEMBER_CONCURRENCY = 4  # members in flight at once for one-at-a-time steps (the budget sets the pace)
MEMBER_ATTEMPTS = 3  # tries per member within a run when the platform keeps failing

__all__ = [
    "BulkItem", "BulkRunner", "BulkService", "BulkStep", "JobRecord", "JobStatus", "Outcome", "Plan",
    "ProgressSink", "Report", "ReportRow", "Snapshot", "StepLabels", "Unresolved",
]


# ---- the job record ---------------------------------------------------------------------------

class JobStatus(StrEnum):
    PLANNED = "planned"  # waiting for a manager to confirm
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # the platform's daily budget is spent
    DONE = "done"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # the platform refused the whole job (e.g. the course was deleted)

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.STOPPED)


class JobRecord(BaseModel):
    """The JOB hash: one JSON value per field, so each writer changes only its own fields."""

    id: str
    kind: str
    params: dict[str, str] = {}
    platform: str = ""
    course_id: str
    course_title: str
    actor: str
    status: JobStatus = JobStatus.PLANNED
    people: int = 0  # items to do (resolved, de-duplicated)
    unresolved: int = 0
    skipped_bots: int = 0
    already_at_plan: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    confirmed_by: str | None = None
    cancelled_by: str | None = None
    channel: str | None = None  # where the progress message is
    ts: str | None = None
    resume_at: float | None = None  # when paused: the daily budget frees up then
    attempts: int = 0
    stop_reason: str | None = None
    reported: bool = False

    def to_hash(self, *names: str) -> dict[str, str]:
        """The named fields (all set fields when none are named: a claim field such as
        `confirmed_by` must stay absent until HSETNX claims it)."""
        if names:
            data = self.model_dump(mode="json", include=set(names))
        else:
            data = self.model_dump(mode="json", exclude_none=True)
        return {name: json.dumps(value) for name, value in data.items()}

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> JobRecord:
        return cls.model_validate({name: json.loads(value) for name, value in raw.items()})


def _strings(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(name): str(value) for name, value in raw.items()}


async def load_record(redis: Redis, job_id: str) -> JobRecord | None:
    raw = _strings(await redis.hgetall(keys.JOB(job_id)))
    return JobRecord.from_hash(raw) if raw else None


async def save_fields(redis: Redis, record: JobRecord, *names: str) -> None:
    mapping: Mapping[Any, Any] = record.to_hash(*names)
    await redis.hset(keys.JOB(record.id), mapping=mapping)


class StoredPlan(BaseModel):
    """JOB_PLAN: who the job is for."""

    items: list[BulkItem]
    unresolved: list[Unresolved]


async def load_plan(redis: Redis, job_id: str) -> StoredPlan:
    raw = await redis.get(keys.JOB_PLAN(job_id))
    return StoredPlan.model_validate_json(raw) if raw else StoredPlan(items=[], unresolved=[])


def _outcome_json(outcome: Outcome, reason: str = "") -> str:
    return json.dumps({"o": outcome.value, "r": reason, "at": round(time.time(), 3)})


def _read_outcome(raw: str) -> tuple[Outcome, str]:
    data = json.loads(raw)
    return Outcome(data["o"]), str(data.get("r") or "")


# ---- planning ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    record: JobRecord
    labels: StepLabels
    platform: str
    items: list[BulkItem]
    unresolved: list[Unresolved]
    skipped_bots: int
    already: int  # of the items, how many need nothing
    per_second: float | None  # the budget's pace (units/s); None: unpaced
    cost: int  # budget units the job will spend
    remaining_today: int | None  # daily budget left; None: no daily budget
    daily: int | None

    @property
    def to_do(self) -> int:
        return len(self.items) - self.already

    @property
    def estimate_seconds(self) -> float:
        return self.cost / self.per_second if self.per_second else 0.0

    @property
    def over_daily_budget(self) -> bool:
        return self.remaining_today is not None and self.cost > self.remaining_today

    @property
    def needs_confirmation(self) -> bool:
        return len(self.items) + len(self.unresolved) > CONFIRM_ABOVE or self.over_daily_budget

    @property
    def startable(self) -> bool:
        return self.to_do > 0


class BulkService:
    """Plan, start and cancel bulk jobs (the runner is `BulkRunner`)."""

    def __init__(self, platform: CoursePlatform, redis: Redis, directory: Directory, permissions: Permissions,
                 jobs: JobQueue) -> None:
        self.platform = platform
        self.redis = redis
        self.directory = directory
        self.permissions = permissions
        self.jobs = jobs
        self.resolve = Resolver(platform, directory, redis)

    async def people(self, targets: Sequence[Ref]) -> People:
        return await resolve_people(self.platform, self.directory, self.redis, targets)

    async def plan(self, actor: str, kind: str, course_query: str, targets: Sequence[Ref], *,
                   params: dict[str, str] | None = None) -> Plan:
        """Resolve the course and the people, look at what is already done, estimate, and store it all."""
        if not targets:
            raise UserFacingError("Name at least one person: an email, an @user, a #channel or an @user-group.")
        course = await self.resolve.course(course_query)
        people = await self.people(targets)
        step = make_step(kind, self.platform, course, dict(params or {}))
        await step.complete_params(actor, self.directory)
        already = 0
        if people.items:
            await step.prepare(people.items)
            for item in people.items:
                already += await step.check(item, fresh=False)
        budget = self.platform.rate_budget()
        record = JobRecord(
            id=secrets.token_hex(6), kind=kind, params=dict(step.params), platform=self.platform.display_name,
            course_id=course.id, course_title=course.title, actor=actor, people=len(people.items),
            unresolved=len(people.unresolved), skipped_bots=people.skipped_bots, already_at_plan=already,
            created_at=time.time(),
        )
        plan = Plan(
            record=record, labels=step.labels, platform=self.platform.display_name, items=people.items,
            unresolved=people.unresolved, skipped_bots=people.skipped_bots, already=already,
            per_second=budget.per_second() if budget else None,
            cost=step.cost(len(people.items) - already),
            remaining_today=await budget.remaining_today() if budget else None,
            daily=budget.daily.amount if budget and budget.daily else None,
        )
        stored = StoredPlan(items=people.items, unresolved=people.unresolved)
        mapping: Mapping[Any, Any] = record.to_hash()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.JOB(record.id), mapping=mapping)
            pipe.expire(keys.JOB(record.id), keys.JOB.ttl or 0)
            pipe.set(keys.JOB_PLAN(record.id), stored.model_dump_json(), ex=keys.JOB_PLAN.ttl)
            await pipe.execute()
        await audit(self.redis, actor=actor, action=kind, target=f"course {course.id}", outcome="planned",
                    detail=f"job {record.id}: {len(people.items)} people, {len(people.unresolved)} unresolved")
        return plan

    async def record(self, job_id: str) -> JobRecord | None:
        return await load_record(self.redis, job_id)

    async def snapshot(self, job_id: str) -> Snapshot | None:
        """Where a job stands, from Redis alone (for a message drawn outside its runner)."""
        record = await load_record(self.redis, job_id)
        if record is None or record.kind not in KINDS:
            return None
        done = _strings(await self.redis.hgetall(keys.JOB_DONE(job_id)))
        cancelling = await self.redis.exists(keys.JOB_CANCEL(job_id)) > 0
        return Snapshot(record=record, labels=KINDS[record.kind].labels,
                        counts=Counter(_read_outcome(raw)[0] for raw in done.values()), total=record.people,
                        processed=len(done), rate=None, eta_seconds=None,
                        cancelling=cancelling and not record.status.finished)

    async def claim(self, actor: str, job_id: str) -> JobRecord:
        """The first confirmation wins (HSETNX); anyone else learns what became of the job."""
        record = await load_record(self.redis, job_id)
        if record is None:
            raise UserFacingError("That job is too old or unknown; run the command again.")
        if record.status is not JobStatus.PLANNED or not await self.redis.hsetnx(
                keys.JOB(job_id), "confirmed_by", json.dumps(actor)):
            raise UserFacingError(_already(record))
        record.confirmed_by = actor
        return record

    async def start(self, record: JobRecord, *, channel: str, ts: str | None) -> JobRecord:
        """Record where the progress message is (ts None: not posted yet), and queue the job (after `claim`)."""
        record.status, record.channel, record.ts = JobStatus.QUEUED, channel, ts
        await save_fields(self.redis, record, "status", "channel", "ts")
        # The owner travels with the job, so it can be told even if Redis loses the job's record.
        await self.jobs.enqueue("bulk", key=f"bulk:{record.id}", job_id=record.id,
                                owner=record.confirmed_by or record.actor, course=record.course_title)
        await audit(self.redis, actor=record.confirmed_by or record.actor, action=record.kind,
                    target=f"course {record.course_id}", outcome="started", detail=f"job {record.id}")
        return record

    async def cancel(self, actor: str, job_id: str) -> JobRecord:
        """A planned job is dropped at once; a queued or running one stops after the members in flight."""
        record = await load_record(self.redis, job_id)
        if record is None:
            raise UserFacingError("That job is too old or unknown.")
        if record.status.finished:
            return record
        if record.status is JobStatus.PLANNED and await self.redis.hsetnx(
                keys.JOB(job_id), "confirmed_by", json.dumps("")):
            record.status, record.cancelled_by, record.finished_at = JobStatus.CANCELLED, actor, time.time()
            await save_fields(self.redis, record, "status", "cancelled_by", "finished_at")
        else:  # queued, running, or being started right now: the runner stops at the flag
            await self.redis.set(keys.JOB_CANCEL(job_id), actor, nx=True, ex=keys.JOB_CANCEL.ttl)
            record.cancelled_by = record.cancelled_by or actor
        await audit(self.redis, actor=actor, action=record.kind, target=f"job {job_id}", outcome="cancelled")
        return record


def _already(record: JobRecord) -> str:
    if record.status is JobStatus.CANCELLED:
        return "That job was cancelled; nothing more will happen. Run the command again to start over."
    if record.status.finished:
        return "That job has already finished."
    return "That job has already been started."


# ---- running ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    record: JobRecord
    labels: StepLabels
    counts: Counter[Outcome]
    total: int  # items of the plan
    processed: int  # items with an outcome
    rate: float | None  # members per second, lately
    eta_seconds: float | None
    cancelling: bool = False


@dataclass(frozen=True)
class ReportRow:
    name: str
    email: str
    slack_user: str
    member_id: str
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True)
class Report:
    record: JobRecord
    labels: StepLabels
    rows: list[ReportRow]
    counts: Counter[Outcome]
    elapsed: float


class ProgressSink(Protocol):
    async def progress(self, snapshot: Snapshot) -> None: ...
    async def finish(self, report: Report) -> None: ...


class LockLost(Exception):
    """Another runner holds this job now (this one was too slow to renew its lock)."""


class JobVanished(Exception):
    """The job's record is gone from Redis (flushed, or restarted without persistence): it cannot go on."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} done when the record vanished")
        self.done = done
        self.total = total


@dataclass
class _Run:
    """The state of one run of one job (in memory; Redis holds what must survive it)."""

    queue: deque[tuple[BulkItem, int]]  # (item, attempts so far)
    fresh: set[str]  # item keys to look up on the platform before writing
    counts: Counter[Outcome] = field(default_factory=Counter)
    processed: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))
    cancel_by: str | None = None
    lost: bool = False
    vanished: bool = False
    resume_at: float | None = None
    changed: bool = True


class BulkRunner:
    """Runs one job to its end (or until its process dies; the next run resumes it).

    `clock` paces the control loop (cancel flag, lock renewal, progress); `timings` say how long
    the job's lock lives without renewal and how often it is renewed.
    """

    def __init__(self, platform: CoursePlatform, redis: Redis, job_id: str, sink: ProgressSink, *,
                 clock: Clock = SYSTEM_CLOCK, timings: JobTimings | None = None) -> None:
        self.platform = platform
        self.redis = redis
        self.job_id = job_id
        self.sink = sink
        self.clock = clock
        self.timings = timings or JobTimings()

    async def run(self) -> None:
        timings = self.timings
        lock = self.redis.lock(keys.JOB_LOCK(self.job_id), timeout=timings.lock_seconds,
                               sleep=min(0.5, timings.beat_every))
        await lock.acquire()  # another runner of this job (a stalled worker that was swept): wait for it
        try:
            record = await load_record(self.redis, self.job_id)
            if record is None:
                log.warning("bulk job %s is gone from Redis (expired?); nothing to do", self.job_id)
                return
            if record.status.finished:
                if not record.reported:
                    await self._report(record, labels=KINDS[record.kind].labels if record.kind in KINDS else None)
                return
            await self._run(record, lock)
        except LockLost:
            log.warning("bulk job %s: another runner took over; this one stops", self.job_id)
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    async def _run(self, record: JobRecord, lock: Any) -> None:
        plan = await load_plan(self.redis, self.job_id)
        step = make_step(record.kind, self.platform, Course(id=record.course_id, title=record.course_title),
                         record.params)
        done_raw = _strings(await self.redis.hgetall(keys.JOB_DONE(self.job_id)))
        inflight = {str(key) for key in await self.redis.smembers(keys.JOB_INFLIGHT(self.job_id))}
        state = _Run(queue=deque((item, 0) for item in plan.items if item.key not in done_raw),
                     fresh={key for key in inflight if key not in done_raw})
        for raw in done_raw.values():
            state.counts[_read_outcome(raw)[0]] += 1
        state.processed = len(done_raw)
        now = self.clock.now()
        record.status, record.attempts = JobStatus.RUNNING, record.attempts + 1
        record.started_at = record.started_at or now
        await save_fields(self.redis, record, "status", "attempts", "started_at")
        if record.attempts > 1:
            log.info("bulk job %s resumes (run %d): %d done, %d to go, %d to look up again", self.job_id,
                     record.attempts, len(done_raw), len(state.queue), len(state.fresh))
        cancel_by = await self.redis.get(keys.JOB_CANCEL(self.job_id))
        state.cancel_by = str(cancel_by) if cancel_by is not None else None
        control = asyncio.create_task(self._control(record, lock, step.labels, state, len(plan.items)))
        try:
            if state.queue and state.cancel_by is None:
                try:
                    await step.prepare([item for item, _ in state.queue])
                except PlatformError as exc:
                    if exc.retryable:
                        raise  # the platform is down: SAQ runs the job again later, from here
                    record.stop_reason = exc.message
                    await self._fail_all(state, exc.message)
                else:
                    workers = 1 if step.batch_size > 1 else MEMBER_CONCURRENCY
                    async with asyncio.TaskGroup() as group:  # one failing cancels the others
                        for _ in range(workers):
                            group.create_task(self._worker(step, state))
        finally:
            control.cancel()
            await asyncio.gather(control, return_exceptions=True)
        if state.vanished:
            raise JobVanished(state.processed, len(plan.items))
        if state.lost:
            raise LockLost()
        record.finished_at = self.clock.now()
        record.resume_at = None
        if state.cancel_by is not None:
            record.status, record.cancelled_by = JobStatus.CANCELLED, state.cancel_by
        elif record.stop_reason:
            record.status = JobStatus.STOPPED
        else:
            record.status = JobStatus.DONE
        await save_fields(self.redis, record, "status", "finished_at", "resume_at", "cancelled_by", "stop_reason")
        counts = Counter(state.counts)
        await audit(self.redis, actor=record.confirmed_by or record.actor, action=record.kind,
                    target=f"course {record.course_id}", outcome=record.status.value,
                    detail=f"job {record.id}: " + ", ".join(f"{n} {o.value}" for o, n in sorted(counts.items())))
        await self._report(record, labels=step.labels)

    # -- the members ----------------------------------------------------------------------------

    def _stopping(self, state: _Run) -> bool:
        return state.cancel_by is not None or state.lost or state.vanished

    async def _worker(self, step: BulkStep, state: _Run) -> None:
        while state.queue and not self._stopping(state):
            if state.resume_at is not None:
                await self._wait_for_budget(state)
                continue
            taken: list[tuple[BulkItem, int]] = []
            try:
                if step.batch_size > 1:
                    await self._batch(step, state, taken)
                else:
                    taken.append(state.queue.popleft())
                    await self._one(step, state, *taken[0])
            except BudgetExceeded as exc:
                state.queue.extendleft(reversed(taken))  # nothing was written: they go first once it frees up
                state.resume_at = max(exc.retry_at, state.resume_at or 0.0)
                state.changed = True
                log.info("bulk job %s: daily budget spent; paused until %s", self.job_id, exc.retry_at)

    async def _wait_for_budget(self, state: _Run) -> None:
        while state.resume_at is not None and not self._stopping(state):
            left = state.resume_at - self.clock.now()
            if left <= 0:
                state.resume_at = None
                state.changed = True
                return
            await self.clock.sleep(min(left, CONTROL_SECONDS))

    async def _one(self, step: BulkStep, state: _Run, item: BulkItem, attempts: int) -> None:
        fresh = item.key in state.fresh
        try:
            if await step.check(item, fresh=fresh):
                # Found after a crash mid-write: that write was this job's own.
                await self._record(state, item, Outcome.DONE if fresh else Outcome.ALREADY)
                return
            await self.redis.sadd(keys.JOB_INFLIGHT(self.job_id), item.key)
            await step.apply(item)
        except PlatformError as exc:
            if exc.retryable and attempts + 1 < MEMBER_ATTEMPTS:
                state.fresh.add(item.key)  # the write may have happened: look before sending it again
                state.queue.append((item, attempts + 1))
                return
            await self._record(state, item, Outcome.FAILED, exc.message)
            return
        await self._record(state, item, Outcome.DONE)

    async def _batch(self, step: BulkStep, state: _Run, pending: list[tuple[BulkItem, int]]) -> None:
        """Fill `pending` with up to batch_size members who need it (recording the others), then apply."""
        while state.queue and len(pending) < step.batch_size and not self._stopping(state):
            item, attempts = state.queue.popleft()
            fresh = item.key in state.fresh
            try:
                if await step.check(item, fresh=fresh):
                    await self._record(state, item, Outcome.DONE if fresh else Outcome.ALREADY)
                    continue
            except PlatformError as exc:
                if exc.retryable and attempts + 1 < MEMBER_ATTEMPTS:
                    state.queue.append((item, attempts + 1))
                else:
                    await self._record(state, item, Outcome.FAILED, exc.message)
                continue
            pending.append((item, attempts))
        if not pending:
            return
        await self.redis.sadd(keys.JOB_INFLIGHT(self.job_id), *(item.key for item, _ in pending))
        try:
            results = await step.apply_many([item for item, _ in pending])
        except PlatformError as exc:
            for item, attempts in pending:
                if exc.retryable and attempts + 1 < MEMBER_ATTEMPTS:
                    state.fresh.add(item.key)
                    state.queue.append((item, attempts + 1))
                else:
                    await self._record(state, item, Outcome.FAILED, exc.message)
            return
        for item, _ in pending:
            reason = results.get(item.key)
            await self._record(state, item, Outcome.FAILED if reason else Outcome.DONE, reason or "")

    async def _record(self, state: _Run, item: BulkItem, outcome: Outcome, reason: str = "") -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.JOB_DONE(self.job_id), item.key, _outcome_json(outcome, reason))
            pipe.expire(keys.JOB_DONE(self.job_id), keys.JOB_DONE.ttl or 0)
            pipe.srem(keys.JOB_INFLIGHT(self.job_id), item.key)
            pipe.expire(keys.JOB_INFLIGHT(self.job_id), keys.JOB_INFLIGHT.ttl or 0)
            await pipe.execute()
        state.counts[outcome] += 1
        state.processed += 1
        state.changed = True

    async def _fail_all(self, state: _Run, reason: str) -> None:
        while state.queue:
            item, _ = state.queue.popleft()
            await self._record(state, item, Outcome.FAILED, reason)

    # -- control: cancel flag, lock, progress ---------------------------------------------------

    async def _control(self, record: JobRecord, lock: Any, labels: StepLabels, state: _Run, total: int) -> None:
        clock = self.clock
        last_progress: float | None = None
        last_renew = clock.monotonic()
        paused_saved: float | None = None
        while True:
            now = clock.monotonic()
            if now - last_renew >= self.timings.beat_every:
                try:
                    await lock.reacquire()
                    last_renew = now
                except LockError:
                    state.lost = True
                    return
            if not await self.redis.exists(keys.JOB(self.job_id)):
                state.vanished = True
                return
            if state.cancel_by is None:
                cancel_by = await self.redis.get(keys.JOB_CANCEL(self.job_id))
                if cancel_by is not None:
                    state.cancel_by, state.changed = str(cancel_by), True
            state.samples.append((now, state.processed))
            if state.resume_at != paused_saved:
                paused_saved = state.resume_at
                record.status = JobStatus.PAUSED if state.resume_at else JobStatus.RUNNING
                record.resume_at = state.resume_at
                await save_fields(self.redis, record, "status", "resume_at")
            if state.changed and (last_progress is None or now - last_progress >= PROGRESS_SECONDS):
                state.changed = False
                last_progress = now
                try:
                    await self.sink.progress(self._snapshot(record, labels, state, total))
                except Exception:
                    log.exception("bulk job %s: progress update failed", self.job_id)
            await clock.sleep(CONTROL_SECONDS)

    def _snapshot(self, record: JobRecord, labels: StepLabels, state: _Run, total: int) -> Snapshot:
        rate: float | None = None
        if len(state.samples) >= 2:
            (t0, n0), (t1, n1) = state.samples[0], state.samples[-1]
            if t1 - t0 >= 1.0 and n1 > n0:
                rate = (n1 - n0) / (t1 - t0)
        left = total - state.processed
        eta = left / rate if rate else None
        if state.resume_at is not None:
            eta = None
        return Snapshot(record=record.model_copy(), labels=labels, counts=Counter(state.counts), total=total,
                        processed=state.processed, rate=rate, eta_seconds=eta,
                        cancelling=state.cancel_by is not None)

    # -- the report -----------------------------------------------------------------------------

    async def _report(self, record: JobRecord, *, labels: StepLabels | None) -> None:
        report = await build_report(self.redis, record, labels or KINDS[record.kind].labels)
        try:
            await self.sink.finish(report)
        except Exception:
            log.exception("bulk job %s: the report could not be delivered", self.job_id)
            return
        record.reported = True
        await save_fields(self.redis, record, "reported")


async def build_report(redis: Redis, record: JobRecord, labels: StepLabels) -> Report:
    plan = await load_plan(redis, record.id)
    done_raw = _strings(await redis.hgetall(keys.JOB_DONE(record.id)))
    rows: list[ReportRow] = []
    for item in plan.items:
        raw = done_raw.get(item.key)
        outcome, reason = _read_outcome(raw) if raw else (Outcome.NOT_DONE, "")
        rows.append(ReportRow(item.name, item.email, item.slack_user, item.member_id, outcome, reason))
    for person in plan.unresolved:
        rows.append(ReportRow(person.name, person.email, person.slack_user, "", person.outcome, person.reason))
    counts = Counter(row.outcome for row in rows)
    elapsed = (record.finished_at or time.time()) - (record.started_at or record.created_at)
    return Report(record=record, labels=labels, rows=rows, counts=counts, elapsed=max(0.0, elapsed))
