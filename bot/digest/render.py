"""The daily digest as Block Kit, within Slack's limits whatever the day brought.

The message itself stays under `DIGEST_CHARS` of block text (Slack refuses about 12,000 in all,
and the 5 buttons may later be replaced by longer "approved by" lines) and about 30 blocks:
the fixed parts are measured first, then what is left is shared between the lists (a list that
needs less leaves its share to the others). Every list cut short says "…and N more", and the
complete lists follow in the digest's thread (`follow_ups`), one line per course or person, so
nothing is left out. Every name and title is made inert by the renderer (`bot.render.name`).
Approve / Block buttons go on the first few waiting requests only; `/course pending` has them all.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.core.models import AccessState, Enrolment
from bot.digest.service import CourseGroup, DayCount, Digest
from bot.render import (
    EMPTY,
    MESSAGE_BLOCKS,
    SECTION_MAX,
    Block,
    File,
    Message,
    Mrkdwn,
    actions,
    block_chars,
    button,
    channel,
    clip_mrkdwn,
    confirm,
    context,
    csv_cell,
    divider,
    header,
    join,
    md,
    mention,
    name,
    section,
    sections_of_lines,
    simple,
    state_text,
    when,
)
from bot.render.ids import ActionId

BUTTONS = 5  # waiting requests shown with Approve / Block buttons
DIGEST_CHARS = 9_500  # block text of the message; 5 outcome lines in place of buttons still fit under 11,000
LIST_LINES = 15  # most lines of one list in the message
NAMES_PER_COURSE = 6
NAME_MAX = 80
THREAD_PAGES = 6  # complete lists longer than this many thread messages go as a CSV file instead
LINE_MAX = 2_500  # a line of the full lists in the thread (a course with many names goes on over several)
APPROVE_ACTION = ActionId.DIGEST_APPROVE
BLOCK_ACTION = ActionId.DIGEST_BLOCK
PENDING_BLOCK = "digest_pending:"  # + enrolment id: the actions block of one waiting request
SPARK = "▁▂▃▄▅▆▇█"


def capped(items: list[Mrkdwn], more: str, *, room: int, limit: int = LIST_LINES) -> Mrkdwn:
    """As many of `items` as fit in `room` characters (and at most `limit`), then `more` (with the
    count left out) when some are."""
    out: list[Mrkdwn] = []
    size = 0
    for index, item in enumerate(items):
        tail = md(more, len(items) - index - 1) if index + 1 < len(items) else EMPTY
        fits = size + len(item) + 1 + (len(tail) + 1 if tail else 0) <= room
        if index >= limit or not fits:
            if not out and room > 40:  # one huge line: its start rather than nothing
                out.append(clip_mrkdwn(item, max(1, room - 60 - len(more))))
                index += 1
            if index < len(items):
                out.append(md(more, len(items) - index))
            break
        out.append(item)
        size += len(item) + 1
    return join(out, "\n")


def names_line(group: CourseGroup) -> Mrkdwn:
    shown = join(name(n, NAME_MAX) for n in group.names[:NAMES_PER_COURSE])
    rest = len(group.names) - NAMES_PER_COURSE
    if rest > 0:
        shown = md("{} and {} more", shown, rest)
    return md("• *{}* ({}): {}", name(group.title, NAME_MAX), len(group.names), shown)


def group_lines(group: CourseGroup) -> list[Mrkdwn]:
    """A course and all its names, for the thread: more lines when the names do not fit one."""
    head = md("• *{}* ({}):", name(group.title, NAME_MAX), len(group.names))
    out: list[Mrkdwn] = []
    current: list[Mrkdwn] = []
    size = len(head)
    for person in group.names:
        shown = name(person, NAME_MAX)
        if current and size + len(shown) + 2 > LINE_MAX:
            out.append(md("{} {}", head if not out else md("    …"), join(current)))
            current, size = [], 6
        current.append(shown)
        size += len(shown) + 2
    out.append(md("{} {}", head if not out else md("    …"), join(current)))
    return out


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def day_label(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def summary(digest: Digest) -> Mrkdwn:
    """The notification text: counts only, no names."""
    if digest.empty:
        return md("Course digest for {}: nothing new.", day_label(digest.day))
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
    return md("Course digest for {}: {}.", day_label(digest.day), ", ".join(parts))


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
    dialog = confirm("Block this member?", "They will lose access to the course.", "Block")
    return actions(PENDING_BLOCK + enrolment_id, [
        button("Approve", APPROVE_ACTION, value, style="primary"),
        button("Block", BLOCK_ACTION, value, style="danger", confirmation=dialog),
    ])


# ---- the lists ---------------------------------------------------------------------------------

class Part:
    """One section of the digest: its fixed blocks, and the list whose room is shared out."""

    def __init__(self, before: list[Block], title: Mrkdwn | None, items: list[Mrkdwn], more: str, *,
                 limit: int = LIST_LINES, after: list[Block] | None = None,
                 full: tuple[str, list[Mrkdwn]] | None = None) -> None:
        self.before = before
        self.title = title  # the list's first line (in the same section)
        self.items = items
        self.more = more
        self.limit = limit
        self.after = after or []
        self.full = full  # the complete list for the thread: its heading and lines
        self.room = 0

    @property
    def fixed(self) -> int:
        head = len(self.title) + 1 if self.title else 0
        return block_chars(self.before) + block_chars(self.after) + head

    @property
    def need(self) -> int:
        shown = self.items[: self.limit]
        return sum(len(i) + 1 for i in shown) + (len(self.more) + 8 if len(self.items) > len(shown) else 0)

    def blocks(self) -> list[Block]:
        if not self.items:
            return [*self.before, *([section(self.title)] if self.title else []), *self.after]
        room = min(self.room, SECTION_MAX - (len(self.title) + 1 if self.title else 0))
        text = capped(self.items, self.more, room=room, limit=self.limit)
        if self.title:
            text = join([self.title, text], "\n")
        return [*self.before, section(text), *self.after]

    @property
    def cut(self) -> bool:
        return len(self.items) > self.limit or self.need > self.room


def _share(parts: list[Part], room: int) -> None:
    """Share `room` characters between the lists: equal shares, a list needing less leaving the rest."""
    waiting = sorted((p for p in parts if p.items), key=lambda p: p.need)
    for index, part in enumerate(waiting):
        share = room // (len(waiting) - index)
        part.room = max(0, min(part.need, share))
        room -= part.room


def _who(e: Enrolment) -> Mrkdwn:
    return name(e.member_name or f"member {e.member_id}", NAME_MAX)


def _pending_part(digest: Digest, *, buttons: bool, where: str) -> Part:
    waiting = digest.pending or []
    before = [section(md("*:inbox_tray: Waiting for your decision: {}* (oldest first)", len(waiting)))]
    shown = waiting[:BUTTONS] if buttons else []
    for e in shown:
        course = e.course_title or f"course {e.course_id}"
        before.append(section(md("*{}* asks to join *{}* · asked {}", _who(e), name(course, NAME_MAX),
                                 when(e.created_on))))
        before.append(_buttons(e.id, e.course_id, e.member_id))
    lines = [md("• *{}* → {} · {}", _who(e), name(e.course_title or e.course_id, NAME_MAX), when(e.created_on))
             for e in waiting[len(shown):]]
    return Part(before, None, lines, "…and {} more" + where + ": see them all with `/course pending`.",
                after=[context(md("Every waiting request, with buttons: `/course pending`."))],
                full=("Waiting for your decision", [md("• *{}* → {} · {}", _who(e), name(e.course_title or
                                                    e.course_id, NAME_MAX), when(e.created_on)) for e in waiting]))


def _rule_part(digest: Digest, where: str) -> Part:
    title = md("*:robot_face: Approved by the auto-approve rules: {}* (`/course rules`)", len(digest.auto_approved))
    lines = [md("• *{}* → {} · _{}_", name(a.member_name, NAME_MAX), name(a.course_title, NAME_MAX),
                name(a.rule, NAME_MAX)) for a in digest.auto_approved]
    return Part([], title, lines, "…and {} more" + where + ".", full=("Approved by the auto-approve rules", lines))


def _enrolment_part(digest: Digest, where: str) -> Part:
    courses = len(digest.new_enrolments)
    title = md("*:raised_hands: New enrolments: {}* in {} course{}", digest.new_count, courses,
               "s" if courses != 1 else "")
    return Part([], title, [names_line(g) for g in digest.new_enrolments], "…and {} more courses" + where + ".",
                full=("New enrolments", [line for g in digest.new_enrolments for line in group_lines(g)]))


def _progress_parts(digest: Digest, where: str) -> list[Part]:
    facts = []
    if digest.lessons_completed:
        facts.append(f"{digest.lessons_completed} lesson{'s' if digest.lessons_completed != 1 else ''} completed "
                     f"by {digest.lesson_members} member{'s' if digest.lesson_members != 1 else ''}")
    if digest.finished:
        facts.append(f"{len(digest.finished)} course{'s' if len(digest.finished) != 1 else ''} finished")
    parts = [Part([section(md("*:mortar_board: Progress*: {}", "; ".join(facts)))], None, [], "")]
    if digest.finished:
        lines = [md(":tada: *{}* finished *{}*", name(f.member_name, NAME_MAX), name(f.title, NAME_MAX))
                 for f in digest.finished]
        parts.append(Part([], None, lines, "…and {} more finished a course" + where + ".",
                          full=("Finished a course", lines)))
    if digest.lessons_by_course:
        lines = [md("• *{}*: {} lesson{} by {} member{}", name(row.title, NAME_MAX), row.lessons,
                    "s" if row.lessons != 1 else "", row.members, "s" if row.members != 1 else "")
                 for row in digest.lessons_by_course]
        parts.append(Part([], None, lines, "…and {} more courses" + where + ".", limit=10,
                          full=("Lessons completed, by course", lines)))
    return parts


def _stalled_part(digest: Digest, where: str) -> Part:
    title = md("*:zzz: Stalled: {}*, enrolled {} days ago and not started yet (no lesson completed, no visit since "
               "enrolling)", digest.stalled_count, digest.stalled_days)
    return Part([], title, [names_line(g) for g in digest.stalled], "…and {} more courses" + where + ".", limit=10,
                full=("Stalled", [line for g in digest.stalled for line in group_lines(g)]))


def chart_line(chart: list[DayCount], *, in_thread: bool) -> Mrkdwn:
    enrolled = [d.enrolments for d in chart]
    completed = [d.completions for d in chart]
    text = md(":chart_with_upwards_trend: Last {} days: enrolments `{}` ({}) · lessons completed `{}` ({})",
              len(chart), sparkline(enrolled), sum(enrolled), sparkline(completed), sum(completed))
    return md("{} · chart in the thread", text) if in_thread else text


def digest_message(digest: Digest, *, preview: bool = False, channel_id: str | None = None,
                   schedule: str = "") -> Message:
    """The digest, and (posted, not previewed) the complete lists for its thread as `follow_ups`."""
    blocks: list[Block] = [header(f"Course digest · {day_label(digest.day)}")]
    since = md("Since {} · {}", when(digest.since), digest.platform)
    if preview:
        if channel_id:
            since = md("Preview, only you see this; posted to {} {}. {}", channel(channel_id), schedule, since)
        else:
            since = md("Preview, only you see this. Not posted anywhere: set COURSEBOT_DIGEST_CHANNEL. {}", since)
    blocks.append(context(since))
    if digest.empty:
        blocks.append(section(md(":white_check_mark: Nothing new since the last digest: no requests waiting, "
                                 "no new enrolments, no lessons completed, nobody stalled.")))
        return Message(text=summary(digest), blocks=blocks)
    where = " (all in the posted digest's thread)" if preview else " (all in the thread)"
    groups: list[list[Part]] = []
    if digest.pending:
        groups.append([_pending_part(digest, buttons=True, where=where)])
    if digest.auto_approved:
        groups.append([_rule_part(digest, where)])
    if digest.new_enrolments:
        groups.append([_enrolment_part(digest, where)])
    if digest.lessons_completed or digest.finished:
        groups.append(_progress_parts(digest, where))
    if digest.stalled:
        groups.append([_stalled_part(digest, where)])
    chart = [context(chart_line(digest.chart, in_thread=not preview))] if digest.chart_has_data else []
    parts = [part for group in groups for part in group]
    fixed = block_chars(blocks) + block_chars(chart) + sum(p.fixed for p in parts) + 40 * len(parts)
    _share(parts, DIGEST_CHARS - fixed)
    for group in groups:
        blocks.append(divider())
        for part in group:
            blocks += part.blocks()
    blocks += chart
    follow_ups, files = ([], []) if preview else full_lists(digest, [p for p in parts if p.cut and p.full])
    return Message(text=summary(digest), blocks=fit(blocks), follow_ups=follow_ups, files=files)


def full_lists(digest: Digest, parts: list[Part]) -> tuple[list[Message], list[File]]:
    """The lists the digest had to cut, complete, for its thread: as messages (as few as they fit
    in), or when they would take more than `THREAD_PAGES` messages, as one CSV file (with a line
    that says so)."""
    blocks: list[Block] = []
    for part in parts:
        assert part.full is not None
        heading, items = part.full
        blocks += [section(md("*{}*: all of them ({})", heading, len(items))), *sections_of_lines(items)]
    lists = Message(text=md("Course digest for {}: the complete lists", day_label(digest.day)), blocks=blocks)
    if len(lists.pages()) <= THREAD_PAGES:
        return [lists], []
    rows = digest_rows(digest)
    note = md(":page_facing_up: Every name of today's digest ({} lines) is in the CSV file below.", len(rows) - 1)
    out = io.StringIO()
    csv.writer(out).writerows([[csv_cell(cell) for cell in row] for row in rows])
    day = digest.day.isoformat()
    return [simple(note)], [File.of(f"coursebot-digest-{day}.csv", f"Course digest {day}: everyone", out.getvalue())]


def digest_rows(digest: Digest) -> list[list[str]]:
    """Everyone the digest counts, one row each: what, course, member, when."""
    rows = [["list", "course", "member", "when"]]
    for e in digest.pending or []:
        rows.append(["waiting", e.course_title or e.course_id, e.member_name or f"member {e.member_id}",
                     e.created_on.isoformat() if e.created_on else ""])
    rows += [["approved by a rule", a.course_title, a.member_name, a.rule] for a in digest.auto_approved]
    rows += [["new enrolment", g.title, person, ""] for g in digest.new_enrolments for person in g.names]
    rows += [["finished", f.title, f.member_name, f.at.isoformat() if f.at else ""] for f in digest.finished]
    rows += [["lessons completed", row.title, f"{row.lessons} lessons by {row.members} members", ""]
             for row in digest.lessons_by_course]
    rows += [["stalled", g.title, person, ""] for g in digest.stalled for person in g.names]
    return rows


def fit(blocks: list[Block]) -> list[Block]:
    """A last guard: never more than Slack's 50 blocks (the layout above stays well under)."""
    if len(blocks) <= MESSAGE_BLOCKS:
        return blocks
    return [*blocks[: MESSAGE_BLOCKS - 1], context(md("…more in `/course pending` and `/course status`."))]


def decided_block(action: str, user: str, at: datetime) -> Block:
    icon = ":white_check_mark:" if action == "approve" else ":no_entry:"
    verb = "Approved" if action == "approve" else "Blocked"
    return context(md("{} {} by {} · {}", md(icon), verb, mention(user), when(at)))


def state_block(state: AccessState) -> Block:
    return context(md("Now: {} (decided elsewhere)", state_text(state)))


def replace_decided(blocks: list[dict[str, Any]], enrolment_id: str, outcome: Block) -> list[dict[str, Any]] | None:
    """The message's blocks with one request's buttons replaced by its outcome (None if not there)."""
    block_id = (PENDING_BLOCK + enrolment_id)[:255]
    if not any(b.get("block_id") == block_id for b in blocks):
        return None
    return [{**outcome, "block_id": block_id} if b.get("block_id") == block_id else b for b in blocks]
