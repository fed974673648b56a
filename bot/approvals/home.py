"""App Home for managers and approvers: what waits, the latest decisions, and (for managers) the
approval rules; kept fresh after every change. An approver sees only the courses they decide."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.approvals.store import ApprovalRequest, ApprovalStore
from bot.core.capabilities import Capability
from bot.core.models import Visibility
from bot.core.permissions import Permissions
from bot.platforms.base import CoursePlatform
from bot.render.mrkdwn import Mrkdwn


@dataclass(frozen=True)
class HomeData:
    waiting: list[ApprovalRequest]
    recent: list[ApprovalRequest]
    per_course: list[tuple[str, Visibility, int]]
    platform: str
    last_synced: float | None
    note: str = ""  # shown instead of the lists, e.g. when the platform has no approval step
    rules: list[Mrkdwn] | None = None  # lines about the approval rules, for managers


class HomeBoard(Protocol):
    async def publish_home(self, user_id: str, home: HomeData | None) -> None: ...


class Home:
    def __init__(self, platform: CoursePlatform, store: ApprovalStore, board: HomeBoard,
                 permissions: Permissions) -> None:
        self.platform = platform
        self.store = store
        self.board = board
        self.permissions = permissions
        self.rule_lines: Callable[[], Awaitable[list[Mrkdwn]]] | None = None  # the rules, in lines, for managers

    async def waiting(self, course_id: str | None = None) -> list[ApprovalRequest]:
        requests = await self.store.open_requests()
        if course_id is not None:
            requests = [r for r in requests if r.course_id == course_id]
        return sorted(requests, key=lambda r: (r.waiting_since, r.id))

    async def data(self, courses: set[str] | None = None) -> HomeData:
        """What Home shows: every course (a manager), or only `courses` (an approver's)."""
        waiting = await self.waiting()
        recent = await self.store.recent_decisions(10 if courses is None else 50)
        if courses is not None:
            waiting = [r for r in waiting if r.course_id in courses]
            recent = [r for r in recent if r.course_id in courses][:10]
        counts = Counter((r.course_title or f"course {r.course_id}", r.course_visibility) for r in waiting)
        per_course = sorted(((title, vis, n) for (title, vis), n in counts.items()), key=lambda t: (-t[2], t[0]))
        rules = await self.rule_lines() if courses is None and self.rule_lines is not None else None
        return HomeData(waiting, recent, per_course, self.platform.display_name, await self.store.last_synced(),
                        rules=rules)

    async def opened(self, user_id: str) -> None:
        if not await self.permissions.may_see_requests(user_id):
            await self.board.publish_home(user_id, None)
            return
        if not self.platform.supports(Capability.APPROVAL):
            name = self.platform.display_name
            note = (f"{name} has no approval step: sign-ups there need nobody's approval, so no requests wait "
                    "here. Use `/course` to enrol and invite members.")
            await self.board.publish_home(user_id, HomeData([], [], [], name, None, note=note))
            return
        await self.store.add_home_viewer(user_id)
        await self.board.publish_home(user_id, await self.data(await self.permissions.decidable_courses(user_id)))

    async def refresh(self) -> None:
        viewers = [u for u in await self.store.home_viewers() if await self.permissions.may_see_requests(u)]
        if not viewers:
            return
        scopes = {user: await self.permissions.decidable_courses(user) for user in viewers}
        everything = await self.data() if any(scope is None for scope in scopes.values()) else None
        homes = {user: everything if scope is None else await self.data(scope) for user, scope in scopes.items()}
        await asyncio.gather(*(self.board.publish_home(user, home) for user, home in homes.items()))
