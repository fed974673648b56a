"""Bulk jobs in Slack: the confirmation, the live progress message, the final report (and its CSV), the form."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from bot.bulk.service import (
    CONFIRM_ABOVE,
    JobRecord,
    JobStatus,
    Outcome,
    Plan,
    Report,
    ReportRow,
    Snapshot,
    StepLabels,
)
from bot.bulk.targets import Unresolved
from bot.core.models import Course
from bot.render import (
    EMPTY,
    Block,
    Message,
    Mrkdwn,
    actions,
    button,
    confirm,
    context,
    csv_cell,
    email,
    fields,
    file_title,
    input_block,
    join,
    md,
    mention,
    modal,
    name,
    option,
    plain_text,
    section,
    sections_of_lines,
    sentence,
    simple,
    when,
)
from bot.render.ids import ActionId, ViewId

START_ACTION = ActionId.BULK_START
DISCARD_ACTION = ActionId.BULK_DISCARD
CANCEL_ACTION = ActionId.BULK_CANCEL
MODAL_CALLBACK = ViewId.BULK_INVITE
CSV_ABOVE = 20  # a report with more rows than this also comes as a CSV file
LIST_LINES = 20  # people listed in a message before "…and N more"
BAR_WIDTH = 20
COURSE_OPTIONS = 100  # Slack's limit for a static_select
OPTION_MAX = 75

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


def who(person: str, address: str, slack_user: str) -> Mrkdwn:
    parts = [mention(slack_user)] if slack_user else []
    if person and not slack_user:
        parts.append(md("*{}*", name(person)))
    if address:
        parts.append(email(address))
    return join(parts, " ") if parts else md("someone")


def problem_line(row: Unresolved | ReportRow, platform: str, labels: StepLabels) -> Mrkdwn:
    return md("• {}: {}. {}", who(row.name, row.email, row.slack_user),
              outcome_label(row.outcome, labels, platform).lower(), sentence(row.reason, 300))


def unresolved_lines(rows: list[Unresolved], platform: str, labels: StepLabels) -> list[Mrkdwn]:
    return [problem_line(r, platform, labels) for r in rows]


def capped(items: list[Mrkdwn], limit: int = LIST_LINES, *, where: Mrkdwn = EMPTY) -> list[Mrkdwn]:
    if len(items) <= limit:
        return items
    return [*items[:limit], md("…and {} more{}.", len(items) - limit, where)]


def heading(record: JobRecord, labels: StepLabels, count: int, *, question: bool = False) -> Mrkdwn:
    verb = labels.verb if question else labels.doing
    return md("{} {} {} *{}*{}", verb, people(count), labels.target, name(record.course_title),
              "?" if question else "")


# ---- before the job --------------------------------------------------------------------------

def plan_lines(plan: Plan) -> list[Mrkdwn]:
    labels, platform = plan.labels, plan.platform
    items = [md("• {} found on {}: {} to do, {} {}", len(plan.items), platform, plan.to_do, plan.already,
                labels.already)]
    if plan.unresolved:
        items.append(md("• {} could not be found (listed below, and in the final report)", len(plan.unresolved)))
    if plan.skipped_bots:
        items.append(md("• {} bots or deactivated accounts skipped", plan.skipped_bots))
    return items


def budget_lines(plan: Plan) -> list[Mrkdwn]:
    unit, pace_setting, daily_setting = BUDGET_WORDS.get(plan.platform, ("requests", "", ""))
    items: list[Mrkdwn] = []
    if plan.per_second and plan.to_do:
        setting = md(" (`{}`).", pace_setting) if pace_setting else md(".")
        items.append(md("About {} at the current budget of {}{}", duration(plan.estimate_seconds),
                        rate_text(plan.per_second, unit), setting))
    if plan.over_daily_budget:
        left = plan.remaining_today or 0
        setting = md(" (`{}` = {})", daily_setting, plan.daily) if daily_setting and plan.daily else EMPTY
        items.append(md(":warning: Only {} {} are left in today's {} budget{}: the job does what that allows now "
                        "and carries on by itself as the budget frees up, over the next 24 hours. The progress "
                        "message says when.", left, unit, plan.platform, setting))
    return items


def _unresolved_blocks(plan: Plan) -> list[Block]:
    if not plan.unresolved:
        return []
    items = capped(unresolved_lines(plan.unresolved, plan.platform, plan.labels),
                   where=md(" (all in the final report)"))
    return sections_of_lines(items, budget=8)


def confirm_message(plan: Plan) -> Message:
    record = plan.record
    text = heading(record, plan.labels, len(plan.items), question=True)
    blocks: list[Block] = [section(join([text, *plan_lines(plan)], "\n"))]
    blocks.extend(context(line) for line in budget_lines(plan))
    blocks.extend(_unresolved_blocks(plan))
    why = (f"You asked for more than {CONFIRM_ABOVE} people" if len(plan.items) + len(plan.unresolved) > CONFIRM_ABOVE
           else "Today's budget will not do it all")
    blocks.append(context(md("{}, so I ask before starting. Nothing has changed yet.", why)))
    blocks.append(actions(f"bulk:{record.id}", [
        button(f"Start: {plan.labels.verb.lower()} {people(plan.to_do)}", START_ACTION, record.id, style="primary"),
        button("Cancel", DISCARD_ACTION, record.id),
    ]))
    return Message(text=md("{} {} to {}?", plan.labels.verb, people(len(plan.items)), name(record.course_title)),
                   blocks=blocks)


def started_message(plan: Plan, *, dm: bool) -> Message:
    where = "in our direct messages" if dm else "below"
    text = md(":rocket: {}. Progress and the report are {}.", heading(plan.record, plan.labels, len(plan.items)),
              where)
    blocks = [section(text)]
    if plan.unresolved or plan.already:
        blocks.append(section(join(plan_lines(plan), "\n")))
    blocks.extend(_unresolved_blocks(plan))
    return Message(text=md("{} {} to {}", plan.labels.doing, people(plan.to_do), name(plan.record.course_title)),
                   blocks=blocks)


def nothing_to_do_message(plan: Plan) -> Message:
    if plan.items:
        text = md("Nothing to do: all {} found on {} are {} in *{}*.", people(len(plan.items)), plan.platform,
                  plan.labels.already, name(plan.record.course_title))
    else:
        text = md("Nobody to {}: I could not find any of them on {}.", plan.labels.verb.lower(), plan.platform)
    blocks = [section(text), *_unresolved_blocks(plan), context(md("Nothing was changed."))]
    return Message(text=text, blocks=blocks)


def discarded_message(record: JobRecord, by: str) -> Message:
    return Message(text=md("Not started"),
                   blocks=[section(md("Not started: {} cancelled it. Nothing was changed.", mention(by))),
                           context(md("{} · job {}", name(record.course_title), record.id))])


def confirmed_message(record: JobRecord, labels: StepLabels) -> Message:
    by = record.confirmed_by or record.actor
    text = md(":rocket: {} started it: {}. Progress and the report are in their direct messages with me.",
              mention(by), heading(record, labels, record.people))
    return Message(text=md("{} {} to {}", labels.doing, people(record.people), name(record.course_title)),
                   blocks=[section(text), context(md("job {}", record.id))])


def claimed_message(record: JobRecord, note: str) -> Message:
    return Message(text=sentence(note), blocks=[section(md(":information_source: {}", sentence(note))),
                                                context(md("{} · job {}", name(record.course_title), record.id))])


# ---- while it runs ---------------------------------------------------------------------------

def bar(done: int, total: int) -> Mrkdwn:
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    return md("`{}{}`", "█" * filled, "░" * (BAR_WIDTH - filled))


def count_line(snapshot: Snapshot) -> Mrkdwn:
    labels, counts = snapshot.labels, snapshot.counts
    parts = [md("{} {}", counts[Outcome.DONE], labels.done), md("{} {}", counts[Outcome.ALREADY], labels.already)]
    if counts[Outcome.FAILED]:
        parts.append(md("{} failed", counts[Outcome.FAILED]))
    return join(parts, " · ")


def progress_message(snapshot: Snapshot) -> Message:
    record, labels = snapshot.record, snapshot.labels
    total, done = snapshot.total, snapshot.processed
    percent = round(100 * done / total) if total else 100
    text = join([md("{} ({})", heading(record, labels, total), record.platform),
                 md("{} {} of {} · {}%", bar(done, total), done, total, percent),
                 count_line(snapshot)], "\n")
    blocks: list[Block] = [section(text)]
    if snapshot.cancelling:
        blocks.append(context(md(":hourglass_flowing_sand: Cancelling: the members already in progress finish, "
                                 "then the report follows.")))
    elif record.status is JobStatus.PAUSED and record.resume_at:
        unit, _, daily_setting = BUDGET_WORDS.get(record.platform, ("requests", "", ""))
        resume = datetime.fromtimestamp(record.resume_at, UTC)
        setting = md(" (`{}`)", daily_setting) if daily_setting else EMPTY
        blocks.append(section(md(":double_vertical_bar: Paused: today's {} budget of {} is spent{}. It carries on by "
                                 "itself at {}; nothing is lost meanwhile.", record.platform, unit, setting,
                                 when(resume))))
    elif record.status is JobStatus.QUEUED:
        blocks.append(context(md("Queued: a worker starts it in a moment. If it stays here, check that "
                                 "`coursebot worker` is running.")))
    else:
        pace: list[Mrkdwn] = []
        if snapshot.rate:
            pace.append(md("{:.1f} a second", snapshot.rate) if snapshot.rate >= 1 else
                        md("{:.0f} a minute", snapshot.rate * 60))
        if snapshot.eta_seconds is not None:
            pace.append(md("about {} left", duration(snapshot.eta_seconds)))
        if pace:
            blocks.append(context(join(pace, " · ")))
    if not snapshot.cancelling:
        dialog = confirm("Cancel the job?", "Whoever is already done stays done; nobody else is changed.",
                         "Cancel it", "Keep going")
        blocks.append(actions(f"bulk_run:{record.id}", [button("Cancel", CANCEL_ACTION, record.id, style="danger",
                                                               confirmation=dialog)]))
    blocks.append(context(md("Started by {} · job {}", mention(record.confirmed_by or record.actor), record.id)))
    return Message(text=md("{} {}: {} of {}", labels.doing, people(total), done, total), blocks=blocks)


# ---- the report ------------------------------------------------------------------------------

def report_message(report: Report, *, csv_attached: bool) -> Message:
    """The final report: counts, the people it could not do (the first `LIST_LINES`), and a note
    that the CSV file in the thread holds every row."""
    record, labels, counts = report.record, report.labels, report.counts
    platform = record.platform
    total = len(report.rows)
    what = md("{} {} {} *{}*", labels.doing.lower(), people(record.people), labels.target, name(record.course_title))
    if record.status is JobStatus.CANCELLED:
        title = md(":no_entry_sign: Cancelled by {}: {}", mention(record.cancelled_by or ""), what)
    elif record.status is JobStatus.STOPPED:
        title = md(":x: Stopped: {}. {}", what, sentence(record.stop_reason or ""))
    else:
        title = md(":white_check_mark: Done: {}", what)
    order = [Outcome.DONE, Outcome.ALREADY, Outcome.NOT_IN_SLACK, Outcome.NOT_ON_PLATFORM, Outcome.FAILED,
             Outcome.NOT_DONE]
    pairs = [(outcome_label(o, labels, platform), md("{}", counts[o])) for o in order
             if counts[o] or o in (Outcome.DONE, Outcome.ALREADY, Outcome.FAILED)]
    blocks: list[Block] = [section(title), fields(pairs)]
    problems = [row for row in report.rows if row.outcome in (Outcome.NOT_IN_SLACK, Outcome.NOT_ON_PLATFORM,
                                                               Outcome.FAILED)]
    if problems:
        items = [problem_line(r, platform, labels) for r in problems]
        more = md(" (every row is in the CSV file in the thread)") if csv_attached else EMPTY
        blocks.extend(sections_of_lines(capped(items, where=more), budget=10))
    notes = [md("Took {}", duration(report.elapsed)), md("job {}", record.id)]
    if csv_attached:
        notes.append(md("all {} rows in the CSV file in this thread", total))
    blocks.append(context(join(notes, " · ")))
    summary = ", ".join(f"{counts[o]} {outcome_label(o, labels, platform).lower()}" for o in order if counts[o])
    return Message(text=md("{}: {}", name(record.course_title), summary or "nobody"), blocks=blocks)


def report_csv(report: Report) -> str:
    """Every row of the report; each cell through `csv_cell` (one line, no `<…>`, never a formula)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", "slack_user", "platform_member_id", "outcome", "reason"])
    for row in report.rows:
        cells = [row.name, row.email, row.slack_user, row.member_id,
                 outcome_label(row.outcome, report.labels, report.record.platform), row.reason]
        writer.writerow([csv_cell(cell) for cell in cells])
    return out.getvalue()


def csv_filename(report: Report) -> str:
    day = datetime.fromtimestamp(report.record.created_at or 0, UTC).strftime("%Y-%m-%d")
    return file_title(f"{report.record.kind}-{report.record.id}-{day}.csv")


def csv_title(report: Report) -> str:
    return file_title(f"{report.record.course_title}: full report")


# ---- the form --------------------------------------------------------------------------------

def loading_modal(channel: str) -> dict[str, Any]:
    return modal(MODAL_CALLBACK, "Invite to a course", [section(md("Loading the courses…"))], close="Cancel",
                 private_metadata=json.dumps({"channel": channel}))


EMAIL_OPTION = "send"


def invite_modal(courses: list[Course], *, course_id: str | None, channel: str,
                 send_email: bool | None = None, platform: str = "the platform") -> dict[str, Any]:
    """`send_email`: the checkbox "Email each person…", ticked or not; None (the platform sends no
    invitation email): no checkbox."""
    options = [option(c.title, c.id) for c in courses[:COURSE_OPTIONS]]
    course_select: dict[str, Any] = {"type": "static_select", "action_id": "course", "options": options,
                                     "placeholder": plain_text("Pick a course")}
    chosen = next((o for o in options if o["value"] == course_id), None)
    if chosen:
        course_select["initial_option"] = chosen
    blocks: list[Block] = [
        input_block("course", "Course", course_select),
        input_block("people", "People", {"type": "multi_users_select", "action_id": "people",
                                         "placeholder": plain_text("Pick people")}, optional=True),
        input_block("channels", "Everyone in these channels", {
            "type": "multi_conversations_select", "action_id": "channels", "placeholder": plain_text("Pick channels"),
            "filter": {"include": ["public", "private"], "exclude_bot_users": True}}, optional=True),
        input_block("emails", "Emails", {"type": "plain_text_input", "action_id": "emails", "multiline": True,
                                         "placeholder": plain_text("ada@example.com, grace@example.com")},
                    optional=True, hint="One or more, separated by spaces, commas or new lines."),
        context(md("Above {} people I ask before starting. Progress and the report come in our direct messages.",
                   CONFIRM_ABOVE)),
    ]
    if send_email is not None:
        choice = {**option(f"Email each person {platform}'s invitation", EMAIL_OPTION),
                  "description": plain_text("Untick to invite them without an email.", OPTION_MAX)}
        checkbox: dict[str, Any] = {"type": "checkboxes", "action_id": "email", "options": [choice]}
        if send_email:
            checkbox["initial_options"] = [choice]
        blocks.insert(-1, input_block("email", "Tell them", checkbox, optional=True))
    if len(courses) > COURSE_OPTIONS:
        blocks.insert(0, context(md("Only the first {} courses fit here: for another one, type "
                                    "`/course invite \"<course>\" <people…>`.", COURSE_OPTIONS)))
    return modal(MODAL_CALLBACK, "Invite to a course", blocks, submit="Next", close="Cancel",
                 private_metadata=json.dumps({"channel": channel}))


def vanished_message(course: str, done: int | None, total: int | None) -> Message:
    """A job whose records Redis lost (flushed, or restarted without persistence)."""
    where = md(" in *{}*", name(course)) if course else EMPTY
    progress = md(" {} of {} people were done before that.", done, total) if done is not None and total else EMPTY
    return simple(md(":warning: A bulk job{} lost its records in Redis (the store was flushed or restarted "
                     "without persistence), so it stopped.{} Run the same command again: people already "
                     "done are skipped.", where, progress))
