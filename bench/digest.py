"""What does the daily digest cost a big Nexudus tenant, per morning?

A local Nexudus (devtools/fakes/nexudus.py, in its own process) holds 20,000 enrolments and
200,000 completed lessons spread over a year, 40 courses, a few requests waiting for
approval. 500 of those records changed today (100 new enrolments, 400 completed lessons).

1. "yesterday": the first digest ever, with time set back a day. Cold: it builds the progress
   ledger from every completed lesson (once), and counts the 14 chart days.
2. today's 500 changes are added;
3. "today": the next morning's digest, posted to a local Slack (chart upload included).
   This is the steady state the goal is about: requests <= 2 x ceil(changes / 100) + 10.

Requests are counted by the Nexudus process (every HTTP request it received, the token
request included). Peak memory is Python's traced heap during each run (tracemalloc, which
also slows the run a little), plus the whole process's maximum RSS.

    .venv/bin/python -m bench.digest [--enrolments 20000] [--completions 200000] [--today 500]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench._support import ChildServer
from bot.digest import keys as digest_keys

TOKEN = "xoxb-bench"
CHANNEL = "C0DIGEST"
ZONE = "Europe/Paris"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


# ---- the servers (module-level builders: they run in child processes) ------------------------------

def build_slack() -> Any:
    from devtools.slack_stub import SlackWorkspace, create_app

    ws = SlackWorkspace(TOKEN)
    ws.add_user("U0MANAGER", "manager", "manager@example.com")
    ws.add_channel(CHANNEL, "course-digest", ["U0MANAGER"])
    return create_app(ws)


def build_nexudus(now_iso: str, enrolments: int, completions: int, today: int) -> Any:
    """The tenant as of the start of today (local); POST /__bench/today adds today's changes."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from devtools.fakes.nexudus import NexudusFake

    rng = random.Random(42)
    now = datetime.fromisoformat(now_iso)
    midnight = datetime.combine(now.astimezone(ZoneInfo(ZONE)).date(), datetime.min.time(),
                                tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    fake = NexudusFake(page_size_max=1000)
    hub = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    courses = [fake.add_course(f"Course {n:02d}", 3 if n % 4 == 0 else 1, hub["Id"], host["Id"]) for n in range(40)]
    lessons = {c["Id"]: [fake.add_lesson(c["Id"], f"Lesson {k}", display_order=k)["Id"]
                         for k in range(1, rng.randint(8, 15) + 1)] for c in courses}
    new_today_enrolments = min(today // 5, enrolments)
    new_today_completions = today - new_today_enrolments
    history_enrolments = enrolments - new_today_enrolments
    history_completions = completions - new_today_completions

    members: list[tuple[dict[str, Any], list[int], datetime]] = []  # (enrolment, lessons, created)
    for n in range(history_enrolments):
        person = fake.add_coworker(f"Member {n}", f"m{n}@example.com")
        course = courses[n % len(courses)]
        created = midnight - timedelta(days=365) + timedelta(seconds=rng.uniform(0, 365 * 86400 - 3600))
        pending = created > midnight - timedelta(days=20) and rng.random() < 0.05
        enrolment = fake.add_enrolment(course["Id"], person["Id"], approved=not pending, created_on=created)
        members.append((enrolment, lessons[course["Id"]], created))
    # How many lessons each has done (a prefix of its course), adding up to the history's total exactly;
    # recent enrolments have done less, and some of them nothing yet.
    done: list[int] = []
    idle: set[int] = set()
    for n, (enrolment, course_lessons, created) in enumerate(members):
        if not enrolment["Approved"] or ((midnight - created).days < 30 and rng.random() < 0.3):
            idle.add(n)
            done.append(0)
        else:
            done.append(min(len(course_lessons), max(0, round(rng.gauss(history_completions / len(members), 3)))))
    diff, i = history_completions - sum(done), 0
    while diff:
        j = i % len(members)
        if j in idle:
            pass
        elif diff > 0 and done[j] < len(members[j][1]):
            done[j] += 1
            diff -= 1
        elif diff < 0 and done[j] > 0:
            done[j] -= 1
            diff += 1
        i += 1
    for (enrolment, course_lessons, created), count in zip(members, done, strict=True):
        span = max(60.0, min((midnight - created).total_seconds() - 60, 60 * 86400.0))  # a pace of weeks
        moments = sorted(created + timedelta(seconds=rng.uniform(30, span)) for _ in range(count))
        for lesson, moment in zip(course_lessons, moments, strict=False):
            fake.add_completed_lesson(enrolment["Id"], lesson, created_on=moment)
    unfinished = [i for i, (m, count) in enumerate(zip(members, done, strict=True))
                  if count < len(m[1]) and i not in idle]

    def add_today() -> dict[str, int]:
        start = max(midnight, now - timedelta(hours=6))
        span = max(60.0, (now - start).total_seconds() - 60)
        for n in range(new_today_enrolments):
            person = fake.add_coworker(f"Newcomer {n}", f"new{n}@example.com")
            fake.add_enrolment(courses[n % len(courses)]["Id"], person["Id"],
                               created_on=start + timedelta(seconds=rng.uniform(0, span)))
        for i in rng.sample(unfinished, new_today_completions):
            enrolment, course_lessons, _ = members[i]
            fake.add_completed_lesson(enrolment["Id"], course_lessons[done[i]],
                                      created_on=start + timedelta(seconds=rng.uniform(0, span)))
        return {"enrolments": new_today_enrolments, "completions": new_today_completions}

    async def today_route(request: Request) -> JSONResponse:
        with fake.lock:
            return JSONResponse(add_today())

    async def requests_route(request: Request) -> JSONResponse:
        with fake.lock:
            made = [f"{method} {path}" + "".join(f" {k}" for k in sorted(params) if k.startswith(("from_", "to_")))
                    + (" pending" if "CourseMember_Approved" in params else "")
                    for method, path, params in fake.requests]
            if request.method == "POST":
                fake.reset_counters()
        return JSONResponse({"requests": made})

    return Starlette(routes=[Route("/__bench/today", today_route, methods=["POST"]),
                             Route("/__bench/requests", requests_route, methods=["GET", "POST"]),
                             Mount("/", app=fake.app)])


# ---- the measured process --------------------------------------------------------------------------

async def measured(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """The result, the wall time and the peak of Python's traced memory (MB) of `work`."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = await work()
        return result, time.perf_counter() - started, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


async def run(enrolments: int, completions: int, today: int) -> None:
    import redis.asyncio as aioredis
    import time_machine
    from pydantic import SecretStr

    from bot.core.config import Platform, Settings
    from bot.digest.sender import send_digest
    from bot.runtime import Runtime

    now = datetime.now(UTC).replace(microsecond=0)
    redis_url: str | None = REDIS_URL
    try:
        probe = aioredis.Redis.from_url(REDIS_URL)
        await probe.flushdb()  # the bench's own database
        await probe.aclose()
    except Exception:
        print(f"(no Redis at {REDIS_URL}: using the embedded store)")
        redis_url = None
    print(f"seeding a Nexudus tenant: {enrolments:,} enrolments, {completions:,} completed lessons "
          f"({today} of them today)...", flush=True)
    nexudus = ChildServer(partial(build_nexudus, now.isoformat(), enrolments, completions, today))
    with ChildServer(build_slack) as slack, _patient(nexudus) as platform_url:
        settings = Settings(_env_file=None, redis_url=redis_url, course_platform=Platform.NEXUDUS,  # type: ignore[call-arg]
                            nexudus_base_url=platform_url, nexudus_username="api@example.com",
                            nexudus_password=SecretStr("secret"), slack_api_url=slack.url + "/api/",
                            slack_bot_token=SecretStr(TOKEN), coursebot_digest_channel=CHANNEL,
                            coursebot_timezone=ZONE, coursebot_managers=["U0MANAGER"])
        async with httpx.AsyncClient(base_url=platform_url) as control:

            async def requests_made() -> list[str]:
                return list((await control.post("/__bench/requests")).json()["requests"])

            rt = Runtime.create(settings)
            try:
                await requests_made()
                with time_machine.travel(now - timedelta(days=1), tick=True):
                    cold, cold_time, cold_peak = await measured(lambda: send_digest(rt))
                cold_requests = await requests_made()
                added = (await control.post("/__bench/today")).json()
                await requests_made()
                await rt.redis.delete(digest_keys.DIGEST_CATALOG())  # a day later, the one-hour cache has expired
                warm, warm_time, warm_peak = await measured(lambda: send_digest(rt))
                warm_requests = await requests_made()
            finally:
                await rt.aclose()
    changes = added["enrolments"] + added["completions"]
    goal = 2 * math.ceil(changes / 100) + 10
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nNexudus tenant: {enrolments:,} enrolments, {completions:,} completed lessons, 40 courses; "
          f"today: {added['enrolments']} new enrolments + {added['completions']} completed lessons = {changes} changes")
    print(f"{'run':<44}{'requests':>9}{'wall time':>12}{'peak memory':>14}   (Python heap, tracemalloc on)")
    print(f"{'first digest ever (cold: builds the ledger)':<44}{len(cold_requests):>9}{cold_time:>11.2f}s"
          f"{cold_peak:>12.1f}MB   {cold.status}")
    print(f"{'next morning (steady state)':<44}{len(warm_requests):>9}{warm_time:>11.2f}s"
          f"{warm_peak:>12.1f}MB   {warm.status}")
    if warm.digest is not None:
        d = warm.digest
        print(f"  it said: {len(d.pending or [])} waiting, {d.new_count} new enrolments, {d.lessons_completed} lessons "
              f"completed, {len(d.finished)} courses finished, {d.stalled_count} stalled")
    print("  its requests: " + "; ".join(f"{n} x {what}" for what, n in Counter(warm_requests).items()))
    print(f"process max RSS: {rss:.0f} MB")
    print(f"goal (steady state): requests <= 2 x ceil({changes} / 100) + 10 = {goal}: "
          f"{'met' if len(warm_requests) <= goal else 'NOT met'} ({len(warm_requests)})")


class _patient:
    """ChildServer, waiting longer for its port: seeding 220,000 records takes a while."""

    def __init__(self, server: ChildServer) -> None:
        self.server = server

    def __enter__(self) -> str:
        from bench._support import wait_for_port

        self.server.process.start()
        wait_for_port(self.server.port, timeout=300)
        return self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrolments", type=int, default=20_000)
    parser.add_argument("--completions", type=int, default=200_000)
    parser.add_argument("--today", type=int, default=500, help="records changed today (1/5 enrolments)")
    args = parser.parse_args()
    asyncio.run(run(args.enrolments, args.completions, args.today))


if __name__ == "__main__":
    main()
