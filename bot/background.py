"""Every background job and periodic task, in one table: what `coursebot worker` runs.

Queued jobs are looked up here by name (the name travels through the queue); periodic tasks
run in every worker, each guarding itself with a Redis lock or a once-a-day key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.approvals.tasks import approval_sync, approve_all
from bot.bulk.tasks import run_bulk_job
from bot.core.jobs import Periodic
from bot.digest.sender import digest_tick

if TYPE_CHECKING:
    from bot.runtime import Runtime

JobFunction = Callable[["Runtime", dict[str, Any]], Awaitable[Any]]

APPROVE_ALL = "approval_approve_all"
BULK = "bulk"

JOBS: dict[str, JobFunction] = {
    APPROVE_ALL: approve_all,
    BULK: run_bulk_job,
}

PERIODIC: tuple[Periodic, ...] = (
    Periodic("approval_sync", lambda settings: settings.coursebot_sync_seconds, approval_sync),
    Periodic("digest", lambda settings: 30, digest_tick),
)
