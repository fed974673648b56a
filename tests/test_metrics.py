"""`GET /metrics` after real commands: what Prometheus would scrape from `serve`.

The commands go through the HTTP route as signed Slack requests (devtools.shell.Shell); the bulk
job is taken by an SAQ worker running in this process (tests.test_bulk.ThreadWorker), so its job
counter shows on this process's /metrics. A real `coursebot worker` exports its own counters with
`--metrics-port` (tests/test_startup.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from devtools.shell import Shell
from tests.conftest import Tenant
from tests.test_bulk import DM, ThreadWorker, job_ids, wait_job


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(bot: Shell) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await bot.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


@pytest.fixture
def worker(bot: Shell) -> Iterator[ThreadWorker]:
    with ThreadWorker(bot.runtime.settings) as running:
        yield running


async def test_metrics_count_platform_requests_throttling_slack_errors_and_jobs(
    bot: Shell, nexudus: Tenant, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    before = await scrape(bot)

    await bot.command("courses")
    nexudus.fake.throttle_next(1, retry_after=0, method="POST")
    nexudus.fake.status_429_next(1, retry_after=0, method="GET")
    assert "enrolled" in "\n".join(await bot.command("enrol founders ada@example.com"))
    await bot.command("enrol founders <@U0GHOST|ghost>")  # Slack: users.info -> user_not_found
    out = "\n".join(await bot.command("invite onboarding grace@work.example"))
    [job_id] = set(job_ids(out) or job_ids(json.dumps(bot.ws.messages(DM))))
    await wait_job(redis_client, job_id)
    for _ in range(50):  # the job is counted as it returns, a moment after its report is out
        after = await scrape(bot)
        if value(after, "coursebot_jobs_total", kind="bulk", outcome="ok") > \
                value(before, "coursebot_jobs_total", kind="bulk", outcome="ok"):
            break
        await asyncio.sleep(0.1)


    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    platform = "coursebot_platform_requests_total"
    assert grew(platform, platform="nexudus", method="GET", status="200") >= 3
    assert grew(platform, platform="nexudus", method="POST", status="200") >= 2  # the token, then the enrolment
    assert grew(platform, platform="nexudus", method="POST", status="409") == 1  # throttled, counted, retried
    assert grew(platform, platform="nexudus", method="GET", status="429") == 1
    assert grew("coursebot_slack_api_errors_total", method="users.info", error="user_not_found") == 1
    assert grew("coursebot_jobs_total", kind="bulk", outcome="ok") == 1
    assert value(after, "coursebot_queue_depth") == 0


async def test_metrics_count_commands_by_name_and_outcome_with_latencies(bot: Shell) -> None:
    before = await scrape(bot)
    await bot.command("courses")
    await bot.command('enrol "Founders Circle ada@example.com')  # unclosed quote: invalid
    after = await scrape(bot)
    assert value(after, "coursebot_commands_total", command="courses", outcome="ok") - \
        value(before, "coursebot_commands_total", command="courses", outcome="ok") == 1
    assert value(after, "coursebot_commands_total", command="enrol", outcome="invalid") - \
        value(before, "coursebot_commands_total", command="enrol", outcome="invalid") == 1
    assert value(after, "coursebot_ack_seconds_count", kind="command") - \
        value(before, "coursebot_ack_seconds_count", kind="command") == 2
    assert value(after, "coursebot_answer_seconds_count", kind="command") > \
        value(before, "coursebot_answer_seconds_count", kind="command")
