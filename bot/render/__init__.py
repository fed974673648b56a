"""Every Block Kit message the bot sends is built here.

Rule: every string that came from a user or a platform goes through `esc()` (`&`, `<`,
`>`), so a member called `Eve <!channel>` pings nobody and a course title cannot carry a
disguised link. Mentions are built only from Slack ids (`mention()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.directory import DirectoryError
from bot.core.errors import CourseAmbiguous, CourseNotFound, MemberAmbiguous, NotAllowed, UserFacingError
from bot.core.grammar import CommandSpec, ParseError
from bot.core.models import AccessState, Course, Member, Visibility
from bot.platforms.base import PlatformError

Block = dict[str, Any]

SECTION_MAX = 3000
BLOCKS_MAX = 50
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")


def esc(text: object) -> str:
    """Escape Slack's three control characters; `&` first."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    return f"<@{user_id}>" if _SLACK_ID.match(user_id) else esc(user_id)


def when(moment: datetime | None) -> str:
    """A date Slack shows in the reader's own time zone, with a plain fallback."""
    if moment is None:
        return "unknown"
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


@dataclass
class Message:
    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks[:BLOCKS_MAX]}


def section(text: str, *, accessory: Block | None = None) -> Block:
    if len(text) > SECTION_MAX:
        text = text[: SECTION_MAX - 1] + "…"
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    if accessory:
        block["accessory"] = accessory
    return block


def fields(pairs: list[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"[:2000], "verbatim": True}
                   for label, value in pairs[:10]],
    }


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_MAX], "verbatim": True}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def divider() -> Block:
    return {"type": "divider"}


def sections_of_lines(lines: list[str], *, budget: int = BLOCKS_MAX - 3) -> list[Block]:
    """Pack lines into as few sections as fit; past the budget, say how many were left out."""
    blocks: list[Block] = []
    chunk = ""
    for index, line in enumerate(lines):
        if chunk and len(chunk) + len(line) + 1 > SECTION_MAX:
            if len(blocks) == budget - 1:
                blocks.append(context(f"…and {len(lines) - index} more."))
                return blocks
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(section(chunk))
    return blocks


def simple(text: str) -> Message:
    return Message(text=text, blocks=[section(text)])


# ---- help ---------------------------------------------------------------------------------

def help_message(specs: list[CommandSpec], *, platform: str, is_manager: bool, notes: list[str]) -> Message:
    lines = [f"`/course {esc(spec.usage)}`  {esc(spec.summary)}" for spec in specs]
    blocks = [
        section(f"*coursebot* runs course enrolment on *{esc(platform)}* from Slack."),
        *sections_of_lines(lines),
        context(esc(
            "`<course>` is a course id or a unique part of its title (quote it if it has spaces). "
            "`<member>` is an email, an @mention or a platform id."
        )),
    ]
    if not is_manager:
        blocks.append(context("You see the read-only commands; course managers can also change enrolments."))
    blocks.extend(context(esc(note)) for note in notes)
    return Message(text="coursebot: what you can do with /course", blocks=blocks)


VISIBILITY_ICON = {
    Visibility.PUBLIC: ":globe_with_meridians:",
    Visibility.HIDDEN: ":see_no_evil:",
    Visibility.PRIVATE: ":lock:",
    Visibility.PAID: ":moneybag:",
    Visibility.UNKNOWN: ":grey_question:",
}


def course_label(course: Course) -> str:
    return f"*{esc(course.title)}* (id {esc(course.id)})"


def member_label(member: Member, *, with_email: bool = True) -> str:
    email = f" ({esc(member.email)})" if with_email and member.email else ""
    return f"*{esc(member.label)}*{email}"


STATE_TEXT = {
    AccessState.APPROVED: ":white_check_mark: approved",
    AccessState.PENDING: ":hourglass_flowing_sand: waiting for approval",
    AccessState.BLOCKED: ":no_entry: blocked",
}


# ---- errors -------------------------------------------------------------------------------

def parse_error_message(error: ParseError) -> Message:
    return simple(f":warning: {esc(error.message)}")


def user_error_message(error: UserFacingError) -> Message:
    text = f":warning: {error.text(esc)}"
    blocks = [section(text)]
    if isinstance(error, CourseAmbiguous):
        lines = [f"• {course_label(c)} · {c.visibility.value}" for c in error.candidates[:20]]
        blocks += [*sections_of_lines(lines, budget=10),
                   context("Nothing was changed. Use the course id, or more of the title.")]
    elif isinstance(error, CourseNotFound):
        hint = "See `/course courses` for the list."
        if error.suggestions:
            hint = "Did you mean " + ", ".join(course_label(c) for c in error.suggestions) + "? " + hint
        blocks.append(context("Nothing was changed. " + hint))
    elif isinstance(error, MemberAmbiguous):
        lines = [f"• {member_label(m)} (id {esc(m.id)})" for m in error.candidates[:20]]
        blocks += [*sections_of_lines(lines, budget=10), context("Nothing was changed. Use the member's id.")]
    return Message(text=str(error), blocks=blocks)


def platform_error_message(error: PlatformError) -> Message:
    text = f":x: {esc(error.message)}"
    if not error.retryable:
        return simple(text)
    return Message(text=error.message, blocks=[section(text), context("Nothing was changed. Try again shortly.")])


def refusal_message(reason: str) -> Message:
    return simple(f":no_entry_sign: {esc(reason)}")


EXPECTED_ERRORS = (UserFacingError, DirectoryError, PlatformError)


def error_message(exc: Exception) -> Message:
    """What the user reads when a command or a click fails: one mapping for every surface."""
    if isinstance(exc, NotAllowed):
        return refusal_message(exc.text(esc))
    if isinstance(exc, UserFacingError):
        return user_error_message(exc)
    if isinstance(exc, DirectoryError):
        return simple(f":warning: {esc(exc.message)}")
    if isinstance(exc, PlatformError):
        return platform_error_message(exc)
    return internal_error_message()


def internal_error_message() -> Message:
    return simple(":x: Something went wrong on my side and nothing was changed. The error is in the bot's log.")
