"""The queued `bulk` job: `BulkRunner` (bot.bulk.service) reporting to its Slack progress message.

Run by `coursebot worker` (SAQ), or inside the process with the embedded store. Any worker may
take any job; a job whose worker died is taken again and resumes (see bot.bulk.service).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.bulk import render as render
from bot.bulk.service import BulkRunner, JobVanished, Report, Snapshot, load_record
from bot.core.jobs import JobTimings
from bot.slack.poster import Poster

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


class SlackProgress:
    """Draws the job's progress in its message (chat.update), then the report, and the CSV in its thread.

    Through the Poster (bot.slack.poster): paced per channel, and never posted twice."""

    def __init__(self, poster: Poster, channel: str, ts: str | None) -> None:
        self.poster = poster
        self.channel = channel
        self.ts = ts

    async def progress(self, snapshot: Snapshot) -> None:
        if self.ts is None:
            await self._post(render.progress_message(snapshot).as_kwargs())
            return
        await self.poster.update(self.channel, self.ts, render.progress_message(snapshot))

    async def finish(self, report: Report) -> None:
        attach = len(report.rows) > render.CSV_ABOVE
        pages = render.report_message(report, csv_attached=attach).pages("thread")
        try:
            if self.ts is None:
                raise LookupError("no progress message")
            await self.poster.update_page(self.channel, self.ts, pages[0])
        except (SlackApiError, LookupError) as exc:
            log.info("progress message unavailable (%s): posting the report anew", exc)
            await self._post(pages[0])
        assert self.ts is not None
        await self.poster.post_follow_ups(self.channel, self.ts, pages[1:])
        if attach:
            await self.poster.upload(
                self.channel, thread_ts=self.ts, content=render.report_csv(report),
                filename=render.csv_filename(report), title=render.csv_title(report),
            )

    async def _post(self, page: dict[str, Any]) -> None:
        posted = await self.poster.post_page(self.channel, page)
        self.channel, self.ts = posted.channel, posted.ts


async def run_bulk_job(rt: Runtime, kwargs: dict[str, Any]) -> None:
    job_id = str(kwargs["job_id"])
    owner, course = str(kwargs.get("owner") or ""), str(kwargs.get("course") or "")
    record = await load_record(rt.redis, job_id)
    if record is None:
        log.warning("bulk job %s: no record in Redis; telling its owner", job_id)
        await _tell_vanished(rt, owner, course, None)
        return
    sink = SlackProgress(rt.poster, record.channel or record.confirmed_by or record.actor, record.ts)
    try:
        await BulkRunner(rt.platform, rt.redis, job_id, sink, clock=rt.clock,
                         timings=JobTimings.of(rt.settings)).run()
    except JobVanished as exc:
        log.warning("bulk job %s: its record vanished from Redis mid-run (%s)", job_id, exc)
        await _tell_vanished(rt, owner or record.confirmed_by or record.actor, course or record.course_title, exc)


async def _tell_vanished(rt: Runtime, owner: str, course: str, exc: JobVanished | None) -> None:
    """The job cannot go on without its records: say so to whoever started it, rather than freeze."""
    if not owner:
        return
    await rt.replies.direct(owner, render.vanished_message(course, exc.done if exc else None,
                                                           exc.total if exc else None))
