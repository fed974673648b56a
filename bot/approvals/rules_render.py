"""Approval rules in words: `/course rules`, the replies to a change or a preview, App Home's lines,
and the copy of the rules posted to the approvals channel.

Mentions are built from ids only. A user group is mentioned (`<!subteam^…>`) only where nobody is
notified by it (private replies, App Home); in the channel it is shown by its handle, escaped.
"""

from __future__ import annotations

from bot.approvals.rules import EVERY_COURSE, AutoRule, CourseRules, RuleChange
from bot.approvals.store import ApprovalRequest
from bot.render import (
    Message,
    Mrkdwn,
    context,
    header,
    join,
    md,
    mention,
    name,
    section,
    sections_of_lines,
    simple,
    usergroup,
)
from bot.render import channel as channel_ref

RULES_BUDGET = 3  # sections of course lines in one reply (3 x 3,000 characters: under Slack's ~12,000 in total)
PREVIEW_NAMES = 10


def group_mention(group_id: str, handle: str = "", *, ping: bool = True) -> Mrkdwn:
    """`<!subteam^S…|@handle>` (Slack shows the group's current handle), or the handle as plain text."""
    if ping:
        return usergroup(group_id, handle)
    return name(f"@{handle}" if handle else group_id)


def approvers_text(rules: CourseRules, *, ping_groups: bool = True) -> Mrkdwn:
    """`<@U1>, @staff and the managers`, or `the managers only`."""
    if not rules.approvers:
        return md("the managers only")
    names = [group_mention(a, rules.handles.get(a, ""), ping=ping_groups) if a.startswith("S") else mention(a)
             for a in rules.approvers]
    return md("{} and the managers", join(names))


def auto_text(rules: CourseRules) -> Mrkdwn:
    return join(name(r.label) for r in rules.auto) if rules.auto else md("none")


def course_name(rules: CourseRules, titles: dict[str, str] | None = None) -> Mrkdwn:
    if rules.every_course:
        return md("*every course*")
    title = (titles or {}).get(rules.course_id) or rules.title or f"course {rules.course_id}"
    return md("*{}* (id {})", name(title, 150), rules.course_id)


def rule_lines(book: dict[str, CourseRules], titles: dict[str, str] | None = None, *,
               ping_groups: bool = True) -> list[Mrkdwn]:
    """One line per course with rules; the rules for every course first."""
    lines = []
    every = book.get(EVERY_COURSE)
    if every is not None and every.auto:
        lines.append(md(":globe_with_meridians: *Every course*: auto-approve {}", auto_text(every)))
    courses = sorted((r for cid, r in book.items() if cid != EVERY_COURSE),
                     key=lambda r: ((titles or {}).get(r.course_id) or r.title or r.course_id).lower())
    for rules in courses:
        parts = [md("decided by {}", approvers_text(rules, ping_groups=ping_groups))]
        if rules.quorum > 1:
            parts.append(md("needs {} approvals", rules.quorum))
        if rules.auto:
            parts.append(md("auto-approve {}", auto_text(rules)))
        lines.append(md("• {}: {}", course_name(rules, titles), join(parts, " · ")))
    return lines


def rules_message(book: dict[str, CourseRules], titles: dict[str, str], *, platform: str) -> Message:
    """`/course rules`."""
    lines = rule_lines(book, titles)
    if not lines:
        return simple(md(":scales: No approval rules yet: the managers decide every waiting request on {}, one "
                         "approval each, and nothing is approved by itself. Set some with `/course approvers`, "
                         "`/course autoapprove` and `/course quorum`.", platform))
    blocks = [header("Approval rules"), *sections_of_lines(lines, budget=RULES_BUDGET),
              context(md("Managers decide every course. Courses not listed: the managers, one approval each, no "
                         "auto-approve. Change them with `/course approvers`, `/course autoapprove`, "
                         "`/course quorum`."))]
    return Message(text=md("Approval rules of {} course(s)", len(lines)), blocks=blocks)


def show_approvers_message(rules: CourseRules, title: str) -> Message:
    course = course_name(rules, {rules.course_id: title})
    text = md(":busts_in_silhouette: {} is decided by {}.", course, approvers_text(rules))
    if rules.quorum > 1:
        text = md("{} It needs {} approvals from different people.", text, rules.quorum)
    if not rules.approvers:
        text = md("{} Add approvers: `/course approvers <course> @user @user-group`.", text)
    return simple(text)


def change_message(change: RuleChange, *, title: str, waiting: int, matching: int | None = None,
                   channel: str | None = None) -> Message:
    """The reply to `/course approvers|autoapprove|quorum` that changed (or would have changed) something."""
    before, after = change.before, change.after
    course = course_name(after, {after.course_id: title})
    if change.what == "approvers":
        now, was = approvers_text(after), approvers_text(before)
        text = md("{} is decided by {}{}", course, now, md(" (before: {}).", was) if change.changed else md("."))
    elif change.what == "quorum":
        text = md("{} needs {} approval{} from different people{}", course, after.quorum,
                  "s" if after.quorum > 1 else "", md(" (before: {}).", before.quorum) if change.changed else md("."))
        if after.quorum > 1:
            text = md("{} One Block decides at once.", text)
    else:
        text = md("Auto-approve for {}: {}{}", course, auto_text(after),
                  md(" (before: {}).", auto_text(before)) if change.changed else md("."))
    if not change.changed:
        return simple(md("Nothing to change: {}", text))
    blocks = [section(md(":white_check_mark: {}", text))]
    notes: list[Mrkdwn] = []
    if waiting:
        noun = "request" if waiting == 1 else "requests"
        notes.append(md("{} waiting {} of this course now show{} this on {}.", waiting, noun,
                        "s" if waiting == 1 else "", "its card" if waiting == 1 else "their cards"))
    if matching:
        notes.append(md("{} waiting request{} match{} now: the next sync approves them (within a minute or so), "
                        "through the same path as a click.", matching, "s" if matching != 1 else "",
                        "es" if matching == 1 else ""))
    if notes:
        blocks.append(context(join(notes, " ")))
    if not change.copied:
        where = channel_ref(channel) if channel else md("the approvals channel (COURSEBOT_APPROVALS_CHANNEL is "
                                                          "not set)")
        blocks.append(context(md(":warning: The copy of the rules in {} could not be posted, so this change would be "
                                 "lost if Redis lost its data; the next sync tries again.", where)))
    return Message(text=md("Approval rules changed: {}", change.what), blocks=blocks)


def preview_message(rule: AutoRule, scope: CourseRules, title: str, found: list[ApprovalRequest],
                    waiting: int, *, note: str = "") -> Message:
    course = course_name(scope, {scope.course_id: title})
    head = md(":mag: Preview, nothing was changed: `{}` for {} matches {} of the {} waiting request{} now.",
              rule.label, course, len(found), waiting, "s" if waiting != 1 else "")
    lines = [md("• *{}* ({}) → {}", name(r.member_label), r.member_email or "no email",
                name(r.course_title or r.course_id)) for r in found[:PREVIEW_NAMES]]
    if len(found) > PREVIEW_NAMES:
        lines.append(md("…and {} more.", len(found) - PREVIEW_NAMES))
    blocks = [section(head), *sections_of_lines(lines, budget=2)]
    if note:
        blocks.append(context(md(":warning: {}", note)))
    blocks.append(context(md("Run it again without `--preview` to add the rule; the next sync then approves these.")))
    return Message(text=md("Preview: {} waiting requests match", len(found)), blocks=blocks)


def copy_message(book: dict[str, CourseRules], change: RuleChange | None) -> Message:
    """The message in the approvals channel that carries the copy of the rules (in its metadata)."""
    if change is not None:
        target = course_name(change.after)
        what = {"approvers": md("the approvers of {}: {}", target, approvers_text(change.after, ping_groups=False)),
                "quorum": md("the quorum of {}: {} → {}", target, change.before.quorum, change.after.quorum),
                }.get(change.what, md("auto-approve for {}: {}", target, auto_text(change.after)))
        head = md(":scales: {} changed {}.", mention(change.actor), what)
    else:
        head = md(":scales: The approval rules, as they are now.")
    lines = rule_lines(book, ping_groups=False) or [md("No approval rules: the managers decide every request.")]
    return Message(text=md("Approval rules changed"), blocks=[
        section(head), *sections_of_lines(lines, budget=RULES_BUDGET),
        context(md("This message keeps a copy of every course's approval rules, so the bot can restore them if its "
                   "store (Redis) is reset. `/course rules` lists them.")),
    ])
