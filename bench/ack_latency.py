"""How fast does `coursebot serve` acknowledge a slash command while the platform is slow?

Sends signed `/course status "Founders Circle"` requests, 50 at a time, to a real
`coursebot serve` whose Nexudus answers every call after 2 s, and in alternating rounds
to a bare Bolt AsyncApp that only acks (the baseline), served the same way. Before
that, the bench's own client is measured against a bare HTTP endpoint, so its overhead
is known. Prints p50/p99 acknowledgement latency and the ratio to the baseline.

    .venv/bin/python -m bench.ack_latency [--requests 600] [--rounds 3] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from bench._support import ChildServer, Command, free_port, percentile
from devtools import requests as slack_requests

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
REDIS_URL = "redis://127.0.0.1:6379/8"


# ---- the servers (module-level builders: they run in child processes) ------------------

def build_slack() -> Any:
    from devtools.slack_stub import SlackWorkspace, create_app

    ws = SlackWorkspace(TOKEN)
    ws.add_user("U0MANAGER", "manager", "manager@example.com")
    return create_app(ws)


def build_nexudus() -> Any:
    from devtools.fakes.nexudus import NexudusFake

    fake = NexudusFake(delay=2.0)
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    course = fake.add_course("Founders Circle", visibility=3, business_id=business["Id"], host_id=host["Id"])
    for n in range(20):
        person = fake.add_coworker(f"Member {n}", f"m{n}@example.com")
        fake.add_enrolment(course["Id"], person["Id"], approved=n % 3 != 0)
    return fake.app


def build_floor() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def ok(request: Any) -> Response:
        await request.body()
        return Response(b"")

    return Starlette(routes=[Route("/slack/events", ok, methods=["POST"])])


# ---- the client -----------------------------------------------------------------------------

async def measure(url: str, count: int, concurrency: int, response_url: str) -> list[float]:
    """Latency of each of `count` signed requests, `concurrency` in flight at once."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                body = slack_requests.slash_command('status "Founders Circle"', user_id="U0MANAGER",
                                                    channel_id="C0GENERAL", response_url=response_url)
                headers = slack_requests.signed_headers(SECRET, body)
                started = time.perf_counter()
                async with session.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return latencies


def line(name: str, values: list[float]) -> str:
    return (f"{name:<26} n={len(values):<5} p50={percentile(values, 50) * 1000:7.1f} ms   "
            f"p99={percentile(values, 99) * 1000:7.1f} ms   max={max(values) * 1000:7.1f} ms")


async def run(requests: int, rounds: int, concurrency: int) -> None:
    with ChildServer(build_slack) as slack, ChildServer(build_nexudus) as nexudus, ChildServer(build_floor) as floor:
        response_url = f"{slack.url}/respond/bench"  # the stub answers 404 for an unknown id; the bot only logs it
        common = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url + "/api/",
                  "REDIS_URL": REDIS_URL, "COURSEBOT_MANAGERS": "U0MANAGER", "LOG_LEVEL": "ERROR"}
        bot_port, bare_port = free_port(), free_port()
        bot_env = {**common, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": nexudus.url,
                   "NEXUDUS_USERNAME": "api@example.com", "NEXUDUS_PASSWORD": "secret", "PORT": str(bot_port)}
        with Command(["-m", "bot.cli", "serve"], bot_env, bot_port), \
                Command(["-m", "bench.bare_bolt", str(bare_port)], common, bare_port):
            bot_url = f"http://127.0.0.1:{bot_port}/slack/events"
            bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
            for url in (bot_url, bare_url, floor.url + "/slack/events"):  # warm up (auth.test, imports, pools)
                await measure(url, concurrency, concurrency, response_url)
            floor_times = await measure(floor.url + "/slack/events", requests, concurrency, response_url)
            bot_times: list[float] = []
            bare_times: list[float] = []
            for _ in range(rounds):  # alternate, so drift on a busy machine hits both alike
                bare_times += await measure(bare_url, requests, concurrency, response_url)
                bot_times += await measure(bot_url, requests, concurrency, response_url)
                await asyncio.sleep(2.5)  # let the slow platform calls of this round drain
    print(f"ack latency, {concurrency} concurrent signed /course status requests; the platform answers after 2 s")
    print(line("client floor (bare HTTP)", floor_times))
    print(line("bare Bolt AsyncApp (ack)", bare_times))
    print(line("coursebot serve", bot_times))
    p99_ratio = percentile(bot_times, 99) / percentile(bare_times, 99)
    p50_ratio = percentile(bot_times, 50) / percentile(bare_times, 50)
    print(f"ratio to bare Bolt: p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f}  (target: p99 < 100 ms, ratio <= 1.5)")
    ok = percentile(bot_times, 99) < 0.100 and p99_ratio <= 1.5
    print("target met" if ok else "target NOT met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="requests per round and target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
