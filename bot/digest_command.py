"""`coursebot digest [--dry-run]`: today's digest now, posted (once per channel per day) or printed.

It builds a Runtime, so it lives beside the other entry points, not inside bot.digest."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bot.core.config import Settings
from bot.digest import render as render_digest
from bot.digest.sender import send_digest, service
from bot.digest.service import Digest, utcnow
from bot.render.terminal import Button, TerminalView
from bot.runtime import Runtime


def digest_text(digest: Digest, *, color: bool = False) -> list[str]:
    """The digest as a terminal shows it (the shell's renderer), and the chart's figures."""
    view = TerminalView(color=color)
    message = render_digest.digest_message(digest)
    pages = message.pages("thread")
    lines = view.blocks(pages[0]["blocks"], Button({}, None, None, ephemeral=False))
    for page in pages[1:]:
        lines.append("")
        lines.append("In the thread:")
        lines += view.blocks(page["blocks"], Button({}, None, None, ephemeral=False))
    for file in message.files:
        lines.append(f"File in the thread: {file.title} ({file.filename}, {len(file.content.splitlines())} lines)")
    if digest.chart_has_data:
        lines.append("")
        lines.append(f"Chart (posted in the thread): new enrolments / {digest.chart_label} per day")
        lines += [f"  {d.day:%a %d %b}  {d.enrolments:>6} / {d.completions:<6}" for d in digest.chart]
    return lines


async def run_digest_command(settings: Settings, *, dry_run: bool, out: Callable[[str], None] = print) -> int:
    rt = Runtime.create(settings)
    try:
        if dry_run:
            digest = await service(rt).build(utcnow(), channel=settings.coursebot_digest_channel)
            for line in digest_text(digest, color=sys.stdout.isatty()):
                out(line)
            out("(dry run: nothing was posted)")
            return 0
        result = await send_digest(rt)
        channel = settings.coursebot_digest_channel
        day = result.day.isoformat()
        messages = {
            "sent": f"Posted the digest for {day} to {channel} (ts {result.ts}).",
            "recovered": f"The digest for {day} was already in {channel} (ts {result.ts}); recorded it.",
            "already": f"The digest for {day} was already posted to {channel} (ts {result.ts}); nothing posted.",
            "busy": f"Another process is posting the digest for {day} right now; nothing posted.",
            "skipped": f"Nothing new for {day}, and COURSEBOT_DIGEST_SKIP_EMPTY is set: nothing posted.",
            "failed": f"Could not post the digest for {day} to {channel}: {result.error}. Nothing was posted.",
            "not_configured": "COURSEBOT_DIGEST_CHANNEL is not set.",
        }
        out(messages[result.status])
        return 1 if result.status in ("failed", "not_configured") else 0
    finally:
        await rt.aclose()
