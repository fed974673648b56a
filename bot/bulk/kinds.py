"""Every kind of bulk job, by the name a job record carries (`/course invite`, `/course complete`)."""

from __future__ import annotations

from bot.bulk.complete import CompleteLessonStep
from bot.bulk.invite import InviteStep
from bot.bulk.step import BulkStep
from bot.core.models import Course
from bot.platforms.base import CoursePlatform

KINDS: dict[str, type[BulkStep]] = {
    "invite": InviteStep,
    "complete": CompleteLessonStep,
}


def make_step(kind: str, platform: CoursePlatform, course: Course, params: dict[str, str]) -> BulkStep:
    if kind not in KINDS:
        raise KeyError(f"no bulk job kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[kind](platform, course, params)
