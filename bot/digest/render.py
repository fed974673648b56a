"""The daily digest as Block Kit, within Slack's limits whatever the day brought.

At most ~35 blocks (Slack allows 50), every section under 3,000 characters, every list cut
with "and N more", every name and title escaped. Approve / Block buttons go on the first
few waiting requests only; the rest are counted and `/course pending` lists them all.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.core.models import AccessState
from bot.digest.service import CourseGroup, DayCount, Digest
from bot.render import (
    BLOCKS_MAX,
    SECTION_MAX,
    STATE_TEXT,
    Block,
    Message,
    context,
    divider,
    esc,
    header,
    mention,
    section,
    when,
)
from bot.render.ids import ActionId

BUTTONS = 5  # waiting requests shown with Approve / Block buttons
LIST_LINES = 15  # most lines in one list section
NAMES_PER_COURSE = 6
NAME_MAX = 80
APPROVE_ACTION = ActionId.DIGEST_APPROVE
BLOCK_ACTION = ActionId.DIGEST_BLOCK
PENDING_BLOCK = "digest_pending:"  # + enrolment id: the actions block of one waiting request
SPARK = "▁▂▃▄▅▆▇█"


def name(text: str) -> str:
    """An untrusted name, shortened and escaped."""
    text = " ".join(text.split())
    return esc(text if len(text) <= NAME_MAX else text[: NAME_MAX - 1] + "…")


def capped(lines: list[str], more: str, *, limit: int = LIST_LINES, used: int = 0) -> str:
    """Lines joined into one section's text (after `used` characters of it), the overflow replaced
    by `more` (with {n})."""
    reserve = used + len(more) + 12
    out: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        room = SECTION_MAX - reserve - size - 1
        if index == 0 and len(line) > room:  # one huge line: show its start rather than nothing
            line = re.sub(r"&[a-z]*$", "", line[: room - 1]) + "…"
        if index >= limit or size + len(line) + 1 > SECTION_MAX - reserve:
            out.append(more.format(n=len(lines) - index))
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def names_line(group: CourseGroup) -> str:
    shown = ", ".join(name(n) for n in group.names[:NAMES_PER_COURSE])
    rest = len(group.names) - NAMES_PER_COURSE
    if rest > 0:
        shown += f" and {rest} more"
    return f"• *{name(group.title)}* ({len(group.names)}): {shown}"


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def day_label(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def summary(digest: Digest) -> str:
    """The notification text: counts only, no names."""
    if digest.empty:
        return f"Course digest for {day_label(digest.day)}: nothing new."
    parts = []
    if digest.pending:
        parts.append(f"{len(digest.pending)} waiting for a decision")
    if digest.auto_approved:
        parts.append(f"{len(digest.auto_approved)} approved by the rules")
    if digest.new_enrolments:
        parts.append(f"{digest.new_count} new enrolments")
    if digest.lessons_completed:
        parts.append(f"{digest.lessons_completed} lessons completed")
    if digest.finished:
        parts.append(f"{len(digest.finished)} courses finished")
    if digest.stalled:
        parts.append(f"{digest.stalled_count} stalled")
    return f"Course digest for {day_label(digest.day)}: " + ", ".join(parts) + "."


class DigestButton(BaseModel):
    """A digest button's value: the waiting enrolment, its course and member."""

    e: str
    c: str
    m: str

    @classmethod
    def read(cls, value: str) -> DigestButton | None:
        try:
            return cls.model_validate_json(value)
        except ValidationError:
            return None


def decision_value(enrolment_id: str, course_id: str, member_id: str) -> str:
    return DigestButton(e=enrolment_id, c=course_id, m=member_id).model_dump_json()


def _buttons(enrolment_id: str, course_id: str, member_id: str) -> Block:
    value = decision_value(enrolment_id, course_id, member_id)
    return {
        "type": "actions",
        "block_id": (PENDING_BLOCK + enrolment_id)[:255],
        "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": BLOCK_ACTION, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Block"},
             "confirm": {"title": {"type": "plain_text", "text": "Block this member?"},
                         "text": {"type": "plain_text", "text": "They will lose access to the course."},
                         "confirm": {"type": "plain_text", "text": "Block"},
                         "deny": {"type": "plain_text", "text": "Cancel"}}},
        ],
    }


def _pending_blocks(digest: Digest, *, buttons: bool) -> list[Block]:
    waiting = digest.pending or []
    blocks = [section(f"*:inbox_tray: Waiting for your decision: {len(waiting)}* (oldest first)")]
    shown = waiting[:BUTTONS] if buttons else []
    for e in shown:
        who = e.member_name or f"member {e.member_id}"
        course = e.course_title or f"course {e.course_id}"
        blocks.append(section(f"*{name(who)}* asks to join *{name(course)}* · asked {when(e.created_on)}"))
        blocks.append(_buttons(e.id, e.course_id, e.member_id))
    rest = waiting[len(shown):]
    if rest:
        lines = [f"• *{name(e.member_name or 'member ' + e.member_id)}* → {name(e.course_title or e.course_id)}"
                 f" · {when(e.created_on)}" for e in rest]
        blocks.append(section(capped(lines, "…and {n} more: see them all with `/course pending`.")))
    blocks.append(context("Every waiting request, with buttons: `/course pending`."))
    return blocks


def _rule_blocks(digest: Digest) -> list[Block]:
    count = len(digest.auto_approved)
    title = f"*:robot_face: Approved by the auto-approve rules: {count}* (`/course rules`)"
    lines = [f"• *{name(a.member_name)}* → {name(a.course_title)} · _{name(a.rule)}_" for a in digest.auto_approved]
    return [section(title + "\n" + capped(lines, "…and {n} more.", used=len(title) + 1))]


def _enrolment_blocks(digest: Digest) -> list[Block]:
    courses = len(digest.new_enrolments)
    title = (f"*:raised_hands: New enrolments: {digest.new_count}* in {courses} course{'s' if courses != 1 else ''}")
    lines = [names_line(g) for g in digest.new_enrolments]
    return [section(title + "\n" + capped(lines, "…and {n} more courses.", used=len(title) + 1))]


def _progress_blocks(digest: Digest) -> list[Block]:
    blocks: list[Block] = []
    head = "*:mortar_board: Progress*"
    facts = []
    if digest.lessons_completed:
        facts.append(f"{digest.lessons_completed} lesson{'s' if digest.lessons_completed != 1 else ''} completed "
                     f"by {digest.lesson_members} member{'s' if digest.lesson_members != 1 else ''}")
    if digest.finished:
        facts.append(f"{len(digest.finished)} course{'s' if len(digest.finished) != 1 else ''} finished")
    blocks.append(section(f"{head}: " + "; ".join(facts)))
    if digest.finished:
        lines = [f":tada: *{name(f.member_name)}* finished *{name(f.title)}*" for f in digest.finished]
        blocks.append(section(capped(lines, "…and {n} more finished a course.")))
    if digest.lessons_by_course:
        lines = [f"• *{name(row.title)}*: {row.lessons} lesson{'s' if row.lessons != 1 else ''} by "
                 f"{row.members} member{'s' if row.members != 1 else ''}" for row in digest.lessons_by_course]
        blocks.append(section(capped(lines, "…and {n} more courses.", limit=10)))
    return blocks


def _stalled_blocks(digest: Digest) -> list[Block]:
    title = (f"*:zzz: Stalled: {digest.stalled_count}*, enrolled {digest.stalled_days} days ago and not started "
             "yet (no lesson completed, no visit since enrolling)")
    lines = [names_line(g) for g in digest.stalled]
    return [section(title + "\n" + capped(lines, "…and {n} more courses.", limit=10, used=len(title) + 1))]


def chart_line(chart: list[DayCount], *, in_thread: bool) -> str:
    enrolled = [d.enrolments for d in chart]
    completed = [d.completions for d in chart]
    text = (f":chart_with_upwards_trend: Last {len(chart)} days: enrolments `{sparkline(enrolled)}` "
            f"({sum(enrolled)}) · lessons completed `{sparkline(completed)}` ({sum(completed)})")
    return text + (" · chart in the thread" if in_thread else "")


def digest_message(digest: Digest, *, preview: bool = False, channel: str | None = None,
                   schedule: str = "") -> Message:
    blocks: list[Block] = [header(f"Course digest · {day_label(digest.day)}")]
    since = f"Since {when(digest.since)} · {esc(digest.platform)}"
    if preview:
        if channel:
            since = f"Preview, only you see this; posted to <#{channel}> {esc(schedule)}. " + since
        else:
            since = "Preview, only you see this. Not posted anywhere: set COURSEBOT_DIGEST_CHANNEL. " + since
    blocks.append(context(since))
    if digest.empty:
        blocks.append(section(":white_check_mark: Nothing new since the last digest: no requests waiting, "
                              "no new enrolments, no lessons completed, nobody stalled."))
        return Message(text=summary(digest), blocks=blocks)
    groups: list[list[Block]] = []
    if digest.pending:
        groups.append(_pending_blocks(digest, buttons=True))
    if digest.auto_approved:
        groups.append(_rule_blocks(digest))
    if digest.new_enrolments:
        groups.append(_enrolment_blocks(digest))
    if digest.lessons_completed or digest.finished:
        groups.append(_progress_blocks(digest))
    if digest.stalled:
        groups.append(_stalled_blocks(digest))
    for group in groups:
        blocks += [divider(), *group]
    if digest.chart_has_data:
        blocks.append(context(chart_line(digest.chart, in_thread=not preview)))
    return Message(text=summary(digest), blocks=fit(blocks))


def fit(blocks: list[Block]) -> list[Block]:
    """A last guard: never more than Slack's 50 blocks (the layout above stays well under)."""
    if len(blocks) <= BLOCKS_MAX:
        return blocks
    return [*blocks[: BLOCKS_MAX - 1], context("…more in `/course pending` and `/course status`.")]


def decided_block(action: str, user: str, at: datetime) -> Block:
    icon = ":white_check_mark:" if action == "approve" else ":no_entry:"
    verb = "Approved" if action == "approve" else "Blocked"
    return context(f"{icon} {verb} by {mention(user)} · {when(at)}")


def state_block(state: AccessState) -> Block:
    return context(f"Now: {STATE_TEXT[state]} (decided elsewhere)")


def replace_decided(blocks: list[dict[str, Any]], enrolment_id: str, outcome: Block) -> list[dict[str, Any]] | None:
    """The message's blocks with one request's buttons replaced by its outcome (None if not there)."""
    block_id = (PENDING_BLOCK + enrolment_id)[:255]
    if not any(b.get("block_id") == block_id for b in blocks):
        return None
    return [{**outcome, "block_id": block_id} if b.get("block_id") == block_id else b for b in blocks]
