"""Socket Mode: how fast `coursebot serve` acknowledges envelopes, and how fast it reconnects.

Runs a real `coursebot serve` with SLACK_APP_TOKEN (Socket Mode) against the Slack stand-in
(in this process, so the bench can push envelopes on its WebSocket) and a local Nexudus in a
child process that answers every call after 2 s. Sends `/course status "Founders Circle"`
slash-command envelopes, `--concurrency` at a time, and measures from the push to the ack the
stand-in receives. Then drops the connection (no close frame), and asks it to reconnect
(`disconnect` message), and measures how long until a new connection is open and answering.

    .venv/bin/python -m bench.socket_mode [--commands 300] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench._support import ChildServer, Command, free_port, percentile
from bench.ack_latency import build_nexudus
from devtools import requests as slack_requests
from devtools.servers import ServerThread
from devtools.slack_stub import APP_TOKEN, SlackWorkspace, create_app

TOKEN = "xoxb-bench"
REDIS_URL = os.environ.get("COURSEBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")


async def ack_of(ws: SlackWorkspace, text: str, response_url: str) -> float:
    """Seconds from pushing one slash-command envelope to its ack."""
    payload = slack_requests.slash_command_payload(text, user_id="U0MANAGER", channel_id="C0GENERAL",
                                                   response_url=response_url)
    started = time.perf_counter()
    envelope_id = ws.send_envelope("slash_commands", payload)
    for _ in range(10_000):
        acked = ws.socket_ack_time(envelope_id)
        if acked is not None:
            return acked - started
        await asyncio.sleep(0.001)
    raise RuntimeError("no ack in 10 s")


async def reconnect_time(ws: SlackWorkspace, cause: str) -> float:
    """Seconds from breaking the connection to the first ack on a new one."""
    before = ws.socket_connects
    started = time.perf_counter()
    if cause == "drop":
        ws.drop_socket()
    else:
        ws.disconnect_socket()
    while ws.socket_connects == before or not ws.open_sockets():
        await asyncio.sleep(0.005)
        if time.perf_counter() - started > 60:
            raise RuntimeError("no reconnection in 60 s")
    await ack_of(ws, "help", ws.new_response_url(channel="C0GENERAL", user="U0MANAGER"))
    return time.perf_counter() - started


async def run(commands: int, concurrency: int) -> None:
    ws = SlackWorkspace(TOKEN)
    ws.add_user("U0MANAGER", "manager", "manager@example.com")
    with ServerThread(create_app(ws)) as slack_url, ChildServer(build_nexudus) as nexudus:
        ws.base_url = slack_url
        port = free_port()
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": slack_url + "/api/",
               "REDIS_URL": REDIS_URL, "COURSEBOT_MANAGERS": "U0MANAGER", "LOG_LEVEL": "ERROR",
               "COURSE_PLATFORM": "nexudus", "NEXUDUS_BASE_URL": nexudus.url, "NEXUDUS_USERNAME": "api@example.com",
               "NEXUDUS_PASSWORD": "secret", "PORT": str(port)}
        with Command(["-m", "bot.cli", "serve"], env, port):  # the port opens once the socket is connected
            response_url = f"{slack_url}/respond/bench"  # unknown id: the stand-in answers 404, the bot only logs it
            for _ in range(concurrency):  # warm up (auth.test, imports)
                await ack_of(ws, 'status "Founders Circle"', response_url)
            latencies: list[float] = []

            async def worker(count: int) -> None:
                for _ in range(count):
                    latencies.append(await ack_of(ws, 'status "Founders Circle"', response_url))

            started = time.perf_counter()
            share, extra = divmod(commands, concurrency)
            await asyncio.gather(*(worker(share + (n < extra)) for n in range(concurrency)))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(2.5)  # let the slow platform calls drain
            dropped = await reconnect_time(ws, "drop")
            asked = await reconnect_time(ws, "disconnect")
    print(f"Socket Mode acks, {commands} /course status envelopes, {concurrency} in flight; "
          "the platform answers after 2 s")
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(f"  push -> ack   p50={p50:6.1f} ms  p99={p99:6.1f} ms  max={max(latencies) * 1000:6.1f} ms  "
          f"({commands / elapsed:.0f} envelopes/s)")
    print(f"  dropped connection (no close frame) -> answering again: {dropped:.1f} s (ping interval 10 s)")
    print(f"  'disconnect' message -> answering again on a new connection: {asked:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.commands, args.concurrency))


if __name__ == "__main__":
    main()
