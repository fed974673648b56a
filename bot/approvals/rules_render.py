"""Approval rules in words: `/course rules`, the replies to a change or a preview, App Home's lines,
and the copy of the rules posted to the approvals channel.

Mentions are built from ids only. A user group is mentioned (`<!subteam^…>`) only where nobody is
notified by it (private replies, App Home); in the channel it is shown by its handle, escaped.
"""

from __future__ import annotations

import re

from bot.approvals.rules import EVERY_COURSE, AutoRule, CourseRules, RuleChange
from bot.approvals.store import ApprovalRequest
from bot.render import Message, context, esc, header, mention, section, sections_of_lines, simple

RULES_BUDGET = 3  # sections of course lines in one reply (3 x 3,000 characters: under Slack's ~12,000 in total)
PREVIEW_NAMES = 10
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


def group_mention(group_id: str, handle: str = "", *, ping: bool = True) -> str:
    """`<!subteam^S…|@handle>` (Slack shows the group's current handle), or the handle as plain text."""
    if ping and _GROUP_ID.match(group_id):
        label = f"|@{handle}" if re.fullmatch(r"[a-z0-9._-]{1,80}", handle) else ""
        return f"<!subteam^{group_id}{label}>"
    return esc(f"@{handle}" if handle else group_id)


def approvers_text(rules: CourseRules, *, ping_groups: bool = True) -> str:
    """`<@U1>, @staff and the managers`, or `the managers only`."""
    if not rules.approvers:
        return "the managers only"
    names = [group_mention(a, rules.handles.get(a, ""), ping=ping_groups) if a.startswith("S") else mention(a)
             for a in rules.approvers]
    return ", ".join(names) + " and the managers"


def auto_text(rules: CourseRules) -> str:
    return ", ".join(esc(r.label) for r in rules.auto) if rules.auto else "none"


def course_name(rules: CourseRules, titles: dict[str, str] | None = None) -> str:
    if rules.every_course:
        return "*every course*"
    title = (titles or {}).get(rules.course_id) or rules.title or f"course {rules.course_id}"
    return f"*{esc(title)}* (id {esc(rules.course_id)})"


def rule_lines(book: dict[str, CourseRules], titles: dict[str, str] | None = None, *,
               ping_groups: bool = True) -> list[str]:
    """One line per course with rules; the rules for every course first."""
    lines = []
    every = book.get(EVERY_COURSE)
    if every is not None and every.auto:
        lines.append(f":globe_with_meridians: *Every course*: auto-approve {auto_text(every)}")
    courses = sorted((r for cid, r in book.items() if cid != EVERY_COURSE),
                     key=lambda r: ((titles or {}).get(r.course_id) or r.title or r.course_id).lower())
    for rules in courses:
        parts = [f"decided by {approvers_text(rules, ping_groups=ping_groups)}"]
        if rules.quorum > 1:
            parts.append(f"needs {rules.quorum} approvals")
        if rules.auto:
            parts.append(f"auto-approve {auto_text(rules)}")
        lines.append(f"• {course_name(rules, titles)}: " + " · ".join(parts))
    return lines


def rules_message(book: dict[str, CourseRules], titles: dict[str, str], *, platform: str) -> Message:
    """`/course rules`."""
    lines = rule_lines(book, titles)
    if not lines:
        return simple(":scales: No approval rules yet: the managers decide every waiting request on "
                      f"{esc(platform)}, one approval each, and nothing is approved by itself. Set some with "
                      "`/course approvers`, `/course autoapprove` and `/course quorum`.")
    blocks = [header("Approval rules"), *sections_of_lines(lines, budget=RULES_BUDGET),
              context("Managers decide every course. Courses not listed: the managers, one approval each, no "
                      "auto-approve. Change them with `/course approvers`, `/course autoapprove`, `/course quorum`.")]
    return Message(text=f"Approval rules of {len(lines)} course(s)", blocks=blocks)


def show_approvers_message(rules: CourseRules, title: str) -> Message:
    name = course_name(rules, {rules.course_id: title})
    text = f":busts_in_silhouette: {name} is decided by {approvers_text(rules)}."
    if rules.quorum > 1:
        text += f" It needs {rules.quorum} approvals from different people."
    if not rules.approvers:
        text += " Add approvers: `/course approvers <course> @user @user-group`."
    return simple(text)


def change_message(change: RuleChange, *, title: str, waiting: int, matching: int | None = None,
                   channel: str | None = None) -> Message:
    """The reply to `/course approvers|autoapprove|quorum` that changed (or would have changed) something."""
    before, after = change.before, change.after
    name = course_name(after, {after.course_id: title})
    if change.what == "approvers":
        now, was = approvers_text(after), approvers_text(before)
        text = f"{name} is decided by {now}" + (f" (before: {was})." if change.changed else ".")
    elif change.what == "quorum":
        text = f"{name} needs {after.quorum} approval{'s' if after.quorum > 1 else ''} from different people"
        text += f" (before: {before.quorum})." if change.changed else "."
        if after.quorum > 1:
            text += " One Block decides at once."
    else:
        text = f"Auto-approve for {name}: {auto_text(after)}"
        text += f" (before: {auto_text(before)})." if change.changed else "."
    if not change.changed:
        return simple(f"Nothing to change: {text}")
    blocks = [section(f":white_check_mark: {text}")]
    notes = []
    if waiting:
        noun = "request" if waiting == 1 else "requests"
        notes.append(f"{waiting} waiting {noun} of this course now show{'s' if waiting == 1 else ''} this on "
                     f"{'its card' if waiting == 1 else 'their cards'}.")
    if matching:
        notes.append(f"{matching} waiting request{'s' if matching != 1 else ''} match{'es' if matching == 1 else ''} "
                     "now: the next sync approves them (within a minute or so), through the same path as a click.")
    if notes:
        blocks.append(context(" ".join(notes)))
    if not change.copied:
        where = f"<#{channel}>" if channel else "the approvals channel (COURSEBOT_APPROVALS_CHANNEL is not set)"
        blocks.append(context(f":warning: The copy of the rules in {where} could not be posted, so this change "
                              "would be lost if Redis lost its data; the next sync tries again."))
    return Message(text=esc(f"Approval rules changed: {change.what}"), blocks=blocks)


def preview_message(rule: AutoRule, scope: CourseRules, title: str, found: list[ApprovalRequest],
                    waiting: int, *, note: str = "") -> Message:
    name = course_name(scope, {scope.course_id: title})
    head = (f":mag: Preview, nothing was changed: `{esc(rule.label)}` for {name} matches "
            f"{len(found)} of the {waiting} waiting request{'s' if waiting != 1 else ''} now.")
    lines = [f"• *{esc(r.member_label)}* ({esc(r.member_email) or 'no email'}) → {esc(r.course_title or r.course_id)}"
             for r in found[:PREVIEW_NAMES]]
    if len(found) > PREVIEW_NAMES:
        lines.append(f"…and {len(found) - PREVIEW_NAMES} more.")
    blocks = [section(head), *sections_of_lines(lines, budget=2)]
    if note:
        blocks.append(context(f":warning: {note}"))
    blocks.append(context("Run it again without `--preview` to add the rule; the next sync then approves these."))
    return Message(text=esc(f"Preview: {len(found)} waiting requests match"), blocks=blocks)


def copy_message(book: dict[str, CourseRules], change: RuleChange | None) -> Message:
    """The message in the approvals channel that carries the copy of the rules (in its metadata)."""
    if change is not None:
        target = course_name(change.after)
        what = {"approvers": f"the approvers of {target}: {approvers_text(change.after, ping_groups=False)}",
                "quorum": f"the quorum of {target}: {change.before.quorum} → {change.after.quorum}",
                }.get(change.what, f"auto-approve for {target}: {auto_text(change.after)}")
        head = f":scales: {mention(change.actor)} changed {what}."
    else:
        head = ":scales: The approval rules, as they are now."
    lines = rule_lines(book, ping_groups=False) or ["No approval rules: the managers decide every request."]
    return Message(text=esc("Approval rules changed"), blocks=[
        section(head), *sections_of_lines(lines, budget=RULES_BUDGET),
        context("This message keeps a copy of every course's approval rules, so the bot can restore them if its "
                "store (Redis) is reset. `/course rules` lists them."),
    ])
