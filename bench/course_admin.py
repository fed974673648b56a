"""What `/course lessons`, `/course new` and bulk `/course complete` cost, against a Nexudus with network delay.

1. lessons: a course of N lessons. Nexudus list records omit the unlock and completion types, so
   the bot fills them in with batch GETs (`?id=[..]`, 100 a time); compared with one GET per lesson.
2. new: signed form submissions to the bot; how fast each is acknowledged (Slack allows 3 s), and
   that each made exactly one course. Then one submission to a Nexudus so slow that creating takes
   longer than the ack may: the bot must still ack in time (closing the form on a note) and announce later.
3. bulk completion: M enrolled members of a #channel, one lesson, the write budget at W/minute:
   how long the job takes, its write rate against the budget, and how often Nexudus throttled.

The fakes run in child processes; the bot runs here behind the in-process Slack stand-in.

    .venv/bin/python -m bench.course_admin [--lessons 300] [--delay 0.05] [--forms 20] [--members 120] \\
        [--writes-per-minute 600]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import time
from typing import Any

import httpx
from pydantic import SecretStr

from bench._support import ChildServer, percentile
from bot.core import store
from bot.core.config import Platform, Settings
from bot.core.pacing import Budget, make_storage, smooth_per_minute
from bot.courses import render as view
from bot.platforms.nexudus import LESSONS, NexudusPlatform
from devtools import requests as slack_requests
from devtools.servers import ServerThread
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace, create_app

TOKEN = "xoxb-bench"
MANAGER = "U0MANAGER"
CHANNEL = "C0WORKSHOP"


# ---- the fake Nexudus (module-level builder: it runs in a child process, set up by env vars) ------

def build_nexudus() -> Any:
    from devtools.fakes.nexudus import NexudusFake

    env = os.environ
    writes = int(env.get("BENCH_WRITES_PER_MINUTE", "0")) or None
    fake = NexudusFake(delay=float(env.get("BENCH_DELAY", "0")), writes_per_minute=writes)
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Hanna Host", "host@example.com")
    fake.add_tariff("Workshop pass", business["Id"], price=49.0)
    course = fake.add_course("Makerspace Safety", visibility=3, business_id=business["Id"], host_id=host["Id"])
    lessons = int(env.get("BENCH_LESSONS", "0"))
    sections = [fake.add_section(course["Id"], f"Part {n + 1}", display_order=n) for n in range(max(1, lessons // 10))]
    for n in range(lessons):
        fake.add_lesson(course["Id"], f"Lesson {n + 1}", display_order=n, section_id=sections[n // 10]["Id"],
                        unlock_type=1 + n % 3, completion_type=1 + n % 4)
    if not lessons:
        fake.add_lesson(course["Id"], "Laser cutter", display_order=1)
    for n in range(int(env.get("BENCH_MEMBERS", "0"))):
        person = fake.add_coworker(f"Member {n}", f"m{n}@example.com")
        fake.add_enrolment(course["Id"], person["Id"])
    return fake.app


class _Nexudus(ChildServer):
    def __init__(self, **env: object) -> None:
        self.env = {f"BENCH_{k.upper()}": str(v) for k, v in env.items()}
        super().__init__(build_nexudus)

    def __enter__(self) -> _Nexudus:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # the spawned child reads them at start
        try:
            super().__enter__()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self


def settings(url: str, writes_per_minute: int = 600) -> Settings:
    return Settings(_env_file=None, course_platform=Platform.NEXUDUS, nexudus_base_url=url,  # type: ignore[call-arg]
                    nexudus_username="api@example.com", nexudus_password=SecretStr("secret"),
                    nexudus_writes_per_minute=writes_per_minute, nexudus_writes_per_day=100_000,
                    coursebot_managers=[MANAGER], slack_bot_token=SecretStr(TOKEN),
                    slack_signing_secret=SecretStr("unused"))


def workspace(members: int = 0) -> SlackWorkspace:
    ws = SlackWorkspace(TOKEN)
    ws.add_user(MANAGER, "manager", "manager@example.com", real_name="Mia Manager")
    people = []
    for n in range(members):
        ws.add_user(f"U{n:06d}", f"m{n}", f"m{n}@example.com", real_name=f"Member {n}")
        people.append(f"U{n:06d}")
    ws.add_channel("C0GENERAL", "general", [MANAGER])
    ws.add_channel(CHANNEL, "workshop", [MANAGER, *people])
    return ws


async def settle() -> None:
    for _ in range(2000):
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not others:
            return
        await asyncio.wait(others, timeout=0.1)


async def deliver(shell: Shell, payload: dict[str, Any]) -> httpx.Response:
    body = slack_requests.interaction(payload)
    return await shell.http.post("/slack/events", content=body,
                                 headers=slack_requests.signed_headers(shell.secret, body))


# ---- 1. lessons -----------------------------------------------------------------------------

async def bench_lessons(count: int, delay: float) -> None:
    with _Nexudus(lessons=count, delay=delay) as nexudus:
        platform = NexudusPlatform(nexudus.url, "api@example.com", "secret",
                                   Budget(make_storage(None), "bench", smooth_per_minute(600)))
        requests: list[str] = []

        async def count_request(request: httpx.Request) -> None:
            if request.url.path != "/api/token":
                requests.append(request.url.path)

        platform._client.event_hooks["request"].append(count_request)
        course_id = (await platform.list_courses())[0].id
        requests.clear()
        started = time.perf_counter()
        lessons = await platform.lessons_with_types(course_id)
        batched = time.perf_counter() - started
        batched_requests = len(requests)
        assert all(le.unlock_type and le.completion_type for le in lessons)
        requests.clear()
        started = time.perf_counter()
        listed = await platform.list_lessons(course_id)
        await asyncio.gather(*(platform._get_raw(LESSONS, le.id) for le in listed))
        naive = time.perf_counter() - started
        naive_requests = len(requests)
        await platform.aclose()
    print(f"1. /course lessons, {count} lessons, Nexudus answers each request after {delay * 1000:.0f} ms")
    print(f"   batch GETs (the bot):  {batched_requests:4d} requests  {batched:6.2f} s")
    print(f"   one GET per lesson:    {naive_requests:4d} requests  {naive:6.2f} s  (8 in flight)")


# ---- 2. /course new ----------------------------------------------------------------------------

def values(form: dict[str, Any], title: str) -> dict[str, Any]:
    blocks = {b.get("block_id"): b for b in form["blocks"]}
    location = blocks[view.LOCATION]["element"]["initial_option"]

    def put(block: str, value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return block, {view.action(block): value}

    host = {"text": {"type": "plain_text", "text": "Hanna Host"}, "value": "1"}
    private = {"text": {"type": "plain_text", "text": "Private"}, "value": "Private"}
    return dict([put(view.TITLE, {"type": "plain_text_input", "value": title}),
                 put(view.LOCATION, {"type": "static_select", "selected_option": location}),
                 put(view.HOST, {"type": "external_select", "selected_option": host}),
                 put(view.ORDER, {"type": "number_input", "value": "1"}),
                 put(view.VISIBILITY, {"type": "static_select", "selected_option": private}),
                 put(view.OPTIONS, {"type": "checkboxes", "selected_options": []})])


async def submit_forms(shell: Shell, count: int, prefix: str) -> tuple[list[float], list[str]]:
    acks: list[float] = []
    actions: list[str] = []
    for n in range(count):
        await shell.command("new")
        form = shell.ws.views[-1]["view"]
        payload = slack_requests.view_submission(user_id=MANAGER, view=form, values=values(form, f"{prefix} {n}"))
        started = time.perf_counter()
        response = await deliver(shell, payload)
        acks.append(time.perf_counter() - started)
        actions.append((response.json() if response.content else {}).get("response_action", "close"))
        await settle()
    return acks, actions


async def bench_new(forms: int, delay: float) -> None:
    ws = workspace()
    with ServerThread(create_app(ws)) as slack_url, _Nexudus(delay=delay) as nexudus:
        ws.base_url = slack_url
        async with Shell(settings(nexudus.url), as_user=MANAGER, workspace=ws) as shell:
            await submit_forms(shell, 1, "Warm-up")
            acks, actions = await submit_forms(shell, forms, "Cohort")
            created = [c for c in await shell.runtime.platform.list_courses() if c.title.startswith("Cohort ")]
    print(f"2. /course new, {forms} submissions, Nexudus answers each request after {delay * 1000:.0f} ms")
    print(f"   ack  p50={percentile(acks, 50) * 1000:6.0f} ms  p99={percentile(acks, 99) * 1000:6.0f} ms  "
          f"max={max(acks) * 1000:6.0f} ms  (Slack allows 3000)   responses: {sorted(set(actions))}")
    print(f"   courses created: {len(created)} for {forms} submissions")

    slow = 1.2
    store._EMBEDDED_SERVER = None  # a fresh embedded store: the new stand-in Slack numbers its views from 1 again
    ws = workspace()
    with ServerThread(create_app(ws)) as slack_url, _Nexudus(delay=slow) as nexudus:
        ws.base_url = slack_url
        async with Shell(settings(nexudus.url), as_user=MANAGER, workspace=ws) as shell:
            await shell.command("new")
            form = shell.ws.views[-1]["view"]
            payload = slack_requests.view_submission(user_id=MANAGER, view=form, values=values(form, "Slow one"))
            started = time.perf_counter()
            response = await deliver(shell, payload)
            ack = time.perf_counter() - started
            action = (response.json() if response.content else {}).get("response_action", "close")
            await settle()
            announced = time.perf_counter() - started
            made = [c for c in await shell.runtime.platform.list_courses() if c.title == "Slow one"]
            told = any("Slow one" in m["text"] for m in shell.ws.ephemeral)
    print(f"   slow Nexudus ({slow * 1000:.0f} ms a request): ack after {ack * 1000:.0f} ms ({action}), "
          f"announced after {announced:.1f} s: {told}; courses created: {len(made)}")


# ---- 3. bulk completion -----------------------------------------------------------------------

class _Throttles(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "throttled" in record.getMessage():
            self.count += 1


async def bench_bulk(members: int, writes_per_minute: int) -> None:
    throttles = _Throttles()
    logging.getLogger("bot.platforms.http").addHandler(throttles)
    logging.getLogger("bot.platforms.http").setLevel(logging.INFO)
    ws = workspace(members)
    with ServerThread(create_app(ws)) as slack_url, \
            _Nexudus(members=members, writes_per_minute=writes_per_minute) as nexudus:
        ws.base_url = slack_url
        async with Shell(settings(nexudus.url, writes_per_minute), as_user=MANAGER, workspace=ws) as shell:
            out = "\n".join(await shell.command(f"complete makerspace laser <#{CHANNEL}|workshop>"))
            start = next((int(n) for n in re.findall(r"\[(\d+)\] Start", out)), None)
            started = time.perf_counter()
            if start is not None:
                await shell.press(start)
            await settle()
            elapsed = time.perf_counter() - started
            platform = shell.runtime.platform
            lesson = (await platform.list_lessons((await platform.list_courses())[0].id))[0]
            done = len(await platform.list_lesson_completions(lesson.id))
    per_second = writes_per_minute / 60
    print(f"3. bulk /course complete, {members} enrolled members of a #channel, budget {writes_per_minute} "
          f"writes/min ({per_second:.0f}/s)")
    print(f"   {done} completions in {elapsed:.1f} s from Start to report: {done / elapsed:.1f} writes/s "
          f"against a budget of {per_second:.0f}/s; Nexudus throttled {throttles.count} times")


async def run(args: argparse.Namespace) -> None:
    await bench_lessons(args.lessons, args.delay)
    await bench_new(args.forms, args.delay)
    await bench_bulk(args.members, args.writes_per_minute)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds Nexudus takes to answer each request")
    parser.add_argument("--forms", type=int, default=20)
    parser.add_argument("--members", type=int, default=120)
    parser.add_argument("--writes-per-minute", type=int, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
