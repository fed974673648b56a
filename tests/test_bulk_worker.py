"""A bulk invite survives `kill -9` of its `coursebot worker`: a new worker resumes it, exactly once per member."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import redis.asyncio as aioredis

from bot.bulk import keys as bulk_keys
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, REDIS_URL, SLACK_SPEED, SLACK_TOKEN, Tenant, nexudus_settings
from tests.test_bulk import DM, click, enrolled, job_ids, last_response, seed_people, wait_job

WRITES_PER_MINUTE = 12000  # fast, so the test is short: the point is exactly-once
HEARTBEAT = 2  # seconds: a killed worker's job is taken over within seconds (the default is 10)


def worker_process(tenant: Tenant, slack: SlackWorkspace, cwd: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "COURSE_PLATFORM": "nexudus",
        "NEXUDUS_BASE_URL": tenant.url,
        "NEXUDUS_USERNAME": tenant.fake.username,
        "NEXUDUS_PASSWORD": tenant.fake.password,
        "NEXUDUS_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE),
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.base_url + "/api/",
        "SLACK_POSTS_PER_SECOND": str(SLACK_SPEED),
        "COURSEBOT_MANAGERS": MANAGER,
        "COURSEBOT_JOB_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "LOG_LEVEL": "INFO",
    }
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=(cwd / f"worker-{time.monotonic_ns()}.log").open("wb"))


async def test_kill_9_halfway_then_a_new_worker_finishes_with_exactly_one_enrolment_each(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis, tmp_path: Path,
) -> None:
    nexudus.fake.writes_per_minute = WRITES_PER_MINUTE  # the fake enforces the same budget
    people = seed_people(nexudus, slack, 300)
    settings = nexudus_settings(nexudus, nexudus_writes_per_minute=WRITES_PER_MINUTE,
                                coursebot_job_heartbeat_seconds=HEARTBEAT)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as bot:
        bot.channel = GENERAL
        out = "\n".join(await bot.command("invite onboarding <#C0COHORT|cohort>"))
        assert "Invite 300 people to Community Onboarding?" in out
        await click(bot, last_response(slack), "bulk_start", channel=GENERAL, ephemeral=True)
        [job_id] = set(job_ids(json.dumps(last_response(slack))))

        first = worker_process(nexudus, slack, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while await redis_client.hlen(bulk_keys.JOB_DONE(job_id)) < 150:
                assert first.poll() is None, "the first worker died by itself"
                assert time.monotonic() < deadline, "the first worker did not get halfway"
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        at_kill = len(enrolled(nexudus, "onboarding"))
        assert 150 <= at_kill < 300

        second = worker_process(nexudus, slack, tmp_path)
        try:
            record = await wait_job(redis_client, job_id, within=120)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(15)
            except subprocess.TimeoutExpired:
                second.kill()

    assert record.status.value == "done" and record.attempts >= 2
    counts = Counter(enrolled(nexudus, "onboarding"))
    assert len(counts) == 300 and set(counts.values()) == {1}  # everyone, once
    assert set(counts) == {p["Id"] for p in people}
    assert nexudus.fake.throttled == 0  # never faster than the budget the fake enforces
    report = json.dumps(slack.messages(DM)[-1]["blocks"])
    assert "Invited*\\n300" in report and "Failed*\\n0" in report
    assert len(slack.files) == 1
