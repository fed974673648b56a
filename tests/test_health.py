"""`GET /healthz` as a load balancer and an operator read it: Redis decides the status code;
Slack, the platform and the workers are reported beside it, and cost almost nothing to ask."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from bot import health
from bot.core import keys
from devtools.servers import free_port
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import MANAGER, Tenant, nexudus_settings


async def probe(bot: Shell) -> tuple[int, dict[str, Any]]:
    response = await bot.http.get("/healthz")
    return response.status_code, response.json()


@pytest.fixture
async def wrong_password_bot(nexudus: Tenant, slack: SlackWorkspace) -> AsyncIterator[Shell]:
    settings = nexudus_settings(nexudus, nexudus_password=SecretStr("not-the-password"))
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        yield shell


async def test_healthz_reports_redis_slack_platform_and_workers_separately(bot: Shell) -> None:
    status, body = await probe(bot)
    assert status == 200
    assert body["ok"] is True and body["store"] == "redis" and body["platform"] == "nexudus"
    checks = body["checks"]
    assert checks["redis"] == {"status": "ok"}
    assert checks["slack"] == {"status": "ok", "checked_seconds_ago": 0}
    assert checks["platform"] == {"status": "ok", "checked_seconds_ago": 0}
    assert checks["worker"]["status"] == "missing" and "coursebot worker" in checks["worker"]["detail"]


async def test_a_worker_heartbeat_is_seen_for_two_minutes(bot: Shell, redis_client: aioredis.Redis) -> None:
    await health.beat(redis_client, "host-a:1", now=time.time() - 5)
    await health.beat(redis_client, "host-b:2", now=time.time() - keys.WORKER_SEEN_SECONDS - 1)  # gone
    _, body = await probe(bot)
    assert body["checks"]["worker"] == {"status": "ok", "workers": 1, "last_seen_seconds_ago": 5}


async def test_the_platform_and_slack_are_asked_at_most_once_a_minute(bot: Shell, nexudus: Tenant,
                                                                      slack: SlackWorkspace) -> None:
    await probe(bot)
    platform_requests, auth_tests = len(nexudus.fake.requests), slack.call_count("auth.test")
    for _ in range(20):
        status, _body = await probe(bot)
        assert status == 200
    assert len(nexudus.fake.requests) == platform_requests
    assert slack.call_count("auth.test") == auth_tests


async def test_a_failing_platform_is_reported_but_serve_stays_healthy(wrong_password_bot: Shell) -> None:
    status, body = await probe(wrong_password_bot)
    assert status == 200 and body["ok"] is True
    platform = body["checks"]["platform"]
    assert platform["status"] == "error"
    assert "Nexudus did not accept the API user's credentials" in platform["detail"]


async def test_a_revoked_token_is_reported_under_slack(nexudus: Tenant, slack: SlackWorkspace) -> None:
    async with Shell(nexudus_settings(nexudus), as_user=MANAGER, workspace=slack) as bot:
        slack.fail_next("auth.test", 1, "token_revoked")
        status, body = await probe(bot)
    assert status == 200
    assert body["checks"]["slack"]["status"] == "error"
    assert body["checks"]["slack"]["detail"] == "auth.test: token_revoked"


async def test_healthz_is_503_when_redis_does_not_answer(nexudus: Tenant, slack: SlackWorkspace) -> None:
    settings = nexudus_settings(nexudus, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with Shell(settings, as_user=MANAGER, workspace=slack) as bot:
        status, body = await probe(bot)
    assert status == 503
    assert body["ok"] is False
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["worker"] == {"status": "unknown"}
