"""App Home for managers: what waits, the latest decisions; kept fresh after every change."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from bot.approvals.store import ApprovalRequest, ApprovalStore
from bot.core.capabilities import Capability
from bot.core.models import Visibility
from bot.core.permissions import Permissions
from bot.platforms.base import CoursePlatform


@dataclass(frozen=True)
class HomeData:
    waiting: list[ApprovalRequest]
    recent: list[ApprovalRequest]
    per_course: list[tuple[str, Visibility, int]]
    platform: str
    last_synced: float | None
    note: str = ""  # shown instead of the lists, e.g. when the platform has no approval step
    rules: list[str] | None = None  # plain lines about the approval rules, for managers


class HomeBoard(Protocol):
    async def publish_home(self, user_id: str, home: HomeData | None) -> None: ...


class Home:
    def __init__(self, platform: CoursePlatform, store: ApprovalStore, board: HomeBoard,
                 permissions: Permissions) -> None:
        self.platform = platform
        self.store = store
        self.board = board
        self.permissions = permissions

    async def waiting(self, course_id: str | None = None) -> list[ApprovalRequest]:
        requests = await self.store.open_requests()
        if course_id is not None:
            requests = [r for r in requests if r.course_id == course_id]
        return sorted(requests, key=lambda r: (r.waiting_since, r.id))

    async def data(self) -> HomeData:
        waiting = await self.waiting()
        counts = Counter((r.course_title or f"course {r.course_id}", r.course_visibility) for r in waiting)
        per_course = sorted(((title, vis, n) for (title, vis), n in counts.items()), key=lambda t: (-t[2], t[0]))
        return HomeData(waiting, await self.store.recent_decisions(10), per_course, self.platform.display_name,
                        await self.store.last_synced())

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
        await self.board.publish_home(user_id, await self.data())

    async def refresh(self) -> None:
        viewers = [u for u in await self.store.home_viewers() if await self.permissions.may_see_requests(u)]
        if not viewers:
            return
        home = await self.data()
        await asyncio.gather(*(self.board.publish_home(user, home) for user in viewers))
