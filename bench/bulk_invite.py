"""How close does a bulk invite come to the platform's limit, without ever going over it?

Nexudus: 300 members into a local Nexudus limited to 600 writes a minute (the bot's
NEXUDUS_WRITES_PER_MINUTE is the same 600), run by real `coursebot worker` processes sharing one
Redis: once with one worker (one job of 300), once with two workers (two jobs of 150, one each,
queued together: they share the one budget through Redis). Prints the wall time from queueing to
the last report over the ideal (members ÷ limit = 30 s; goal ≤ 1.05), the platform's throttled
answers (goal 0) and the most writes the platform saw in any 1 s and any 60 s.

MeltingSpot: 2,000 members into a local MeltingSpot limited to 100 requests per 10 s (the bot's
budget too), one worker: requests made and time, for resolving the people and for the job.

Every server runs in its own process; the bench itself only plans and queues (as `serve` would).

    .venv/bin/python -m bench.bulk_invite [--members 300] [--spot-members 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from bench._support import ChildServer
from bot.bulk.service import load_record
from bot.core.config import Settings
from bot.core.grammar import Ref, RefKind
from bot.runtime import Runtime
from handlers.bulk import start_job

REDIS_URL = "redis://127.0.0.1:6379/7"
TOKEN = "xoxb-bench"
MANAGER = "U0MANAGER"
CHANNEL = "C0COHORT"
WRITES_PER_MINUTE = 600
SPOT_PER_10S = 100
SPOT_KEY = "ms_bench_key"


# ---- the servers (module-level builders: they run in child processes) -----------------------

class _WithStats:
    """The fake's ASGI app, plus GET /_bench/stats with what the fake counted."""

    def __init__(self, app: Any, stats: Any) -> None:
        self.app, self.stats = app, stats

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/stats":
            from starlette.responses import JSONResponse

            await JSONResponse(self.stats())(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_slack(members: int, prefix: str) -> Any:
    from devtools.slack_stub import SlackWorkspace, create_app

    ws = SlackWorkspace(TOKEN)
    ws.add_user(MANAGER, "manager", "manager@example.com")
    users = []
    for n in range(members):
        users.append(f"U{prefix.upper()}{n:05d}")
        ws.add_user(users[-1], f"{prefix}{n}", f"{prefix}{n:05d}@cohort.example")
    ws.add_channel(CHANNEL, "cohort", users)
    ws.add_channel("C0HALF1", "half-1", users[: members // 2])
    ws.add_channel("C0HALF2", "half-2", users[members // 2:])
    return create_app(ws)


def build_nexudus(members: int) -> Any:
    from devtools.fakes.nexudus import NexudusFake

    fake = NexudusFake(writes_per_minute=WRITES_PER_MINUTE)
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    for title in ("Onboarding", "Onboarding B"):
        fake.add_course(title, visibility=1, business_id=business["Id"], host_id=host["Id"])
    for n in range(members):
        fake.add_coworker(f"Person {n}", f"p{n:05d}@cohort.example")

    def stats() -> dict[str, Any]:
        with fake.lock:
            return {"throttled": fake.throttled, "write_times": list(fake.write_times),
                    "enrolments": len(fake.coursemembers), "requests": len(fake.requests)}

    return _WithStats(fake.app, stats)


def build_spot(members: int) -> Any:
    from devtools.fakes.meltingspot import MeltingSpotFake

    fake = MeltingSpotFake(SPOT_KEY, requests_per_10s=SPOT_PER_10S)
    fake.add_course("Onboarding")
    fake.seed_members(members, domain="cohort.example", prefix="s")

    def stats() -> dict[str, Any]:
        with fake.lock:
            kinds = Counter(f"{m} {re.sub(r'/[0-9a-f-]{36}', '/{id}', p)}" for m, p, _ in fake.requests)
            return {"throttled": fake.throttled, "requests": len(fake.requests), "kinds": dict(kinds),
                    "participants": len(fake.participants)}

    return _WithStats(fake.app, stats)


# ---- workers and jobs ------------------------------------------------------------------------

class Workers:
    """`count` real `coursebot worker` processes, each taking one job at a time."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self.count, self.env, self.logs = count, env, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        for n in range(self.count):
            log = self.logs / f"worker-{n}-{time.monotonic_ns()}.log"
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "worker", "--concurrency", "1"], cwd=self.logs,
                env={**os.environ, **self.env, "LOG_LEVEL": "INFO"}, stdout=subprocess.DEVNULL,
                stderr=log.open("wb")))
            deadline = time.monotonic() + 30
            while "Worker starting" not in log.read_text(errors="replace"):
                if time.monotonic() > deadline or self.processes[-1].poll() is not None:
                    raise RuntimeError(f"worker did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def settings_for(env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {key.lower(): value for key, value in env.items()}
    for secret in ("slack_bot_token", "nexudus_password", "meltingspot_api_key"):
        if secret in values:
            values[secret] = SecretStr(values[secret])
    values["slack_signing_secret"] = SecretStr("unused")
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def wait_done(redis: aioredis.Redis, job_ids: list[str], limit: float = 600) -> float:
    deadline = time.monotonic() + limit
    while True:
        records = [await load_record(redis, job_id) for job_id in job_ids]
        if all(r is not None and r.status.finished and r.reported for r in records):
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs did not finish: {records}")
        await asyncio.sleep(0.05)


async def stats(url: str) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient() as client:
        return dict((await client.get(url + "/_bench/stats")).json())


def most_in_any(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def fresh_redis() -> aioredis.Redis:
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    return redis


# ---- the scenarios ---------------------------------------------------------------------------

async def nexudus_run(members: int, workers: int, logs: Path) -> dict[str, Any]:
    with ChildServer(functools.partial(build_slack, members, "p")) as slack, \
            ChildServer(functools.partial(build_nexudus, members)) as nexudus:
        env = {"REDIS_URL": REDIS_URL, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": nexudus.url,
               "NEXUDUS_USERNAME": "api@example.com", "NEXUDUS_PASSWORD": "secret",
               "NEXUDUS_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE), "SLACK_BOT_TOKEN": TOKEN,
               "SLACK_API_URL": slack.url + "/api/", "COURSEBOT_MANAGERS": MANAGER}
        redis = await fresh_redis()
        rt = Runtime.create(settings_for(env))
        try:
            with Workers(workers, env, logs):
                if workers == 1:
                    planned = [("Onboarding", CHANNEL)]
                else:
                    planned = [("Onboarding", "C0HALF1"), ("Onboarding B", "C0HALF2")]
                plans = []
                for course, channel in planned:  # resolving people is not the job: not timed
                    plan = await rt.bulk.plan(MANAGER, "invite", course, [Ref(RefKind.CHANNEL, channel)])
                    plans.append(await rt.bulk.claim(MANAGER, plan.record.id))
                started = time.perf_counter()
                for record in plans:
                    await start_job(rt, record)
                finished = await wait_done(redis, [r.id for r in plans])
            counted = await stats(nexudus.url)
        finally:
            await rt.aclose()
            await redis.aclose()
    wall = finished - started
    ideal = members / (WRITES_PER_MINUTE / 60)
    return {"workers": workers, "wall": wall, "ideal": ideal, "ratio": wall / ideal,
            "throttled": counted["throttled"], "enrolments": counted["enrolments"],
            "max_1s": most_in_any(counted["write_times"], 1.0),
            "max_60s": most_in_any(counted["write_times"], 60.0)}


async def meltingspot_run(members: int, logs: Path) -> dict[str, Any]:
    with ChildServer(functools.partial(build_slack, members, "s")) as slack, \
            ChildServer(functools.partial(build_spot, members)) as spot:
        env = {"REDIS_URL": REDIS_URL, "COURSE_PLATFORM": "meltingspot", "MELTINGSPOT_BASE_URL": spot.url,
               "MELTINGSPOT_API_KEY": SPOT_KEY, "MELTINGSPOT_REQUESTS_PER_10S": str(SPOT_PER_10S),
               "SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.url + "/api/", "COURSEBOT_MANAGERS": MANAGER}
        redis = await fresh_redis()
        rt = Runtime.create(settings_for(env))
        try:
            with Workers(1, env, logs):
                planning = time.perf_counter()
                plan = await rt.bulk.plan(MANAGER, "invite", "Onboarding", [Ref(RefKind.CHANNEL, CHANNEL)])
                record = await rt.bulk.claim(MANAGER, plan.record.id)
                planned = await stats(spot.url)
                started = time.perf_counter()
                await start_job(rt, record)
                finished = await wait_done(redis, [record.id])
            counted = await stats(spot.url)
        finally:
            await rt.aclose()
            await redis.aclose()
    job_kinds = Counter(counted["kinds"])
    job_kinds.subtract(planned["kinds"])
    return {"members": members, "plan_seconds": started - planning, "plan_requests": planned["requests"],
            "job_seconds": finished - started, "job_requests": counted["requests"] - planned["requests"],
            "job_kinds": {k: v for k, v in job_kinds.items() if v}, "throttled": counted["throttled"],
            "participants": counted["participants"]}


async def run(members: int, spot_members: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as tmp:
        logs = Path(tmp)
        print(f"Nexudus: {members} members, platform limit and bot budget {WRITES_PER_MINUTE} writes/min "
              f"(ideal {members / (WRITES_PER_MINUTE / 60):.1f} s); real `coursebot worker` processes, one Redis")
        for workers in (1, 2):
            r = await nexudus_run(members, workers, logs)
            jobs = "1 job of 300" if workers == 1 else "2 jobs of 150 at once"
            print(f"  {workers} worker{'s' if workers > 1 else ' '} ({jobs:<22}) wall {r['wall']:6.2f} s  "
                  f"wall/ideal {r['ratio']:.3f}  throttled {r['throttled']}  enrolments {r['enrolments']}  "
                  f"most writes seen in 1 s: {r['max_1s']}, in 60 s: {r['max_60s']}")
        print(f"MeltingSpot: {spot_members} members, platform limit and bot budget {SPOT_PER_10S} requests/10 s")
        m = await meltingspot_run(spot_members, logs)
        print(f"  resolving the people: {m['plan_requests']} requests, {m['plan_seconds']:.2f} s")
        print(f"  the job: {m['job_requests']} requests, {m['job_seconds']:.2f} s  "
              f"({json.dumps(m['job_kinds'])})")
        print(f"  participants {m['participants']}, throttled {m['throttled']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--spot-members", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.spot_members))


if __name__ == "__main__":
    main()
