"""How big is a busy day's digest, and does Slack take it?

The day issue 11 names (its digest once came to 13,700 characters of block text in 25 blocks,
which Slack refuses with `msg_blocks_too_long`, so that day's digest was never posted):
45 courses with long titles, 400 new enrolments, 60 requests waiting, 300 lessons completed
(40 members finishing a course), and 30 members stalled. The tenant is the local Nexudus (devtools/scenarios.py), the
Slack is the stand-in, which refuses what Slack refuses (50 blocks, 3,000 characters per
section, 12,000 characters of block text in a message). The digest is posted once, for real
(`bot.digest.sender.send_digest`), and measured as the stand-in stored it.

    .venv/bin/python -m bench.digest_size [--courses 45] [--new 400] [--waiting 60] [--completions 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

TOKEN = "xoxb-bench"
CHANNEL = "C0DIGEST"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def section_sizes(blocks: list[dict[str, Any]]) -> list[int]:
    return [len((b.get("text") or {}).get("text", "")) for b in blocks if b.get("type") == "section"]


async def run(courses: int, new: int, waiting: int, completions: int) -> None:
    import redis.asyncio as aioredis
    from pydantic import SecretStr

    from bot.core.config import Platform, Settings
    from bot.digest.sender import EVENT_TYPE, send_digest
    from bot.render import MESSAGE_CHARS, block_chars
    from bot.runtime import Runtime
    from devtools.scenarios import busy_day
    from devtools.servers import ServerThread
    from devtools.slack_stub import MAX_MESSAGE_BLOCK_CHARS, SlackWorkspace, create_app

    redis_url: str | None = REDIS_URL
    try:
        probe = aioredis.Redis.from_url(REDIS_URL)
        await probe.flushdb()  # the bench's own database
        await probe.aclose()
    except Exception:
        print(f"(no Redis at {REDIS_URL}: using the embedded store)")
        redis_url = None
    ws = SlackWorkspace(TOKEN)
    ws.add_user("U0MANAGER", "manager", "manager@example.com")
    ws.add_channel(CHANNEL, "course-digest", ["U0MANAGER"])
    day = busy_day(datetime.now(UTC), courses=courses, new=new, waiting=waiting, completions=completions)
    with ServerThread(create_app(ws)) as slack_url, ServerThread(day.fake.app) as platform_url:
        ws.base_url = slack_url
        settings = Settings(_env_file=None, redis_url=redis_url, course_platform=Platform.NEXUDUS,  # type: ignore[call-arg]
                            nexudus_base_url=platform_url, nexudus_username=day.fake.username,
                            nexudus_password=SecretStr(day.fake.password), nexudus_writes_per_minute=600,
                            slack_api_url=slack_url + "/api/", slack_bot_token=SecretStr(TOKEN),
                            coursebot_digest_channel=CHANNEL, coursebot_timezone="UTC",
                            coursebot_managers=["U0MANAGER"])
        rt = Runtime.create(settings)
        try:
            started = time.perf_counter()
            result = await send_digest(rt)
            elapsed = time.perf_counter() - started
        finally:
            await rt.aclose()
    posted = [m for m in ws.messages(CHANNEL) if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]
    d = result.digest
    print(f"busy day: {courses} courses with long titles (~{len(day.courses[0]['Title'])} characters), "
          f"{new} new enrolments, {waiting} waiting, {completions} lessons completed, {len(day.stalled_names)} "
          "stalled")
    if d is not None:
        print(f"  the digest counted: {len(d.pending or [])} waiting, {d.new_count} new enrolments in "
              f"{len(d.new_enrolments)} courses, {d.lessons_completed} lessons completed, {len(d.finished)} finished, "
              f"{d.stalled_count} stalled")
    if not posted:
        print(f"NOT posted: {result.status} {result.error}")
        return
    message = posted[0]
    blocks = message["blocks"]
    chars = block_chars(blocks)
    text = "\n".join((b.get("text") or {}).get("text", "") for b in blocks if b.get("text"))
    more = re.findall(r"…and (\d+) more", text)
    thread = [m for m in ws.messages(CHANNEL) if m.get("thread_ts") == message["ts"]]
    files = [f for f in ws.files if f.get("thread_ts") == message["ts"]]
    print(f"{'message':<34}{'blocks':>8}{'characters':>12}{'largest section':>17}")
    print(f"{'the digest':<34}{len(blocks):>8}{chars:>12,}{max(section_sizes(blocks)):>17,}")
    for index, reply in enumerate(thread, start=1):
        print(f"{f'  thread message {index}':<34}{len(reply['blocks']):>8}{block_chars(reply['blocks']):>12,}"
              f"{max(section_sizes(reply['blocks']), default=0):>17,}")
    for file in files:
        print(f"  file in the thread: {file['filename']} ({file['size']:,} bytes)")
    print(f"limits: 50 blocks, 3,000 per section, {MAX_MESSAGE_BLOCK_CHARS:,} in all (the bot keeps to "
          f"{MESSAGE_CHARS:,}; the digest to 9,500, so its 5 buttons can become 'approved by' lines)")
    accepted = result.status == "sent" and ws.call_count("chat.postMessage") == len(ws.messages(CHANNEL))
    print(f"accepted by the stand-in: {'yes' if accepted else 'NO'} (status {result.status}); "
          f"'…and N more' lines: {len(more)} ({', '.join(more)} more); posted in {elapsed:.2f} s")
    names = (*day.new_names, *day.waiting_names, *day.finished_names, *day.stalled_names)
    everything = "\n".join(str(m["blocks"]) for m in (message, *thread)) + "".join(f["bytes"].decode(errors="replace")
                                                                                   for f in files)
    missing = [n for n in names if n not in everything]
    print(f"names in the message, its thread or its file: {len(names) - len(missing)} of {len(names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--courses", type=int, default=45)
    parser.add_argument("--new", type=int, default=400)
    parser.add_argument("--waiting", type=int, default=60)
    parser.add_argument("--completions", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.courses, args.new, args.waiting, args.completions))


if __name__ == "__main__":
    main()
