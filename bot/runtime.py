"""The composition root: builds the store, platform adapter, Slack client and services once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import rules_render
from bot.approvals.board import SlackBoard
from bot.approvals.decisions import DecisionService
from bot.approvals.home import Home
from bot.approvals.requests import RequestBook
from bot.approvals.rules import RuleBook
from bot.approvals.rules_slack import SlackRulesCopy
from bot.approvals.service import ApprovalService
from bot.approvals.store import ApprovalStore
from bot.bulk.service import BulkService
from bot.core import store
from bot.core.capabilities import Capability
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.config import Platform, Settings
from bot.core.directory import Directory
from bot.core.jobs import InProcessJobQueue, JobQueue, JobTimings, SaqJobQueue
from bot.core.pacing import Budget, make_storage, smooth_per_minute, smooth_per_seconds
from bot.core.permissions import Permissions
from bot.core.store import Redis
from bot.enrolment.service import EnrolmentService
from bot.platforms.base import CoursePlatform
from bot.platforms.cache import CachedPlatform
from bot.render import Mrkdwn
from bot.slack.client import make_slack_client
from bot.slack.directory import SlackDirectory
from bot.slack.poster import Poster
from bot.slack.replies import Replies

log = logging.getLogger(__name__)


def cached(platform: CoursePlatform, redis: Redis) -> CoursePlatform:
    """The platform behind the read cache (`bot.platforms.cache`), unless it is not worth caching."""
    if not platform.cache_reads or isinstance(platform, CachedPlatform):
        return platform
    return CachedPlatform(platform, redis)


def make_platform(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> CoursePlatform:
    """The adapter `settings` choose, bare: `Runtime.create` puts it behind the read cache."""
    limits_storage = make_storage(settings.redis_url, **settings.redis_options())
    if settings.course_platform is Platform.NEXUDUS:
        from bot.platforms.nexudus import NexudusPlatform

        settings.require("nexudus_username", "nexudus_password")
        assert settings.nexudus_username and settings.nexudus_password
        writes = Budget(limits_storage, "nexudus:writes", smooth_per_minute(settings.nexudus_writes_per_minute),
                        daily=settings.nexudus_writes_per_day, clock=clock)
        return NexudusPlatform(settings.nexudus_base_url, settings.nexudus_username,
                               settings.nexudus_password.get_secret_value(), writes)
    if settings.course_platform is Platform.MELTINGSPOT:
        from bot.platforms.meltingspot import MeltingSpotPlatform

        settings.require("meltingspot_api_key")
        assert settings.meltingspot_api_key
        budget = Budget(limits_storage, "meltingspot:requests",
                        smooth_per_seconds(settings.meltingspot_requests_per_10s, 10), clock=clock)
        return MeltingSpotPlatform(settings.meltingspot_base_url, settings.meltingspot_api_key.get_secret_value(),
                                   budget, create_missing_members=settings.meltingspot_create_members,
                                   send_email=settings.meltingspot_invite_email)
    from bot.platforms.sandbox import SandboxPlatform

    return SandboxPlatform()


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    platform: CoursePlatform
    slack: AsyncWebClient
    poster: Poster
    directory: Directory
    permissions: Permissions
    replies: Replies
    decisions: DecisionService
    enrolments: EnrolmentService
    jobs: JobQueue
    approvals: ApprovalService
    bulk: BulkService
    rules: RuleBook
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def create(cls, settings: Settings, *, platform: CoursePlatform | None = None,
               clock: Clock = SYSTEM_CLOCK) -> Runtime:
        """`clock` paces the schedulers (budgets, bulk runs, heartbeats); tests may pass a faster one."""
        redis = store.connect(settings)
        platform = cached(platform or make_platform(settings, clock), redis)
        slack = make_slack_client(settings)
        poster = Poster(slack, redis, make_storage(settings.redis_url, **settings.redis_options()),
                        posts_per_second=settings.slack_posts_per_second)
        directory = SlackDirectory(slack, redis)
        permissions = Permissions(settings.coursebot_managers, directory, redis)
        jobs: JobQueue = (SaqJobQueue(settings.redis_url, JobTimings.of(settings), **settings.redis_options())
                          if settings.redis_url else InProcessJobQueue())
        requests = ApprovalStore(redis)
        board = SlackBoard(slack, poster, settings.coursebot_approvals_channel, directory, platform.display_name)
        book = RequestBook(platform, requests, board)
        home = Home(platform, requests, board, permissions)
        decisions = DecisionService(platform, redis, requests, book, board, permissions, home)
        # Approval rules: who decides which course, auto-approve, quorum. Their copy in the approvals
        # channel is what brings them back after Redis loses its data (no approval step: no rules).
        copy = SlackRulesCopy(slack, poster, settings.coursebot_approvals_channel) \
            if platform.supports(Capability.APPROVAL) else None
        rules = RuleBook(redis, directory, permissions, copy)
        permissions.rules = rules
        decisions.quorum = rules
        decisions.auto = rules
        book.rules = rules

        async def rule_lines() -> list[Mrkdwn]:
            titles = {cid: c.title for cid, c in (await requests.courses()).items()}
            return rules_render.rule_lines(await rules.book(), titles)

        home.rule_lines = rule_lines
        approvals = ApprovalService(platform, redis, requests, board, book, decisions, home,
                                    reminder_after=timedelta(hours=settings.coursebot_reminder_hours),
                                    escalate_after=timedelta(hours=settings.coursebot_escalate_hours),
                                    managers=settings.coursebot_managers)
        approvals.rules = rules
        runtime = cls(
            settings=settings,
            clock=clock,
            redis=redis,
            platform=platform,
            slack=slack,
            poster=poster,
            directory=directory,
            permissions=permissions,
            replies=Replies(poster, settings.slack_api_url),
            decisions=decisions,
            enrolments=EnrolmentService(platform, redis, directory, permissions, decisions),
            jobs=jobs,
            bulk=BulkService(platform, redis, directory, permissions, jobs),
            approvals=approvals,
            rules=rules,
        )
        if isinstance(jobs, InProcessJobQueue):
            from bot.background import JOBS

            async def run(name: str, kwargs: dict[str, Any]) -> None:
                await JOBS[name](runtime, kwargs)

            jobs.runner = run
        return runtime

    async def aclose(self) -> None:
        """Close every connection; one that fails to close (Redis gone) does not keep the others open."""
        for close in (self.jobs.aclose, self.platform.aclose, self.redis.aclose):
            try:
                await close()
            except Exception as exc:
                log.warning("closing: %s", type(exc).__name__)
