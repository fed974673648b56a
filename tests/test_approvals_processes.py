"""Approval cards across real processes: two `coursebot serve` and `coursebot worker`, one Redis.

The processes are started as an operator would (`python -m bot.cli serve --port N`), pointed at
the local Nexudus and Slack through their environment, and clicked with signed requests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bot.approvals import keys as approval_keys
from devtools import requests as slack_requests
from devtools.servers import free_port
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, MANAGER, OUTSIDER, REDIS_URL, SLACK_SPEED, SLACK_TOKEN, Tenant
from tests.test_approvals import (
    buttons,
    card_for,
    cards,
    click_body,
    pending,
    puts,
    record,
    sync,
    text,
    wait_until,
)

SECRET = "approvals-processes-secret"
SECOND_MANAGER = "U0MANAGER2"


def environment(tenant: Tenant, slack: SlackWorkspace, **extra: str) -> dict[str, str]:
    own = ("SLACK_", "NEXUDUS_", "MELTINGSPOT_", "COURSEBOT_", "COURSE_PLATFORM", "REDIS_URL", "PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update({
        "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.base_url + "/api/",
        "REDIS_URL": REDIS_URL, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": tenant.url,
        "NEXUDUS_USERNAME": tenant.fake.username, "NEXUDUS_PASSWORD": tenant.fake.password,
        "NEXUDUS_WRITES_PER_MINUTE": "600", "COURSEBOT_MANAGERS": f"{MANAGER},{SECOND_MANAGER}",
        "COURSEBOT_APPROVALS_CHANNEL": APPROVALS, "LOG_LEVEL": "WARNING",
        "SLACK_POSTS_PER_SECOND": str(SLACK_SPEED), **extra,
    })
    return env


@contextmanager
def processes(args: list[list[str]], env: dict[str, str], cwd: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = []
    try:
        for n, arg in enumerate(args):
            log = (cwd / f"process-{n}-{time.monotonic_ns()}.log").open("wb")
            started.append(subprocess.Popen([sys.executable, "-m", "bot.cli", *arg], env=env, cwd=cwd,
                                            stdout=log, stderr=subprocess.STDOUT))
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def wait_for_health(urls: list[str], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        for url in urls:
            while True:
                try:
                    if (await client.get(url + "/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{url} did not start"
                await asyncio.sleep(0.1)


async def send(client: httpx.AsyncClient, url: str, body: str) -> int:
    response = await client.post(url + "/slack/events", content=body,
                                 headers=slack_requests.signed_headers(SECRET, body))
    return response.status_code


async def test_twenty_concurrent_clicks_across_two_serve_processes_write_once(
    nexudus: Tenant, slack: SlackWorkspace, tmp_path: Path
) -> None:
    slack.add_user(SECOND_MANAGER, "manager2", "manager2@example.com", real_name="Max Manager")
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = environment(nexudus, slack)
    with processes([["serve", "--port", str(p)] for p in ports], env, tmp_path):
        await wait_for_health(urls)
        bodies = [click_body(slack, card, "approval_approve", MANAGER if n % 2 else SECOND_MANAGER)
                  for n in range(20)]
        async with httpx.AsyncClient(timeout=10) as client:
            statuses = await asyncio.gather(*(send(client, urls[n % 2], b) for n, b in enumerate(bodies)))
            assert statuses == [200] * 20
            await wait_until(lambda: not buttons(card_for(slack, "Ann Other")) and len(slack.responses) >= 19)
            await asyncio.sleep(1.0)  # anything still in flight would show by now
            assert len(puts(nexudus)) == 1 and record(nexudus, "founders", "ann")["Approved"] is True
            assert slack.call_count("chat.update") == 1
            assert len(slack.responses) == 19  # every other click was told, privately, that nothing changed
            decided = card_for(slack, "Ann Other")
            assert "was approved for" in text(decided)
            assert f"<@{MANAGER}>" in text(decided) or f"<@{SECOND_MANAGER}>" in text(decided)

            # The same click delivered again, to each process: nothing changes.
            for url in urls:
                assert await send(client, url, bodies[0]) == 200
            await wait_until(lambda: len(slack.responses) >= 21)
            # ...and a non-manager's click on another card changes nothing either.
            pending(nexudus, "figma", "ada")
            await sync(nexudus, slack)
            ada = card_for(slack, "Ada Lovelace")
            assert await send(client, urls[0], click_body(slack, ada, "approval_approve", OUTSIDER)) == 200
            await wait_until(lambda: len(slack.responses) >= 22)
            await asyncio.sleep(0.5)
    assert len(puts(nexudus)) == 1 and slack.call_count("chat.update") == 1
    assert "Only course managers" in str(slack.responses[-1])
    assert buttons(card_for(slack, "Ada Lovelace"))


async def completed_syncs(redis: aioredis.Redis, n: int, within: float = 20.0) -> None:
    """Wait until the approval sync has run to its end `n` more times, in any worker (each run
    stamps SYNC_LAST): what a worker would post twice, it would have posted by then."""
    deadline = time.monotonic() + within
    last = await redis.get(approval_keys.SYNC_LAST())
    while n > 0:
        assert time.monotonic() < deadline, "the sync did not run"
        await asyncio.sleep(0.05)
        stamp = await redis.get(approval_keys.SYNC_LAST())
        if stamp is not None and stamp != last:
            n, last = n - 1, stamp


async def test_restarted_workers_post_no_duplicate_cards_even_after_redis_is_flushed(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    for person in ("ada", "joann", "grace"):
        pending(nexudus, "figma", person)
    env = environment(nexudus, slack, COURSEBOT_SYNC_SECONDS="1")
    with processes([["worker"], ["worker"]], env, tmp_path):  # two workers at once
        await wait_until(lambda: len(cards(slack)) == 4)
        await completed_syncs(redis_client, 3)
    assert len(cards(slack)) == 4

    with processes([["worker"]], env, tmp_path):  # a restart
        pending(nexudus, "onboarding", "eve")
        await wait_until(lambda: len(cards(slack)) == 5)
        await completed_syncs(redis_client, 2)
    assert len(cards(slack)) == 5

    await redis_client.flushdb()  # Redis loses everything
    looked = slack.call_count("conversations.history")
    with processes([["worker"]], env, tmp_path):
        await wait_until(lambda: slack.call_count("conversations.history") > looked)
        await completed_syncs(redis_client, 2)
        pending(nexudus, "figma", "ann")
        await wait_until(lambda: len(cards(slack)) == 6)
        await completed_syncs(redis_client, 1)
    assert len(cards(slack)) == 6 and slack.call_count("chat.postMessage") == 6
    assert len({c["metadata"]["event_payload"]["request_id"] for c in cards(slack)}) == 6
