"""How fast do waiting enrolments reach Slack as cards, within Slack's limits, and is each decided exactly once?

The Slack stand-in enforces Slack's per-channel posting limit (chat.postMessage: 1 message a
second per channel after a burst of 5; HTTP 429 `ratelimited` with Retry-After past it).

1. A local Nexudus and a local Slack run in this process; `coursebot worker` runs as a child
   process with COURSEBOT_SYNC_SECONDS=1 (a realistic small interval; the default is 60).
   --enrolments enrolments that need approval appear at random moments over --spread seconds
   (one every two seconds on average; a channel takes about one a second); for each, the time
   from its creation to its card arriving in the Slack stand-in is measured.
2. Burst: --burst more waiting enrolments appear at once. Printed: when all are listed (by
   `/course pending` and on Home: the sync has recorded them), when the summary line is in the
   channel, when every card is; the 429 `ratelimited` answers the bot received, and the most
   messages the channel got in any 10 s.
3. With the worker stopped, the sync is run --polls more times with nothing new on the
   platform, counting the platform requests of each poll (the target is one).
4. Two `coursebot serve` processes get 20 concurrent signed Approve clicks on each of
   --decisions cards (10 each); the platform writes per decision are counted (must be 1).

    .venv/bin/python -m bench.approval_latency [--enrolments 30] [--spread 60] [--burst 200] [--decisions 10]

Uses Redis db 8 on 127.0.0.1:6379 (flushed at start).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from dataclasses import dataclass
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
        self.summaries: list[float] = []
        self.lock = threading.Lock()
        ws.subscribe(self.on_event)

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        meta = payload.get("metadata") or {}
        if kind == "message" and meta.get("event_type") == "coursebot_post" and "cards follow" in str(payload):
            with self.lock:
                self.summaries.append(time.monotonic())
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
    cards = [m for m in ws.messages(APPROVALS)
             if (m.get("metadata") or {}).get("event_type") == "coursebot_request"][:count]
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


@dataclass
class Burst:
    count: int
    listed: float  # s until every request is an open request in Redis (/course pending, Home)
    summary: float | None  # s until the "N new requests are waiting" line is in the channel
    every_card: float  # s until the last card is in the channel
    ratelimited: int  # 429 answers the bot got meanwhile
    most_in_10s: int  # the most messages the channel got in any 10 s meanwhile


async def burst(ws: SlackWorkspace, clock: CardClock, fake: NexudusFake, course_id: int,
                people: list[dict[str, Any]]) -> Burst:
    """All at once: one waiting enrolment per person, created in the same instant."""
    store = redis.Redis.from_url(REDIS_URL)
    open_before = store.zcard("coursebot:requests:open")
    limited_before, since = ws.ratelimited, ws.now()
    with clock.lock:
        summaries_before = len(clock.summaries)
    started = time.monotonic()
    ids = [str(fake.add_enrolment(course_id, person["Id"], approved=False)["Id"]) for person in people]
    await wait_for(lambda: store.zcard("coursebot:requests:open") >= open_before + len(ids), 60, "the requests")
    listed = time.monotonic() - started
    await wait_for(lambda: all(i in clock.arrived for i in ids), 60 + 3 * len(ids), "every card of the burst")
    with clock.lock:
        every_card = max(clock.arrived[i] for i in ids) - started
        summary = clock.summaries[summaries_before] - started if len(clock.summaries) > summaries_before else None
    return Burst(len(ids), listed, summary, every_card, ws.ratelimited - limited_before,
                 ws.most_in_window(10.0, since=since))


async def run(enrolments: int, spread: float, bursting: int, polls: int, decided: int) -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()
    fake = NexudusFake()
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    course = fake.add_course("Founders Circle", visibility=3, business_id=business["Id"], host_id=host["Id"])
    people = [fake.add_coworker(f"Member {n}", f"m{n}@example.com", company_name="Bench & Co")
              for n in range(enrolments + bursting)]
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
            created = await appear(fake, course["Id"], people[:enrolments], spread)
            await wait_for(lambda: len(clock.arrived) >= enrolments, 60, "every card")
            burst_figures = await burst(ws, clock, fake, course["Id"], people[enrolments:])
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
    b = burst_figures
    summary = f"{b.summary:.1f} s" if b.summary is not None else "none posted"
    print(f"burst: {b.count} waiting enrolments appear at once; the Slack stand-in allows 1 message/s per channel "
          "after a burst of 5 and answers 429 ratelimited past it")
    print(f"  listed by /course pending and Home    after {b.listed:.1f} s")
    print(f"  summary line in the channel           after {summary}")
    messages = b.count + (1 if b.summary is not None else 0)
    print(f"  every card in the channel             after {b.every_card:.1f} s  ({messages} messages: at Slack's "
          f"pace {messages - 5} s at least)")
    print(f"  ratelimited answers received          {b.ratelimited}  (goal: at most 3)")
    print(f"  most messages in any 10 s             {b.most_in_10s}  (the stand-in takes at most 15)")
    print(f"  platform requests per idle poll       {reads}  (target: 1 each)")
    print(f"  platform writes per decision          {writes}  (20 concurrent clicks on each card, across "
          "two `coursebot serve`; must be exactly 1)")
    print(f"  click to card showing the decision    {fmt(decide_times)}")
    ok = all(r == 1 for r in reads) and all(w == 1 for w in writes) and b.ratelimited <= 3
    print("targets met" if ok else "targets NOT met")
    if not ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrolments", type=int, default=30)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the enrolments appear")
    parser.add_argument("--burst", type=int, default=200, help="waiting enrolments that then appear at once")
    parser.add_argument("--polls", type=int, default=5, help="idle polls to count the platform reads of")
    parser.add_argument("--decisions", type=int, default=10, help="cards clicked 20 times each")
    args = parser.parse_args()
    asyncio.run(run(args.enrolments, args.spread, args.burst, args.polls, args.decisions))


if __name__ == "__main__":
    main()
