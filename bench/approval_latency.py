"""How fast do waiting enrolments reach Slack as cards, and is each decided exactly once?

1. A local Nexudus and a local Slack run in this process; `coursebot worker` runs as a child
   process with COURSEBOT_SYNC_SECONDS=1 (a realistic small interval; the default is 60).
   100 enrolments that need approval appear at random moments over --spread seconds; for
   each, the time from its creation to its card arriving in the Slack stand-in is measured.
2. With the worker stopped, the sync is run --polls more times with nothing new on the
   platform, counting the platform requests of each poll (the target is one).
3. Two `coursebot serve` processes get 20 concurrent signed Approve clicks on each of
   --decisions cards (10 each); the platform writes per decision are counted (must be 1).

    .venv/bin/python -m bench.approval_latency [--enrolments 100] [--spread 10] [--decisions 10]

Uses Redis db 8 on 127.0.0.1:6379 (flushed at start). The Slack stand-in does not rate-limit:
real Slack takes about one post per second per channel after a short burst, so a burst of 100
new requests at once takes on the order of 100 s to post there.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from typing import Any

import httpx
import redis

from bench._support import Command, free_port, percentile
from bot.core.config import Platform, Settings
from bot.runtime import Runtime
from devtools import requests as slack_requests
from devtools.fakes.nexudus import NexudusFake
from devtools.servers import ServerThread
from devtools.slack_stub import SlackWorkspace, create_app

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
REDIS_URL = "redis://127.0.0.1:6379/8"
MANAGER = "U0MANAGER"
APPROVALS = "C0APPROVALS"


class CardClock:
    """Records when each card (by enrolment id) first arrives in the Slack stand-in."""

    def __init__(self, ws: SlackWorkspace) -> None:
        self.arrived: dict[str, float] = {}
        self.decided: dict[str, float] = {}
        self.lock = threading.Lock()
        ws.subscribe(self.on_event)

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        meta = payload.get("metadata") or {}
        if meta.get("event_type") != "coursebot_request":
            return
        enrolment = str(meta["event_payload"]["enrolment_id"])
        now = time.monotonic()
        with self.lock:
            if kind == "message":
                self.arrived.setdefault(enrolment, now)
            elif kind == "update" and meta["event_payload"].get("state") == "approved":
                self.decided.setdefault(enrolment, now)


def environment(nexudus: str, slack: str, **extra: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack + "/api/",
            "REDIS_URL": REDIS_URL, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": nexudus,
            "NEXUDUS_USERNAME": "api@example.com", "NEXUDUS_PASSWORD": "secret",
            "NEXUDUS_WRITES_PER_MINUTE": "600", "COURSEBOT_MANAGERS": MANAGER,
            "COURSEBOT_APPROVALS_CHANNEL": APPROVALS, "LOG_LEVEL": "WARNING", **extra}


async def wait_for(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def fmt(values: list[float]) -> str:
    return (f"p50={percentile(values, 50) * 1000:7.0f} ms   p95={percentile(values, 95) * 1000:7.0f} ms   "
            f"max={max(values) * 1000:7.0f} ms   (n={len(values)})")


async def appear(fake: NexudusFake, course_id: int, people: list[dict[str, Any]], spread: float
                 ) -> dict[str, float]:
    """Create one waiting enrolment per person at random moments over `spread` seconds."""
    moments = sorted(random.uniform(0, spread) for _ in people)
    created: dict[str, float] = {}
    start = time.monotonic()
    for person, moment in zip(people, moments, strict=True):
        await asyncio.sleep(max(0.0, start + moment - time.monotonic()))
        record = fake.add_enrolment(course_id, person["Id"], approved=False)
        created[str(record["Id"])] = time.monotonic()
    return created


async def idle_reads(fake: NexudusFake, nexudus: str, slack: str, polls: int) -> list[int]:
    values: dict[str, Any] = {k.lower(): v for k, v in environment(nexudus, slack).items() if k != "LOG_LEVEL"}
    settings = Settings(_env_file=None, **values)
    assert settings.course_platform is Platform.NEXUDUS
    rt = Runtime.create(settings)
    counts = []
    try:
        await rt.approvals.sync()  # warm: token, connections
        for _ in range(polls):
            before = len(fake.requests)
            report = await rt.approvals.sync()
            with fake.lock:
                counts.append(sum(1 for r in fake.requests[before:] if r[1] != "/api/token"))
            assert not report.changed
    finally:
        await rt.aclose()
    return counts


async def decisions(ws: SlackWorkspace, clock: CardClock, fake: NexudusFake, urls: list[str], count: int
                    ) -> tuple[list[int], list[float]]:
    cards = [m for m in ws.messages(APPROVALS) if (m.get("metadata") or {}).get("event_type")][:count]
    writes_per_card: list[int] = []
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=40)) as client:
        for card in cards:
            enrolment = str(card["metadata"]["event_payload"]["enrolment_id"])
            [actions] = [b for b in card["blocks"] if b.get("type") == "actions"]
            approve = next(e for e in actions["elements"] if e["action_id"] == "approval_approve")
            action = {"action_id": approve["action_id"], "value": approve["value"], "block_id": actions["block_id"]}
            bodies = []
            for _ in range(20):
                payload = slack_requests.block_action(
                    user_id=MANAGER, action=action, channel_id=APPROVALS, message=card,
                    response_url=ws.new_response_url(channel=APPROVALS, message_ts=card["ts"], user=MANAGER),
                    trigger_id=ws.new_trigger_id())
                bodies.append(slack_requests.interaction(payload))
            with fake.lock:
                before = sum(1 for r in fake.requests if r[0] == "PUT")
            started = time.monotonic()
            responses = await asyncio.gather(*(
                client.post(urls[n % len(urls)] + "/slack/events", content=body,
                            headers=slack_requests.signed_headers(SECRET, body))
                for n, body in enumerate(bodies)))
            assert all(r.status_code == 200 for r in responses)
            await wait_for(lambda e=enrolment: e in clock.decided, 30, "the card to show the decision")
            latencies.append(clock.decided[enrolment] - started)
            await asyncio.sleep(0.5)  # a late second write would land by now
            with fake.lock:
                writes_per_card.append(sum(1 for r in fake.requests if r[0] == "PUT") - before)
    return writes_per_card, latencies


async def run(enrolments: int, spread: float, polls: int, decided: int) -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()
    fake = NexudusFake()
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    course = fake.add_course("Founders Circle", visibility=3, business_id=business["Id"], host_id=host["Id"])
    people = [fake.add_coworker(f"Member {n}", f"m{n}@example.com", company_name="Bench & Co")
              for n in range(enrolments)]
    ws = SlackWorkspace(TOKEN)
    ws.add_user(MANAGER, "manager", "manager@example.com")
    ws.add_channel(APPROVALS, "approvals", [MANAGER])
    clock = CardClock(ws)
    with ServerThread(fake.app) as nexudus, ServerThread(create_app(ws)) as slack:
        ws.base_url = slack
        env = environment(nexudus, slack, COURSEBOT_SYNC_SECONDS="1")
        with Command(["-m", "bot.cli", "worker"], env):
            await wait_for(lambda: redis.Redis.from_url(REDIS_URL).get("coursebot:sync:last") is not None, 30,
                           "the worker's first sync")
            created = await appear(fake, course["Id"], people, spread)
            await wait_for(lambda: len(clock.arrived) >= enrolments, 60, "every card")
        latencies = [clock.arrived[e] - t for e, t in created.items()]
        reads = await idle_reads(fake, nexudus, slack, polls)
        ports = [free_port(), free_port()]
        with Command(["-m", "bot.cli", "serve", "--port", str(ports[0])], env, ports[0]), \
                Command(["-m", "bot.cli", "serve", "--port", str(ports[1])], env, ports[1]):
            writes, decide_times = await decisions(ws, clock, fake, [f"http://127.0.0.1:{p}" for p in ports],
                                                   decided)
    print(f"approval cards: {enrolments} enrolments needing approval appeared over {spread:.0f} s on a local "
          "Nexudus; one `coursebot worker` with COURSEBOT_SYNC_SECONDS=1")
    print(f"  time until the card is in Slack      {fmt(latencies)}")
    print(f"  platform requests per idle poll       {reads}  (target: 1 each)")
    print(f"  platform writes per decision          {writes}  (20 concurrent clicks on each card, across "
          "two `coursebot serve`; must be exactly 1)")
    print(f"  click to card showing the decision    {fmt(decide_times)}")
    ok = all(r == 1 for r in reads) and all(w == 1 for w in writes)
    print("targets met" if ok else "targets NOT met")
    if not ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrolments", type=int, default=100)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which the enrolments appear")
    parser.add_argument("--polls", type=int, default=5, help="idle polls to count the platform reads of")
    parser.add_argument("--decisions", type=int, default=10, help="cards clicked 20 times each")
    args = parser.parse_args()
    asyncio.run(run(args.enrolments, args.spread, args.polls, args.decisions))


if __name__ == "__main__":
    main()
