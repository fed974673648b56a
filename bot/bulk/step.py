"""The extension point of bulk jobs: one kind of step applied to each member (see bot.bulk.service)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from bot.bulk.targets import BulkItem
from bot.core.directory import Directory
from bot.core.models import Course
from bot.platforms.base import CoursePlatform, PlatformError


@dataclass(frozen=True)
class StepLabels:
    """Words for messages and the report: "Inviting 12 people to Onboarding … 10 invited, 2 already enrolled"."""

    verb: str  # "Invite"
    doing: str  # "Inviting"
    done: str  # "invited"
    already: str  # "already enrolled"
    target: str = "to"  # "Inviting 12 people *to* <course>"


class BulkStep(abc.ABC):
    """One kind of bulk job: what to do for each member. See the module docstring."""

    labels: ClassVar[StepLabels]

    def __init__(self, platform: CoursePlatform, course: Course, params: dict[str, str]) -> None:
        self.platform = platform
        self.course = course
        self.params = params

    @property
    def batch_size(self) -> int:
        """Members per `apply_many` call; 1 means `apply` one member at a time."""
        return 1

    def cost(self, count: int) -> int:
        """Units of the platform's budget that `count` members will spend (for estimates)."""
        return count

    async def complete_params(self, actor: str, directory: Directory) -> None:  # noqa: B027 (optional hook)
        """Add to `self.params` what the job needs to know about who asked; run once, when it is planned."""

    async def prepare(self, items: Sequence[BulkItem]) -> None:  # noqa: B027 (optional hook)
        """Read what is already done, in bulk, once per run (and once when planning)."""

    @abc.abstractmethod
    async def check(self, item: BulkItem, *, fresh: bool) -> bool:
        """Is it already done for this member? `fresh`: ask the platform now, not what `prepare` read."""

    @abc.abstractmethod
    async def apply(self, item: BulkItem) -> None:
        """Do it, once. Raise PlatformError (with the platform's reason) when it is refused."""

    async def apply_many(self, items: Sequence[BulkItem]) -> dict[str, str | None]:
        """For batch steps: do it for all of them; item key -> None (done) or the reason it was refused."""
        results: dict[str, str | None] = {}
        for item in items:
            try:
                await self.apply(item)
                results[item.key] = None
            except PlatformError as exc:
                results[item.key] = exc.message
        return results
