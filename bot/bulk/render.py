"""Bulk jobs in Slack: the confirmation, the live progress message, the final report (and its CSV), the form."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from bot.bulk.service import CONFIRM_ABOVE, JobRecord, JobStatus, Outcome, Plan, Report, Snapshot, StepLabels
from bot.bulk.targets import Unresolved
from bot.core.models import Course
from bot.render import Block, Message, context, esc, fields, mention, section, sections_of_lines, simple, when
from bot.render.ids import ActionId, ViewId

START_ACTION = ActionId.BULK_START
DISCARD_ACTION = ActionId.BULK_DISCARD
CANCEL_ACTION = ActionId.BULK_CANCEL
MODAL_CALLBACK = ViewId.BULK_INVITE
CSV_ABOVE = 20  # a report with more rows than this also comes as a CSV file
LIST_LINES = 20  # people listed in a message before "…and N more"
BAR_WIDTH = 20
COURSE_OPTIONS = 100  # Slack's limit for a static_select

# The unit each platform's budget counts, and the setting that sets its daily part.
BUDGET_WORDS = {"Nexudus": ("writes", "NEXUDUS_WRITES_PER_MINUTE", "NEXUDUS_WRITES_PER_DAY"),
                "MeltingSpot": ("requests", "MELTINGSPOT_REQUESTS_PER_10S", "")}


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def rate_text(per_second: float, unit: str) -> str:
    if per_second >= 1:
        return f"{per_second:.1f} {unit} a second"
    return f"{per_second * 60:.0f} {unit} a minute"


def people(count: int) -> str:
    return f"{count} {'person' if count == 1 else 'people'}"


def outcome_label(outcome: Outcome, labels: StepLabels, platform: str) -> str:
    return {
        Outcome.DONE: labels.done.capitalize(),
        Outcome.ALREADY: labels.already.capitalize(),
        Outcome.NOT_IN_SLACK: "Not found in Slack",
        Outcome.NOT_ON_PLATFORM: f"Not found on {platform}",
        Outcome.FAILED: "Failed",
        Outcome.NOT_DONE: "Not done",
    }[outcome]


def who(name: str, email: str, slack_user: str) -> str:
    parts = [mention(slack_user)] if slack_user else []
    if name and not slack_user:
        parts.append(f"*{esc(name)}*")
    if email:
        parts.append(esc(email))
    return " ".join(parts) or "someone"


def unresolved_lines(rows: list[Unresolved], platform: str, labels: StepLabels) -> list[str]:
    return [f"• {who(r.name, r.email, r.slack_user)}: {outcome_label(r.outcome, labels, platform).lower()}. "
            f"{esc(r.reason)}" for r in rows]


def capped(lines: list[str], limit: int = LIST_LINES) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"…and {len(lines) - limit} more."]


def heading(record: JobRecord, labels: StepLabels, count: int, *, question: bool = False) -> str:
    verb = labels.verb if question else labels.doing
    return f"{verb} {people(count)} {labels.target} *{esc(record.course_title)}*{'?' if question else ''}"


# ---- before the job --------------------------------------------------------------------------

def plan_lines(plan: Plan) -> list[str]:
    labels, platform = plan.labels, plan.platform
    lines = [f"• {len(plan.items)} found on {esc(platform)}: {plan.to_do} to do, {plan.already} {labels.already}"]
    if plan.unresolved:
        lines.append(f"• {len(plan.unresolved)} could not be found (listed below, and in the final report)")
    if plan.skipped_bots:
        lines.append(f"• {plan.skipped_bots} bots or deactivated accounts skipped")
    return lines


def budget_lines(plan: Plan) -> list[str]:
    unit, pace_setting, daily_setting = BUDGET_WORDS.get(plan.platform, ("requests", "", ""))
    lines: list[str] = []
    if plan.per_second and plan.to_do:
        lines.append(f"About {duration(plan.estimate_seconds)} at the current budget of "
                     f"{rate_text(plan.per_second, unit)}" + (f" (`{pace_setting}`)." if pace_setting else "."))
    if plan.over_daily_budget:
        left = plan.remaining_today or 0
        setting = f" (`{daily_setting}` = {plan.daily})" if daily_setting and plan.daily else ""
        lines.append(f":warning: Only {left} {unit} are left in today's {esc(plan.platform)} budget{setting}: the job "
                     f"does what that allows now and carries on by itself as the budget frees up, over the next "
                     f"24 hours. The progress message says when.")
    return lines


def confirm_message(plan: Plan) -> Message:
    record = plan.record
    text = heading(record, plan.labels, len(plan.items), question=True)
    blocks: list[Block] = [section(text + "\n" + "\n".join(plan_lines(plan)))]
    blocks.extend(context(line) for line in budget_lines(plan))
    if plan.unresolved:
        blocks.extend(sections_of_lines(capped(unresolved_lines(plan.unresolved, plan.platform, plan.labels)),
                                        budget=8))
    why = (f"You asked for more than {CONFIRM_ABOVE} people" if len(plan.items) + len(plan.unresolved) > CONFIRM_ABOVE
           else "Today's budget will not do it all")
    blocks.append(context(f"{why}, so I ask before starting. Nothing has changed yet."))
    blocks.append({
        "type": "actions", "block_id": f"bulk:{record.id}",
        "elements": [
            {"type": "button", "action_id": START_ACTION, "value": record.id, "style": "primary",
             "text": {"type": "plain_text", "text": f"Start: {plan.labels.verb.lower()} {people(plan.to_do)}"}},
            {"type": "button", "action_id": DISCARD_ACTION, "value": record.id,
             "text": {"type": "plain_text", "text": "Cancel"}},
        ],
    })
    return Message(text=f"{plan.labels.verb} {people(len(plan.items))} to {record.course_title}?", blocks=blocks)


def started_message(plan: Plan, *, dm: bool) -> Message:
    where = "in our direct messages" if dm else "below"
    text = f":rocket: {heading(plan.record, plan.labels, len(plan.items))}. Progress and the report are {where}."
    blocks = [section(text)]
    if plan.unresolved or plan.already:
        blocks.append(section("\n".join(plan_lines(plan))))
    if plan.unresolved:
        blocks.extend(sections_of_lines(capped(unresolved_lines(plan.unresolved, plan.platform, plan.labels)),
                                        budget=8))
    return Message(text=f"{plan.labels.doing} {people(plan.to_do)} to {plan.record.course_title}", blocks=blocks)


def nothing_to_do_message(plan: Plan) -> Message:
    if plan.items:
        text = (f"Nothing to do: all {people(len(plan.items))} found on {esc(plan.platform)} are "
                f"{plan.labels.already} in *{esc(plan.record.course_title)}*.")
    else:
        text = f"Nobody to {plan.labels.verb.lower()}: I could not find any of them on {esc(plan.platform)}."
    blocks = [section(text)]
    if plan.unresolved:
        blocks.extend(sections_of_lines(capped(unresolved_lines(plan.unresolved, plan.platform, plan.labels)),
                                        budget=8))
    blocks.append(context("Nothing was changed."))
    return Message(text=text, blocks=blocks)


def discarded_message(record: JobRecord, by: str) -> Message:
    return Message(text="Not started",
                   blocks=[section(f"Not started: {mention(by)} cancelled it. Nothing was changed."),
                           context(f"{esc(record.course_title)} · job {esc(record.id)}")])


def confirmed_message(record: JobRecord, labels: StepLabels) -> Message:
    by = record.confirmed_by or record.actor
    text = (f":rocket: {mention(by)} started it: {heading(record, labels, record.people)}. "
            "Progress and the report are in their direct messages with me.")
    return Message(text=f"{labels.doing} {people(record.people)} to {record.course_title}", blocks=[
        section(text), context(f"job {esc(record.id)}")])


def claimed_message(record: JobRecord, note: str) -> Message:
    return Message(text=note, blocks=[section(f":information_source: {esc(note)}"),
                                      context(f"{esc(record.course_title)} · job {esc(record.id)}")])


# ---- while it runs ---------------------------------------------------------------------------

def bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    return "`" + "█" * filled + "░" * (BAR_WIDTH - filled) + "`"


def count_line(snapshot: Snapshot) -> str:
    labels, counts = snapshot.labels, snapshot.counts
    parts = [f"{counts[Outcome.DONE]} {labels.done}", f"{counts[Outcome.ALREADY]} {labels.already}"]
    if counts[Outcome.FAILED]:
        parts.append(f"{counts[Outcome.FAILED]} failed")
    return " · ".join(parts)


def progress_message(snapshot: Snapshot) -> Message:
    record, labels = snapshot.record, snapshot.labels
    total, done = snapshot.total, snapshot.processed
    percent = round(100 * done / total) if total else 100
    lines = [f"{heading(record, labels, total)} ({esc(record.platform)})",
             f"{bar(done, total)} {done} of {total} · {percent}%",
             count_line(snapshot)]
    blocks: list[Block] = [section("\n".join(lines))]
    if snapshot.cancelling:
        blocks.append(context(":hourglass_flowing_sand: Cancelling: the members already in progress finish, "
                              "then the report follows."))
    elif record.status is JobStatus.PAUSED and record.resume_at:
        unit, _, daily_setting = BUDGET_WORDS.get(record.platform, ("requests", "", ""))
        resume = datetime.fromtimestamp(record.resume_at, UTC)
        blocks.append(section(f":double_vertical_bar: Paused: today's {esc(record.platform)} budget of {unit} is "
                              f"spent{f' (`{daily_setting}`)' if daily_setting else ''}. It carries on by itself "
                              f"at {when(resume)}; nothing is lost meanwhile."))
    elif record.status is JobStatus.QUEUED:
        blocks.append(context("Queued: a worker starts it in a moment. If it stays here, check that "
                              "`coursebot worker` is running."))
    else:
        pace = []
        if snapshot.rate:
            pace.append(f"{snapshot.rate:.1f} a second" if snapshot.rate >= 1 else
                        f"{snapshot.rate * 60:.0f} a minute")
        if snapshot.eta_seconds is not None:
            pace.append(f"about {duration(snapshot.eta_seconds)} left")
        if pace:
            blocks.append(context(" · ".join(pace)))
    if not snapshot.cancelling:
        blocks.append({"type": "actions", "block_id": f"bulk_run:{record.id}", "elements": [
            {"type": "button", "action_id": CANCEL_ACTION, "value": record.id, "style": "danger",
             "text": {"type": "plain_text", "text": "Cancel"},
             "confirm": {"title": {"type": "plain_text", "text": "Cancel the job?"},
                         "text": {"type": "plain_text", "text": "Whoever is already done stays done; nobody "
                                                                 "else is changed."},
                         "confirm": {"type": "plain_text", "text": "Cancel it"},
                         "deny": {"type": "plain_text", "text": "Keep going"}}},
        ]})
    blocks.append(context(f"Started by {mention(record.confirmed_by or record.actor)} · job {esc(record.id)}"))
    return Message(text=f"{labels.doing} {people(total)}: {done} of {total}", blocks=blocks)


# ---- the report ------------------------------------------------------------------------------

def report_message(report: Report, *, csv_attached: bool) -> Message:
    record, labels, counts = report.record, report.labels, report.counts
    platform = record.platform
    total = len(report.rows)
    if record.status is JobStatus.CANCELLED:
        title = f":no_entry_sign: Cancelled by {mention(record.cancelled_by or '')}: {labels.doing.lower()} " \
                f"{people(record.people)} {labels.target} *{esc(record.course_title)}*"
    elif record.status is JobStatus.STOPPED:
        title = f":x: Stopped: {labels.doing.lower()} {people(record.people)} {labels.target} " \
                f"*{esc(record.course_title)}*. {esc(record.stop_reason or '')}"
    else:
        title = f":white_check_mark: Done: {labels.doing.lower()} {people(record.people)} {labels.target} " \
                f"*{esc(record.course_title)}*"
    order = [Outcome.DONE, Outcome.ALREADY, Outcome.NOT_IN_SLACK, Outcome.NOT_ON_PLATFORM, Outcome.FAILED,
             Outcome.NOT_DONE]
    pairs = [(outcome_label(o, labels, platform), str(counts[o])) for o in order
             if counts[o] or o in (Outcome.DONE, Outcome.ALREADY, Outcome.FAILED)]
    blocks: list[Block] = [section(title), fields(pairs)]
    problems = [row for row in report.rows if row.outcome in (Outcome.NOT_IN_SLACK, Outcome.NOT_ON_PLATFORM,
                                                               Outcome.FAILED)]
    if problems:
        lines = [f"• {who(r.name, r.email, r.slack_user)}: {outcome_label(r.outcome, labels, platform).lower()}. "
                 f"{esc(r.reason)}" for r in problems]
        blocks.extend(sections_of_lines(capped(lines), budget=10))
    notes = [f"Took {duration(report.elapsed)}", f"job {esc(record.id)}"]
    if csv_attached:
        notes.append(f"all {total} rows in the CSV file in this thread")
    blocks.append(context(" · ".join(notes)))
    summary = ", ".join(f"{counts[o]} {outcome_label(o, labels, platform).lower()}" for o in order if counts[o])
    return Message(text=f"{record.course_title}: {summary or 'nobody'}", blocks=blocks)


def report_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", "slack_user", "platform_member_id", "outcome", "reason"])
    for row in report.rows:
        writer.writerow([_cell(row.name), _cell(row.email), row.slack_user, row.member_id,
                         outcome_label(row.outcome, report.labels, report.record.platform), _cell(row.reason)])
    return out.getvalue()


def _cell(value: str) -> str:
    """Keep a spreadsheet from running a name that starts like a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_filename(report: Report) -> str:
    day = datetime.fromtimestamp(report.record.created_at or 0, UTC).strftime("%Y-%m-%d")
    return f"{report.record.kind}-{report.record.id}-{day}.csv"


# ---- the form --------------------------------------------------------------------------------

def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def loading_modal(channel: str) -> dict[str, Any]:
    return {"type": "modal", "callback_id": MODAL_CALLBACK, "title": _plain("Invite to a course"),
            "close": _plain("Cancel"), "private_metadata": json.dumps({"channel": channel}),
            "blocks": [section("Loading the courses…")]}


EMAIL_OPTION = "send"


def invite_modal(courses: list[Course], *, course_id: str | None, channel: str,
                 send_email: bool | None = None, platform: str = "the platform") -> dict[str, Any]:
    """`send_email`: the checkbox "Email each person…", ticked or not; None (the platform sends no
    invitation email): no checkbox."""
    options = [{"text": _plain(c.title[:75]), "value": c.id[:150]} for c in courses[:COURSE_OPTIONS]]
    course_select: dict[str, Any] = {"type": "static_select", "action_id": "course", "options": options,
                                     "placeholder": _plain("Pick a course")}
    chosen = next((o for o in options if o["value"] == course_id), None)
    if chosen:
        course_select["initial_option"] = chosen
    blocks: list[Block] = [
        {"type": "input", "block_id": "course", "label": _plain("Course"), "element": course_select},
        {"type": "input", "block_id": "people", "optional": True, "label": _plain("People"),
         "element": {"type": "multi_users_select", "action_id": "people", "placeholder": _plain("Pick people")}},
        {"type": "input", "block_id": "channels", "optional": True, "label": _plain("Everyone in these channels"),
         "element": {"type": "multi_conversations_select", "action_id": "channels",
                     "placeholder": _plain("Pick channels"),
                     "filter": {"include": ["public", "private"], "exclude_bot_users": True}}},
        {"type": "input", "block_id": "emails", "optional": True, "label": _plain("Emails"),
         "hint": _plain("One or more, separated by spaces, commas or new lines."),
         "element": {"type": "plain_text_input", "action_id": "emails", "multiline": True,
                     "placeholder": _plain("ada@example.com, grace@example.com")}},
        context(f"Above {CONFIRM_ABOVE} people I ask before starting. Progress and the report come in our "
                "direct messages."),
    ]
    if send_email is not None:
        option = {"text": _plain(f"Email each person {platform}'s invitation"[:75]), "value": EMAIL_OPTION,
                  "description": _plain("Untick to invite them without an email.")}
        checkbox: dict[str, Any] = {"type": "checkboxes", "action_id": "email", "options": [option]}
        if send_email:
            checkbox["initial_options"] = [option]
        blocks.insert(-1, {"type": "input", "block_id": "email", "optional": True, "label": _plain("Tell them"),
                           "element": checkbox})
    if len(courses) > COURSE_OPTIONS:
        blocks.insert(0, context(f"Only the first {COURSE_OPTIONS} courses fit here: for another one, type "
                                 "`/course invite \"<course>\" <people…>`."))
    return {"type": "modal", "callback_id": MODAL_CALLBACK, "title": _plain("Invite to a course"),
            "submit": _plain("Next"), "close": _plain("Cancel"),
            "private_metadata": json.dumps({"channel": channel}), "blocks": blocks}


def vanished_message(course: str, done: int | None, total: int | None) -> Message:
    """A job whose records Redis lost (flushed, or restarted without persistence)."""
    where = f" in *{esc(course)}*" if course else ""
    progress = f" {done} of {total} people were done before that." if done is not None and total else ""
    return simple(f":warning: A bulk job{where} lost its records in Redis (the store was flushed or restarted "
                  f"without persistence), so it stopped.{progress} Run the same command again: people already "
                  "done are skipped.")
