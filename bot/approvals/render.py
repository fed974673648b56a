"""Approval cards, the `/course pending` list, the Block dialog, reminders, DMs and App Home.

Buttons carry only the opaque request id (or an Approve-all batch id): whoever clicks is
checked again on the server, so a value grants nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.approvals.decisions import DecisionResult, Outcome
from bot.approvals.home import HomeData
from bot.approvals.rules import rule_of_actor
from bot.approvals.service import BatchReport
from bot.approvals.store import ApprovalRequest, Decision, RequestState
from bot.render import (
    VISIBILITY_ICON,
    Block,
    Message,
    context,
    divider,
    esc,
    fields,
    header,
    mention,
    section,
    sections_of_lines,
    simple,
    when,
)
from bot.render.ids import ActionId, ViewId

APPROVE = ActionId.APPROVE
BLOCK = ActionId.BLOCK
RETRY = ActionId.RETRY
APPROVE_ALL = ActionId.APPROVE_ALL
BLOCK_VIEW = ViewId.BLOCK_REASON
REASON_BLOCK = "reason"
METADATA_EVENT = "coursebot_request"

LIST_MAX = 15  # requests with buttons in one /course pending reply (2 blocks each, 50 blocks max)
HOME_MAX = 20  # the same on App Home (100 blocks max)

OUTCOME_ICON = {
    RequestState.APPROVED: ":white_check_mark:",
    RequestState.BLOCKED: ":no_entry:",
    RequestState.GONE: ":wastebasket:",
    RequestState.PENDING: ":hourglass_flowing_sand:",
}


def _who(request: ApprovalRequest) -> str:
    email = f" ({esc(request.member_email)})" if request.member_email else ""
    return f"*{esc(request.member_label)}*{email}"


def _course(request: ApprovalRequest) -> str:
    title = request.course_title or f"course {request.course_id}"
    return f"{VISIBILITY_ICON[request.course_visibility]} *{esc(title)}*"


def _plain_course(request: ApprovalRequest) -> str:
    return request.course_title or f"course {request.course_id}"


def _person_or_group(entry: str) -> str:
    """A mention built from an id: a user, or a user group (`<!subteam^S…>`)."""
    if entry.startswith("S") and entry[1:].isalnum() and entry.isupper():
        return f"<!subteam^{entry}>"
    return mention(entry)


def decider(actor: str) -> str:
    """Who decided, for a card: a mention, or the auto-approve rule (escaped)."""
    rule = rule_of_actor(actor)
    return f"the rule _{esc(rule.label)}_" if rule is not None else mention(actor)


def _expected(request: ApprovalRequest) -> str:
    """Who is expected to decide, and how many approvals it needs, on a waiting card."""
    parts = []
    if request.approvers:
        names = ", ".join(_person_or_group(a) for a in request.approvers)
        parts.append(f":busts_in_silhouette: Decided by {names} (or a manager)")
    if request.quorum > 1 or request.approvals:
        given = len(request.approvals)
        who = f": {', '.join(mention(u) for u in request.approvals)}" if request.approvals else ""
        if given >= request.quorum:
            parts.append(f":ballot_box_with_check: {given} of {request.quorum} approvals given{who}; the next "
                         "Approve completes it")
        else:
            parts.append(f":ballot_box_with_check: Needs {request.quorum} approvals from different people: "
                         f"{given} of {request.quorum} so far{who}")
    return " · ".join(parts)


class RequestButton(BaseModel):
    """A request button's value: the request, and the course a `/course pending` list was filtered by
    (so a click there can redraw the same list). Cards posted before 0.2 carry the bare request id."""

    r: str
    k: str | None = None

    def dump(self) -> str:
        """The bare request id on cards and Home; JSON only where a list's filter must travel too."""
        return self.r if self.k is None else self.model_dump_json()

    @classmethod
    def read(cls, value: str) -> RequestButton:
        if value.startswith("{"):
            try:
                return cls.model_validate_json(value)
            except ValidationError:
                pass
        return cls(r=value[:64])


def _buttons(request: ApprovalRequest, *, block_id: str | None = None, retry: bool = False,
             list_course: str | None = None) -> Block:
    value = RequestButton(r=request.id, k=list_course).dump()
    approve: Block = {"type": "button", "action_id": APPROVE, "value": value, "style": "primary",
                      "text": {"type": "plain_text", "text": "Approve"}}
    block: Block = {"type": "button", "action_id": BLOCK, "value": value, "style": "danger",
                    "text": {"type": "plain_text", "text": "Block…"}}
    elements = [approve, block]
    if retry and request.failed_action:
        again: Block = {"type": "button", "action_id": RETRY, "value": value, "style": "primary",
                        "text": {"type": "plain_text", "text": f"Retry {request.failed_action}"}}
        other = block if request.failed_action == Decision.APPROVE.value else approve
        elements = [again, {k: v for k, v in other.items() if k != "style"}]
    return {"type": "actions", "block_id": block_id or f"approval:{request.id}", "elements": elements}


def card_metadata(request: ApprovalRequest) -> dict[str, Any]:
    """Slack message metadata: how the card is found again after Redis loses its records."""
    return {"event_type": METADATA_EVENT,
            "event_payload": {"request_id": request.id, "enrolment_id": request.enrolment_id,
                              "platform": request.platform, "state": request.state.value}}


def _details(request: ApprovalRequest) -> Block:
    pairs = [("Email", esc(request.member_email) or "not known"),
             ("Course", f"{request.course_visibility.value} · id {esc(request.course_id)}")]
    if request.member_company:
        pairs.append(("Company", esc(request.member_company)))
    if request.member_teams:
        pairs.append(("Teams", esc(", ".join(request.member_teams))))
    pairs.append(("Asked", when(request.waiting_since)))
    return fields(pairs)


def outcome_line(request: ApprovalRequest, platform: str) -> str:
    """What happened to a request, in one line, naming who decided and when."""
    who, course = f"*{esc(request.member_label)}*", _course(request)
    icon = OUTCOME_ICON[request.state]
    at = when(request.decided_at)
    if request.state is RequestState.GONE:
        return f"{icon} {who}'s enrolment in {course} no longer exists on {esc(platform)}: nothing to decide."
    verb = "approved for" if request.state is RequestState.APPROVED else "blocked from"
    if request.decided_by:
        by = decider(request.decided_by)
        if request.state is RequestState.APPROVED and request.quorum > 1 and request.approvals:
            people = list(dict.fromkeys([*request.approvals, request.decided_by]))
            by = ", ".join(mention(u) for u in people[:-1]) + f" and {mention(people[-1])}"
        return f"{icon} {who} was {verb} {course} by {by} · {at}"
    return f"{icon} {who} was {verb} {course} outside Slack (in {esc(platform)}) · seen {at}"


def card_message(request: ApprovalRequest, *, platform: str) -> Message:
    """The card in the approvals channel: the request with buttons, or its outcome with none."""
    if request.state.open:
        text = f":inbox_tray: *{esc(request.member_label)}* asks to join {_course(request)}"
        blocks = [section(text), _details(request)]
        expected = _expected(request)
        if expected:
            blocks.append(context(expected))
        if request.error:
            blocks.append(context(f":x: {esc(platform)} did not take the {esc(request.failed_action)}: "
                                  f"{esc(request.error)} Nothing was changed; press Retry."))
        blocks.append(_buttons(request, retry=bool(request.error)))
        fallback = f"{request.member_label} asks to join {_plain_course(request)}"
        return Message(text=esc(fallback), blocks=blocks)
    blocks = [section(outcome_line(request, platform))]
    if request.reason:
        blocks.append(section(f"*Reason:* {esc(request.reason)}"))
    detail = [esc(request.member_email)] if request.member_email else []
    if request.member_company:
        detail.append(esc(request.member_company))
    detail.append(f"asked {when(request.waiting_since)}")
    blocks.append(context(" · ".join(detail)))
    fallback = f"{request.member_label}: {request.state.value} ({_plain_course(request)})"
    return Message(text=esc(fallback), blocks=blocks)


def reminder_message(request: ApprovalRequest, waited: timedelta) -> Message:
    days, hours = int(waited.total_seconds() // 86400), int(waited.total_seconds() // 3600)
    span = f"{days} day{'s' if days != 1 else ''}" if days >= 1 else f"{hours} hour{'s' if hours != 1 else ''}"
    return simple(f":alarm_clock: {esc(request.member_label)} has been waiting for {span}. "
                  "Approve or block the request above.")


def member_message(request: ApprovalRequest) -> Message:
    course = f"*{esc(_plain_course(request))}*"
    if request.state is RequestState.APPROVED:
        text = f":white_check_mark: Your enrolment in {course} was approved. You can start the course now."
    else:
        text = f":no_entry: Your request to join {course} was not accepted."
    blocks = [section(text)]
    if request.reason:
        blocks.append(section(f"*Reason:* {esc(request.reason)}"))
    return Message(text=esc(f"Your enrolment in {_plain_course(request)}: {request.state.value}"), blocks=blocks)


class BlockDialog(BaseModel):
    """The Block dialog's private_metadata: which request, clicked where (to answer there)."""

    r: str  # request id
    via: str = "card"  # card, list or home
    u: str = ""  # the click's response URL
    k: str | None = None  # the /course pending list's course filter
    c: str | None = None  # the clicked card's channel and ts
    t: str | None = None

    @classmethod
    def read(cls, raw: str) -> BlockDialog:
        try:
            return cls.model_validate_json(raw or "{}")
        except ValidationError:
            return cls(r="")


def block_dialog(request: ApprovalRequest, metadata: BlockDialog) -> dict[str, Any]:
    """The Block confirmation: a small modal with an optional reason."""
    return {
        "type": "modal",
        "callback_id": BLOCK_VIEW,
        "private_metadata": metadata.model_dump_json(exclude_none=True)[:3000],
        "title": {"type": "plain_text", "text": "Block this request?"},
        "submit": {"type": "plain_text", "text": "Block"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"{_who(request)} will not get access to {_course(request)}. If their email is in Slack, "
                    "they are told by direct message, with your reason."),
            {"type": "input", "block_id": REASON_BLOCK, "optional": True,
             "label": {"type": "plain_text", "text": "Reason (optional, shown on the card and to them)"},
             "element": {"type": "plain_text_input", "action_id": REASON_BLOCK, "multiline": True,
                         "max_length": 500}},
        ],
    }


# ---- replies to the person who clicked ---------------------------------------------------

def decision_reply(result: DecisionResult, *, platform: str) -> Message | None:
    """The private answer to a click; None when the updated card says it all."""
    request = result.request
    if result.outcome is Outcome.NOT_ALLOWED:
        return simple(f":no_entry_sign: {esc(result.message)}")
    if result.outcome is Outcome.MISSING or request is None:
        return simple(":grey_question: I no longer know this request (it may have been cleared). "
                      "`/course pending` shows what is waiting now; nothing was changed.")
    if result.outcome is Outcome.OWN:
        return simple(":no_entry_sign: That is your own enrolment: another manager or approver has to decide it. "
                      "Nothing was changed.")
    if result.outcome is Outcome.COUNTED:
        given = ", ".join(mention(u) for u in result.approvals)
        return simple(f":ballot_box_with_check: Your approval is counted: {len(result.approvals)} of "
                      f"{result.quorum} ({given}). {esc(request.member_label)} is approved when the last one lands.")
    if result.outcome is Outcome.BUSY:
        who = mention(result.holder.actor) if result.holder and result.holder.actor else "Someone"
        return simple(f":hourglass_flowing_sand: {who} is deciding this request right now; nothing else was "
                      "changed.")
    if result.outcome is Outcome.ALREADY:
        return simple(f"Nothing to change: {outcome_line(request, platform)}")
    if result.outcome is Outcome.FAILED:
        return simple(f":x: {esc(platform)} did not take it: {esc(result.message)} Nothing was changed; "
                      "try again shortly.")
    return simple(outcome_line(request, platform))


def batch_started(count: int, per_second: float | None, platform: str) -> Message:
    pace = ""
    if per_second and count > 1:
        seconds = int(count / per_second)
        pace = f" within {esc(platform)}'s write budget (about {seconds} s)"
    return simple(f":hourglass_flowing_sand: Approving {count} request{'s' if count != 1 else ''}, one at a "
                  f"time{pace}. Each card updates as it is decided; I'll tell you when it is done.")


def batch_report(report: BatchReport, *, platform: str) -> Message:
    lines = [f":white_check_mark: Approved {len(report.approved)}."]
    if report.already:
        lines.append(f"{len(report.already)} had already been decided (their cards say how).")
    for request, why in report.skipped:
        lines.append(f"Skipped {esc(request.member_label) if request else 'one request'}: {esc(why)}")
    for request, why in report.failed:
        name = esc(request.member_label) if request else "one request"
        lines.append(f":x: {name}: {esc(why)} (its card offers Retry)")
    return Message(text=esc(f"Approve all: {len(report.approved)} approved"), blocks=sections_of_lines(lines))


# ---- lists: /course pending and App Home ---------------------------------------------------

def _row(request: ApprovalRequest) -> str:
    company = f" · {esc(request.member_company)}" if request.member_company else ""
    return f"{_who(request)}{company}\n{_course(request)} · asked {when(request.waiting_since)}"


def _quorum_note(request: ApprovalRequest) -> str:
    if request.quorum <= 1:
        return ""
    return f" · {len(request.approvals)} of {request.quorum} approvals"


def _approve_all(count: int, batch_id: str, platform: str) -> Block:
    noun = "request" if count == 1 else "requests"
    return {
        "type": "actions", "block_id": "approval-all",
        "elements": [{
            "type": "button", "action_id": APPROVE_ALL, "value": batch_id, "style": "primary",
            "text": {"type": "plain_text", "text": f"Approve all {count}"},
            "confirm": {
                "title": {"type": "plain_text", "text": f"Approve all {count}?"},
                "text": {"type": "plain_text",
                         "text": f"This approves {count} waiting {noun} on {platform}, one at a time, and tells "
                                 "each member."[:300]},
                "confirm": {"type": "plain_text", "text": f"Approve {count}"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            },
        }],
    }


def _synced_note(last_synced: float | None, platform: str, now: float) -> str:
    if last_synced is None:
        return (f"The approval sync has not read {esc(platform)} yet: is `coursebot worker` running "
                "(with the same REDIS_URL)?")
    return f"Read from {esc(platform)} {int(max(0, now - last_synced))} s ago."


def pending_message(requests: list[ApprovalRequest], *, course: str | None, batch_id: str | None,
                    platform: str, last_synced: float | None, now: float, note: str = "",
                    course_id: str | None = None) -> Message:
    """The ephemeral list; its buttons' block ids carry the course filter, so a click can redraw it."""
    where = f" in {esc(course)}" if course else ""
    blocks: list[Block] = []
    if note:
        blocks.append(section(note))
    if not requests:
        blocks.append(section(f":tada: Nothing is waiting for approval{where}."))
        blocks.append(context(_synced_note(last_synced, platform, now)))
        return Message(text=esc(f"Nothing is waiting for approval{where}"), blocks=blocks)
    blocks.append(header(f"Waiting for approval: {len(requests)}"))
    for request in requests[:LIST_MAX]:
        blocks.append(section(_row(request) + _quorum_note(request)))
        blocks.append(_buttons(request, block_id=f"approval-list:{request.id}", list_course=course_id or ""))
    if len(requests) > LIST_MAX:
        blocks.append(context(f"…and {len(requests) - LIST_MAX} more, oldest first: decide these, then run "
                              "`/course pending` again (or use the cards and the Home tab)."))
    if batch_id is not None and len(requests) > 1:
        blocks.append(_approve_all(len(requests), batch_id, platform))
    blocks.append(context(_synced_note(last_synced, platform, now)))
    return Message(text=esc(f"{len(requests)} waiting for approval{where}"), blocks=blocks)


def home_view(home: HomeData | None, *, now: float) -> dict[str, Any]:
    if home is None:
        return {"type": "home", "blocks": [
            section("*coursebot* runs course enrolment from Slack: try `/course help`."),
            context("Course managers see the requests waiting for approval here."),
        ]}
    blocks: list[Block] = [header("Course approvals")]
    if home.note:
        return {"type": "home", "blocks": [*blocks, section(esc(home.note))]}
    if home.per_course:
        lines = [f"{VISIBILITY_ICON[vis]} *{esc(title)}*: {n} waiting" for title, vis, n in home.per_course]
        blocks.extend(sections_of_lines(lines, budget=5))
    else:
        blocks.append(section(":tada: Nothing is waiting for approval."))
    if home.waiting:
        blocks.append(divider())
        blocks.append(section(f"*Waiting, oldest first ({len(home.waiting)})*"))
        for index, request in enumerate(home.waiting[:HOME_MAX]):
            blocks.append(section(_row(request) + _quorum_note(request)))
            blocks.append(_buttons(request, block_id=f"approval-home:{index}:{request.id}"))
        if len(home.waiting) > HOME_MAX:
            blocks.append(context(f"…and {len(home.waiting) - HOME_MAX} more: `/course pending` lists them all."))
    if home.recent:
        blocks.append(divider())
        blocks.append(section("*Latest decisions*"))
        blocks.extend(sections_of_lines([outcome_line(r, home.platform) for r in home.recent], budget=5))
    if home.rules:
        blocks.append(divider())
        blocks.append(section("*Approval rules* (`/course rules`)"))
        blocks.extend(sections_of_lines(home.rules, budget=3))
    blocks.append(context(_synced_note(home.last_synced, home.platform, now)))
    return {"type": "home", "blocks": blocks[:100]}

