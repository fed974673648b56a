"""How fast does `coursebot serve` acknowledge, and answer, a slash command while the platform is slow?

A real `coursebot serve` talks to a local Nexudus that answers every API call after 2 s. A bare Bolt
AsyncApp served the same way is the baseline; rounds alternate between the two, so drift on a busy
machine hits both alike. The bench's own client is first measured against a bare HTTP endpoint, so
its overhead is known (it is aiohttp, not httpx: at 50 concurrent requests httpx's AsyncClient adds
hundreds of ms by itself, encode/httpx#3215).

1. Acks: signed `/course status "Founders Circle"`, 50 in flight at once; p50/p99 until the HTTP
   answer, and the ratio to the bare app. After each round the bench waits for its answers (at
   most 5 s), so that a round's acks are not measured beside the previous round's answers.
2. Answers: 50 signed `/course status <id>` sent at once; the time from sending each until its
   final reply reaches its response URL (kept by the Slack stand-in: the bot posts to no response
   URL off Slack's host; both processes read the same monotonic clock). The baseline answers 2 s after
   its ack: one platform round trip and nothing else. The bot's first round starts with its
   platform cache empty (cold); the others are warm.
3. Platform requests of one `/course status <id>`, warm and cold, from the local Nexudus's log.

    .venv/bin/python -m bench.ack_latency [--requests 600] [--rounds 3] [--concurrency 50]
                                          [--answer-rounds 4] [--courses 1] [--skip-acks|--skip-answers]
                                          [--redis-url URL] [--bot-source DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench._support import ChildServer, Command, free_port, percentile
from devtools import requests as slack_requests

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
REDIS_URL = "redis://127.0.0.1:6379/8"
PLATFORM_DELAY = 2.0
COURSE = "Founders Circle"


# ---- the servers (module-level builders: they run in child processes) ------------------

def build_slack() -> Any:
    """The Slack stand-in, plus the bench's response URLs: `/respond/bench-…` answers 200, and notes
    when each `/respond/bench-answer-…` reply arrived (`GET /_bench/answers?prefix=`). They must be
    on Slack's host and port: the bot posts to no other response URL (it answers by DM instead)."""
    from devtools.slack_stub import SlackWorkspace, create_app

    ws = SlackWorkspace(TOKEN)
    ws.add_user("U0MANAGER", "manager", "manager@example.com")
    stub = create_app(ws)
    arrived: dict[str, tuple[float, str]] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/respond/bench"):
            stamp = time.monotonic()  # CLOCK_MONOTONIC: the same clock as the bench process's
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            key = path.removeprefix("/respond/")
            if key.startswith("bench-answer-"):
                arrived.setdefault(key, (stamp, str(json.loads(body or b"{}").get("text", ""))))
            await _reply(send, b"ok", b"text/plain")
            return
        if path == "/_bench/answers":
            prefix = dict(_query(scope)).get("prefix", "")
            found = {k: v for k, v in arrived.items() if k.startswith(prefix)}
            await _reply(send, json.dumps(found).encode(), b"application/json")
            return
        await stub(scope, receive, send)

    return app


async def _reply(send: Any, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


def build_nexudus() -> Any:
    """The slow Nexudus, plus `GET /_bench/state?since=N`: the course's id and the requests it got."""
    from devtools.fakes.nexudus import NexudusFake

    fake = NexudusFake(delay=PLATFORM_DELAY)
    business = fake.add_business("Bench Hub")
    host = fake.add_coworker("Host", "host@example.com")
    course = fake.add_course(COURSE, visibility=3, business_id=business["Id"], host_id=host["Id"])
    others = [fake.add_course(f"Workshop {n:02d}", visibility=1, business_id=business["Id"], host_id=host["Id"])
              for n in range(40)]  # a tenant with a few courses, so that a list is not the same as one course
    for other in others:
        fake.add_lesson(other["Id"], "Welcome", display_order=1)
        for _ in range(3):
            fake.add_enrolment(other["Id"], host["Id"], approved=True)
    for n, title in enumerate(("Intro", "Fundraising 101", "Hiring your first five", "Pitch night")):
        fake.add_lesson(course["Id"], title, display_order=n)
    for n in range(20):
        person = fake.add_coworker(f"Member {n}", f"m{n}@example.com")
        fake.add_enrolment(course["Id"], person["Id"], approved=n % 3 != 0)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/state":
            since = int(dict(_query(scope)).get("since", "0"))
            with fake.lock:
                state = {"course_ids": [course["Id"], *(o["Id"] for o in others)], "total": len(fake.requests),
                         "requests": [[m, p] for m, p, _ in fake.requests[since:]]}
            await _reply(send, json.dumps(state).encode(), b"application/json")
            return
        await fake.app(scope, receive, send)

    return app


def _query(scope: dict[str, Any]) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl((scope.get("query_string") or b"").decode())


def build_floor() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def ok(request: Any) -> Response:
        await request.body()
        return Response(b"")

    return Starlette(routes=[Route("/slack/events", ok, methods=["POST"])])


# ---- the client -----------------------------------------------------------------------------

async def measure(url: str, count: int, concurrency: int, response_url: str | Callable[[int], str]) -> list[float]:
    """Ack latency of each of `count` signed requests, `concurrency` in flight at once; `response_url`
    is one URL for all, or gives each request's own."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                reply_to = response_url if isinstance(response_url, str) else response_url(n)
                body = slack_requests.slash_command(f'status "{COURSE}"', user_id="U0MANAGER",
                                                    channel_id="C0GENERAL", response_url=reply_to)
                headers = slack_requests.signed_headers(SECRET, body)
                started = time.perf_counter()
                async with session.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return latencies


class Receiver:
    """Where the replies go: the response URLs the Slack stand-in keeps for the bench (see build_slack)."""

    def __init__(self, session: aiohttp.ClientSession, slack_url: str) -> None:
        self.session = session
        self.slack_url = slack_url
        self.arrived: dict[str, float] = {}  # time.monotonic() when each reply reached the stand-in
        self.texts: dict[str, str] = {}

    def url(self, key: str) -> str:
        return f"{self.slack_url}/respond/bench-answer-{key}"

    async def wait_for(self, keys: list[str], limit: float, prefix: str) -> None:
        """Until every key's reply has arrived, or `limit` seconds have passed."""
        deadline = time.monotonic() + limit
        while True:
            async with self.session.get(f"{self.slack_url}/_bench/answers",
                                        params={"prefix": f"bench-answer-{prefix}"}) as response:
                for name, (stamp, text) in (await response.json()).items():
                    key = name.removeprefix("bench-answer-")
                    self.arrived[key], self.texts[key] = stamp, text
            if all(k in self.arrived for k in keys) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)


@dataclass
class Round:
    answers: list[float] = field(default_factory=list)  # seconds from sending to the reply, answered ones
    missing: int = 0  # not answered within the wait
    sent: int = 0


async def answer_round(url: str, receiver: Receiver, texts: list[str], count: int, tag: str,
                       wait: float = 30.0) -> Round:
    """`count` signed requests (the texts in turn) sent at once; each one's time until its reply arrives."""
    bodies = {f"{tag}-{n}": slack_requests.slash_command(
        texts[n % len(texts)], user_id="U0MANAGER", channel_id="C0GENERAL", response_url=receiver.url(f"{tag}-{n}"))
        for n in range(count)}
    sent: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=count, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(key: str, body: str) -> None:
            headers = slack_requests.signed_headers(SECRET, body)
            sent[key] = time.monotonic()
            async with session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")

        await asyncio.gather(*(one(k, b) for k, b in bodies.items()))
    await receiver.wait_for(list(bodies), wait, f"{tag}-")
    result = Round(sent=count)
    for key in bodies:
        if key in receiver.arrived:
            result.answers.append(receiver.arrived[key] - sent[key])
        else:
            result.missing += 1
    return result


async def nexudus_state(session: aiohttp.ClientSession, base: str, since: int = 0) -> dict[str, Any]:
    async with session.get(f"{base}/_bench/state", params={"since": str(since)}) as response:
        state: dict[str, Any] = await response.json()
        return state


async def until_idle(session: aiohttp.ClientSession, base: str, quiet: float = PLATFORM_DELAY + 1.0,
                     limit: float = 300.0) -> None:
    """Wait until the platform has had no new request for `quiet` seconds (earlier work drained)."""
    started = time.monotonic()
    last = (await nexudus_state(session, base))["total"]
    last_change = time.monotonic()
    while time.monotonic() - last_change < quiet and time.monotonic() - started < limit:
        await asyncio.sleep(0.25)
        total = (await nexudus_state(session, base))["total"]
        if total != last:
            last, last_change = total, time.monotonic()


async def drop_cache(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        names = [name async for name in client.scan_iter("coursebot:cache:*")]
        if names:
            await client.delete(*names)
        return len(names)
    finally:
        await client.aclose()


async def one_status_requests(session: aiohttp.ClientSession, base: str, bot_url: str, receiver: Receiver,
                              text: str, tag: str) -> tuple[list[list[str]], bool]:
    """The platform requests (method, path) made for one status after earlier work drained, and
    whether it was answered within 30 s."""
    await until_idle(session, base)
    before = (await nexudus_state(session, base))["total"]
    answered = await answer_round(bot_url, receiver, [text], 1, tag)
    await until_idle(session, base)
    made: list[list[str]] = (await nexudus_state(session, base, before))["requests"]
    return made, not answered.missing


# ---- output -----------------------------------------------------------------------------------

def line(name: str, values: list[float]) -> str:
    return (f"{name:<30} n={len(values):<5} p50={percentile(values, 50) * 1000:7.1f} ms   "
            f"p99={percentile(values, 99) * 1000:7.1f} ms   max={max(values) * 1000:7.1f} ms")


def answer_line(name: str, rounds: list[Round], within: float) -> str:
    values = [v for r in rounds for v in r.answers]
    sent = sum(r.sent for r in rounds)
    inside = sum(1 for v in values if v <= within)
    figures = (f"p50={percentile(values, 50):5.2f} s   p99={percentile(values, 99):5.2f} s   "
               f"max={max(values):5.2f} s" if values else "no answers")
    return f"{name:<30} n={sent:<4} {figures}   answered within {within:.0f} s: {inside}/{sent}"


def describe(found: tuple[list[list[str]], bool]) -> str:
    requests, answered = found
    api = [f"{m} {p}" for m, p in requests if p != "/api/token"]
    tokens = len(requests) - len(api)
    text = f"{len(api)} ({', '.join(api) or 'none'})"
    return text + (f" + {tokens} token request(s)" if tokens else "") + ("" if answered else "; NOT answered in 30 s")


def print_acks(args: argparse.Namespace, floor_times: list[float], bare_acks: list[float],
               bot_acks: list[float]) -> None:
    print(f"1. ack latency, {args.concurrency} concurrent signed /course status requests; "
          f"the platform answers after {PLATFORM_DELAY:.0f} s")
    print(line("client floor (bare HTTP)", floor_times))
    if not bot_acks:
        return
    print(line("bare Bolt AsyncApp (ack)", bare_acks))
    print(line("coursebot serve", bot_acks))
    p99_ratio = percentile(bot_acks, 99) / percentile(bare_acks, 99)
    p50_ratio = percentile(bot_acks, 50) / percentile(bare_acks, 50)
    print(f"   ratio to bare Bolt: p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f}  (target: p99 < 100 ms, ratio <= 1.5)")
    ok = percentile(bot_acks, 99) < 0.100 and p99_ratio <= 1.5
    print("   target met" if ok else "   target NOT met", flush=True)


def print_answers(args: argparse.Namespace, statuses: list[str], bare_rounds: list[Round],
                  bot_rounds: list[Round]) -> None:
    delay = PLATFORM_DELAY
    what = f"`/course {statuses[0]}`" if len(statuses) == 1 else f"`/course status <id>` of {len(statuses)} courses"
    print(f"2. answer latency, {args.concurrency} signed {what} sent at once, {args.answer_rounds} "
          f"rounds each; from sending until the reply reaches the response URL; platform at {delay:.0f} s")
    print(answer_line(f"bare Bolt (answers {delay:.0f} s after ack)", bare_rounds, 10))
    print(answer_line("coursebot serve, cold round", bot_rounds[:1], 10))
    if len(bot_rounds) > 1:
        print(answer_line("coursebot serve, warm rounds", bot_rounds[1:], 10))
    every = [v for r in bot_rounds for v in r.answers]
    missing = sum(r.missing for r in bot_rounds) + sum(1 for v in every if v > 10)
    p99 = percentile(every, 99) if every and not sum(r.missing for r in bot_rounds) else float("inf")
    print(f"   coursebot, every round: p99 {p99:.2f} s = {p99 / delay:.2f} x the platform latency; "
          f"not answered within 10 s: {missing}  (target: none, p99 < {3 * delay:.0f} s)")
    print("   target met" if missing == 0 and p99 < 3 * delay else "   target NOT met", flush=True)


# ---- the run ---------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> None:
    with ChildServer(build_slack) as slack, ChildServer(build_nexudus) as nexudus, \
            ChildServer(build_floor) as floor:
        response_url = f"{slack.url}/respond/bench-ack"  # answered 200, not timed
        common = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url + "/api/",
                  "REDIS_URL": args.redis_url, "COURSEBOT_MANAGERS": "U0MANAGER", "LOG_LEVEL": "ERROR"}
        bot_port, bare_port = free_port(), free_port()
        bot_env = {**common, "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": nexudus.url,
                   "NEXUDUS_USERNAME": "api@example.com", "NEXUDUS_PASSWORD": "secret", "PORT": str(bot_port)}
        bare_env = {**common, "BARE_BOLT_ANSWER_AFTER": str(PLATFORM_DELAY)}
        await drop_cache(args.redis_url)
        async with aiohttp.ClientSession() as session:
            receiver = Receiver(session, slack.url)
            # --bot-source: another checkout of the bot (e.g. main, for a before/after), run from its directory
            with Command(["-m", "bot.cli", "serve"], bot_env, bot_port, cwd=args.bot_source or None), \
                    Command(["-m", "bench.bare_bolt", str(bare_port)], bare_env, bare_port):
                bot_url = f"http://127.0.0.1:{bot_port}/slack/events"
                bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
                floor_url = floor.url + "/slack/events"
                for url in (bot_url, bare_url, floor_url):  # warm up (auth.test, imports, pools)
                    await measure(url, args.concurrency, args.concurrency, response_url)
                floor_times = await measure(floor_url, args.requests, args.concurrency, response_url)
                bot_acks: list[float] = []
                bare_acks: list[float] = []
                if not args.skip_acks:
                    # Alternate, so drift on a busy machine hits both alike; after each round wait for its
                    # answers (at most a platform round trip and 3 s), so a round's acks are measured on
                    # their own, not beside the previous round's answers.
                    for r in range(args.rounds):
                        for target, url, acks in (("bare", bare_url, bare_acks), ("bot", bot_url, bot_acks)):
                            tag = f"ack{r}{target}"
                            acks += await measure(url, args.requests, args.concurrency,
                                                  lambda n, tag=tag: receiver.url(f"{tag}-{n}"))
                            await receiver.wait_for([f"{tag}-{n}" for n in range(args.requests)],
                                                    PLATFORM_DELAY + 3.0, f"{tag}-")
                print_acks(args, floor_times, bare_acks, bot_acks)
                if args.skip_answers:
                    return

                course_ids = (await nexudus_state(session, nexudus.url))["course_ids"]
                statuses = [f"status {i}" for i in course_ids[:max(1, args.courses)]]
                await until_idle(session, nexudus.url)
                await drop_cache(args.redis_url)
                bare_rounds: list[Round] = []
                bot_rounds: list[Round] = []
                for n in range(args.answer_rounds):
                    bare_rounds.append(await answer_round(bare_url, receiver, statuses, args.concurrency, f"bare{n}"))
                    await until_idle(session, nexudus.url)
                    bot_rounds.append(await answer_round(bot_url, receiver, statuses, args.concurrency, f"bot{n}"))
                    await until_idle(session, nexudus.url)
                print_answers(args, statuses, bare_rounds, bot_rounds)

                status = statuses[0]
                print(f"3. platform requests for one `/course {status}`:")
                warm = await one_status_requests(session, nexudus.url, bot_url, receiver, status, "warm")
                print(f"   warm: {describe(warm)}", flush=True)
                await drop_cache(args.redis_url)
                cold = await one_status_requests(session, nexudus.url, bot_url, receiver, status, "cold")
                print(f"   cold (cache emptied): {describe(cold)}")
                sample = next((t for k, t in receiver.texts.items() if k.startswith("warm")), "")
                if sample:
                    print(f"   (its answer: {sample!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="ack requests per round and target")
    parser.add_argument("--rounds", type=int, default=3, help="ack rounds per target")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--answer-rounds", type=int, default=4, help="answer rounds per target (the first is cold)")
    parser.add_argument("--courses", type=int, default=1, help="spread the answer rounds over this many courses")
    parser.add_argument("--skip-acks", action="store_true", help="measure only answers and request counts")
    parser.add_argument("--skip-answers", action="store_true", help="measure only acks")
    parser.add_argument("--redis-url", default=REDIS_URL, help="a Redis database the bench may use alone")
    parser.add_argument("--bot-source", default="", help="run the bot from this checkout, e.g. main")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
