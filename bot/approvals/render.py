"""Approval cards, the `/course pending` list, the Block dialog, reminders, DMs and App Home.

Buttons carry only the opaque request id (or an Approve-all batch id): whoever clicks is
checked again on the server, so a value grants nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.approvals.decisions import DecisionResult, Outcome
from bot.approvals.home import HomeData
from bot.approvals.rules import rule_of_actor
from bot.approvals.service import BatchReport
from bot.approvals.store import ApprovalRequest, Decision, RequestState
from bot.render import (
    EMPTY,
    Block,
    Message,
    Mrkdwn,
    actions,
    button,
    confirm,
    context,
    divider,
    email,
    fields,
    header,
    home,
    icon,
    input_block,
    join,
    link,
    md,
    mention,
    modal,
    name,
    section,
    sections_of_lines,
    sentence,
    simple,
    usergroup,
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
REMINDER_EVENT = "coursebot_reminder"
ESCALATION_EVENT = "coursebot_escalation"

LIST_MAX = 15  # requests with buttons in one /course pending reply (2 blocks each, 50 blocks max)
ROUND_MAX = 30  # requests listed in one reminder or escalation (a line each, well under Slack's size limits)
HOME_MAX = 20  # the same on App Home (100 blocks max)

OUTCOME_ICON = {
    RequestState.APPROVED: ":white_check_mark:",
    RequestState.BLOCKED: ":no_entry:",
    RequestState.GONE: ":wastebasket:",
    RequestState.PENDING: ":hourglass_flowing_sand:",
}


CARD_NAME = 150  # a name or title on a card
LIST_NAME = 80  # the same in a list


def _who(request: ApprovalRequest, limit: int = LIST_NAME) -> Mrkdwn:
    if request.member_email:
        return md("*{}* ({})", name(request.member_label, limit), email(request.member_email))
    return md("*{}*", name(request.member_label, limit))


def _title(request: ApprovalRequest) -> str:
    return request.course_title or f"course {request.course_id}"


def _course(request: ApprovalRequest, limit: int = LIST_NAME) -> Mrkdwn:
    return md("{} *{}*", icon(request.course_visibility), name(_title(request), limit))


def _person_or_group(entry: str) -> Mrkdwn:
    """A mention built from an id: a user, or a user group (`<!subteam^S…>`)."""
    if entry.startswith("S") and entry[1:].isalnum() and entry.isupper():
        return usergroup(entry)
    return mention(entry)


def decider(actor: str) -> Mrkdwn:
    """Who decided, for a card: a mention, or the auto-approve rule."""
    rule = rule_of_actor(actor)
    return md("the rule _{}_", rule.label) if rule is not None else mention(actor)


def _expected(request: ApprovalRequest) -> Mrkdwn:
    """Who is expected to decide, and how many approvals it needs, on a waiting card."""
    parts = []
    if request.approvers:
        names = join(_person_or_group(a) for a in request.approvers)
        parts.append(md(":busts_in_silhouette: Decided by {} (or a manager)", names))
    if request.quorum > 1 or request.approvals:
        given = len(request.approvals)
        who = md(": {}", join(mention(u) for u in request.approvals)) if request.approvals else EMPTY
        if given >= request.quorum:
            parts.append(md(":ballot_box_with_check: {} of {} approvals given{}; the next Approve completes it",
                            given, request.quorum, who))
        else:
            parts.append(md(":ballot_box_with_check: Needs {} approvals from different people: {} of {} so far{}",
                            request.quorum, given, request.quorum, who))
    return join(parts, " · ")


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
    approve = button("Approve", APPROVE, value, style="primary")
    block = button("Block…", BLOCK, value, style="danger")
    elements = [approve, block]
    if retry and request.failed_action:
        again = button(f"Retry {request.failed_action}", RETRY, value, style="primary")
        other = block if request.failed_action == Decision.APPROVE.value else approve
        elements = [again, {k: v for k, v in other.items() if k != "style"}]
    return actions(block_id or f"approval:{request.id}", elements)


def card_metadata(request: ApprovalRequest) -> dict[str, Any]:
    """Slack message metadata: how the card is found again after Redis loses its records."""
    return {"event_type": METADATA_EVENT,
            "event_payload": {"request_id": request.id, "enrolment_id": request.enrolment_id,
                              "platform": request.platform, "state": request.state.value}}


def _details(request: ApprovalRequest) -> Block:
    pairs = [("Email", email(request.member_email) if request.member_email else md("not known")),
             ("Course", md("{} · id {}", request.course_visibility.value, request.course_id))]
    if request.member_company:
        pairs.append(("Company", name(request.member_company, CARD_NAME)))
    if request.member_teams:
        pairs.append(("Teams", join(name(team, LIST_NAME) for team in request.member_teams)))
    pairs.append(("Asked", when(request.waiting_since)))
    return fields(pairs)


def outcome_line(request: ApprovalRequest, platform: str, limit: int = CARD_NAME) -> Mrkdwn:
    """What happened to a request, in one line, naming who decided and when."""
    who, course = md("*{}*", name(request.member_label, limit)), _course(request, limit)
    icon_ = md(OUTCOME_ICON[request.state])
    at = when(request.decided_at)
    if request.state is RequestState.GONE:
        return md("{} {}'s enrolment in {} no longer exists on {}: nothing to decide.", icon_, who, course, platform)
    verb = "approved for" if request.state is RequestState.APPROVED else "blocked from"
    if request.decided_by:
        by = decider(request.decided_by)
        if request.state is RequestState.APPROVED and request.quorum > 1 and request.approvals:
            people = list(dict.fromkeys([*request.approvals, request.decided_by]))
            by = md("{} and {}", join(mention(u) for u in people[:-1]), mention(people[-1]))
        return md("{} {} was {} {} by {} · {}", icon_, who, verb, course, by, at)
    return md("{} {} was {} {} outside Slack (in {}) · seen {}", icon_, who, verb, course, platform, at)


def card_message(request: ApprovalRequest, *, platform: str) -> Message:
    """The card in the approvals channel: the request with buttons, or its outcome with none."""
    if request.state.open:
        text = md(":inbox_tray: *{}* asks to join {}", name(request.member_label, CARD_NAME),
                  _course(request, CARD_NAME))
        blocks = [section(text), _details(request)]
        expected = _expected(request)
        if expected:
            blocks.append(context(expected))
        if request.error:
            blocks.append(context(md(":x: {} did not take the {}: {} Nothing was changed; press Retry.",
                                     platform, request.failed_action, sentence(request.error))))
        blocks.append(_buttons(request, retry=bool(request.error)))
        fallback = md("{} asks to join {}", name(request.member_label, CARD_NAME), name(_title(request), CARD_NAME))
        return Message(text=fallback, blocks=blocks)
    blocks = [section(outcome_line(request, platform))]
    if request.reason:
        blocks.append(section(md("*Reason:* {}", request.reason)))
    detail = [email(request.member_email)] if request.member_email else []
    if request.member_company:
        detail.append(name(request.member_company, CARD_NAME))
    detail.append(md("asked {}", when(request.waiting_since)))
    blocks.append(context(join(detail, " · ")))
    fallback = md("{}: {} ({})", name(request.member_label, CARD_NAME), request.state.value,
                  name(_title(request), CARD_NAME))
    return Message(text=fallback, blocks=blocks)


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_TS = re.compile(r"^\d{6,}\.\d{1,6}$")


def card_link(request: ApprovalRequest) -> str | None:
    """The card's permalink, built from its channel and ts (no API call): slack.com redirects it."""
    if not _CHANNEL_ID.match(request.card_channel) or not _TS.match(request.card_ts):
        return None
    return f"https://slack.com/archives/{request.card_channel}/p{request.card_ts.replace('.', '')}"


def span(waited: timedelta) -> str:
    days, hours = int(waited.total_seconds() // 86400), int(waited.total_seconds() // 3600)
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _waiting_line(request: ApprovalRequest, waited: timedelta) -> Mrkdwn:
    url = card_link(request)
    who = md("*{}*", link(url, request.member_label)) if url else md("*{}*", name(request.member_label))
    return md("• {} asks to join {} · waiting {}", who, _course(request), span(waited))


def _round_lines(due: list[tuple[ApprovalRequest, timedelta]]) -> list[Block]:
    blocks = sections_of_lines([_waiting_line(request, waited) for request, waited in due[:ROUND_MAX]], budget=10)
    if len(due) > ROUND_MAX:
        blocks.append(context(md("…and {} more: `/course pending` lists them all.", len(due) - ROUND_MAX)))
    return blocks


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def reminder_message(due: list[tuple[ApprovalRequest, timedelta]]) -> Message:
    """The requests that fell due for a reminder in one round, in one message, each linked to its card."""
    verb = "is" if len(due) == 1 else "are"
    title = f"{_requests(len(due))} {verb} still waiting for a decision"
    blocks = [section(md(":alarm_clock: *{}*", title)), *_round_lines(due),
              context(md("Open a card to approve or block it, or use `/course pending`."))]
    names = join(name(r.member_label) for r, _ in due[:5])
    return Message(text=md("{}: {}{}", title, names, md(", …") if len(due) > 5 else EMPTY), blocks=blocks)


def escalation_message(due: list[tuple[ApprovalRequest, timedelta]], managers: list[str],
                       after: timedelta) -> Message:
    """Requests waiting past COURSEBOT_ESCALATE_HOURS, raised to every manager (mentions from ids only)."""
    verb = "has" if len(due) == 1 else "have"
    title = f"{_requests(len(due))} {verb} been waiting more than {span(after)}"
    who = join((_person_or_group(m) for m in managers), " ")
    ask = md("{}: please decide, or ask the course's approvers to.", who) if managers else \
        md("No managers are configured (COURSEBOT_MANAGERS), so nobody was notified by name.")
    blocks = [section(md(":rotating_light: *{}*", title)), section(ask), *_round_lines(due),
              context(md("Open a card to approve or block it, or use `/course pending`."))]
    return Message(text=md("{}. {}", title, who) if managers else md("{}.", title), blocks=blocks)


def cards_follow_message(count: int) -> Message:
    """The line before a run of many new cards."""
    noun, verb = ("request", "is") if count == 1 else ("requests", "are")
    return simple(md(":inbox_tray: *{} new {} {} waiting for approval*; their cards follow, oldest first.",
                     count, noun, verb))


def member_message(request: ApprovalRequest) -> Message:
    course = md("*{}*", name(_title(request), CARD_NAME))
    if request.state is RequestState.APPROVED:
        text = md(":white_check_mark: Your enrolment in {} was approved. You can start the course now.", course)
    else:
        text = md(":no_entry: Your request to join {} was not accepted.", course)
    blocks = [section(text)]
    if request.reason:
        blocks.append(section(md("*Reason:* {}", request.reason)))
    return Message(text=md("Your enrolment in {}: {}", name(_title(request), CARD_NAME), request.state.value),
                   blocks=blocks)


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
    return modal(BLOCK_VIEW, "Block this request?", [
        section(md("{} will not get access to {}. If their email is in Slack, they are told by direct message, "
                   "with your reason.", _who(request, CARD_NAME), _course(request, CARD_NAME))),
        input_block(REASON_BLOCK, "Reason (optional, shown on the card and to them)",
                    {"type": "plain_text_input", "action_id": REASON_BLOCK, "multiline": True, "max_length": 500},
                    optional=True),
    ], submit="Block", close="Cancel", private_metadata=metadata.model_dump_json(exclude_none=True))


# ---- replies to the person who clicked ---------------------------------------------------

def decision_reply(result: DecisionResult, *, platform: str) -> Message | None:
    """The private answer to a click; None when the updated card says it all."""
    request = result.request
    if result.outcome is Outcome.NOT_ALLOWED:
        return simple(md(":no_entry_sign: {}", sentence(result.message)))
    if result.outcome is Outcome.MISSING or request is None:
        return simple(md(":grey_question: I no longer know this request (it may have been cleared). "
                         "`/course pending` shows what is waiting now; nothing was changed."))
    if result.outcome is Outcome.OWN:
        return simple(md(":no_entry_sign: That is your own enrolment: another manager or approver has to decide it. "
                         "Nothing was changed."))
    if result.outcome is Outcome.COUNTED:
        given = join(mention(u) for u in result.approvals)
        return simple(md(":ballot_box_with_check: Your approval is counted: {} of {} ({}). {} is approved when the "
                         "last one lands.", len(result.approvals), result.quorum, given,
                         name(request.member_label, CARD_NAME)))
    if result.outcome is Outcome.BUSY:
        who = mention(result.holder.actor) if result.holder and result.holder.actor else md("Someone")
        return simple(md(":hourglass_flowing_sand: {} is deciding this request right now; nothing else was "
                         "changed.", who))
    if result.outcome is Outcome.ALREADY:
        return simple(md("Nothing to change: {}", outcome_line(request, platform)))
    if result.outcome is Outcome.FAILED:
        return simple(md(":x: {} did not take it: {} Nothing was changed; try again shortly.", platform,
                         sentence(result.message)))
    return simple(outcome_line(request, platform))


def batch_started(count: int, per_second: float | None, platform: str) -> Message:
    pace = EMPTY
    if per_second and count > 1:
        seconds = int(count / per_second)
        pace = md(" within {}'s write budget (about {} s)", platform, seconds)
    return simple(md(":hourglass_flowing_sand: Approving {} request{}, one at a time{}. Each card updates as it is "
                     "decided; I'll tell you when it is done.", count, "s" if count != 1 else "", pace))


def batch_report(report: BatchReport, *, platform: str) -> Message:
    """Approve all's result; every skipped or failed request has its line (a long report goes on below)."""
    items = [md(":white_check_mark: Approved {}.", len(report.approved))]
    if report.already:
        items.append(md("{} had already been decided (their cards say how).", len(report.already)))
    for request, why in report.skipped:
        who = name(request.member_label) if request else md("one request")
        items.append(md("Skipped {}: {}", who, sentence(why)))
    for request, why in report.failed:
        who = name(request.member_label) if request else md("one request")
        items.append(md(":x: {}: {} (its card offers Retry)", who, sentence(why)))
    return Message(text=md("Approve all: {} approved", len(report.approved)), blocks=sections_of_lines(items),
                   noun="requests")


# ---- lists: /course pending and App Home ---------------------------------------------------

def _row(request: ApprovalRequest) -> Mrkdwn:
    company = md(" · {}", name(request.member_company)) if request.member_company else EMPTY
    return md("{}{}\n{} · asked {}", _who(request), company, _course(request), when(request.waiting_since))


def _line(request: ApprovalRequest) -> Mrkdwn:
    """A request in one line, for the part of a list past its buttons."""
    return md("• {} → {} · asked {}", _who(request), _course(request), when(request.waiting_since))


def _quorum_note(request: ApprovalRequest) -> Mrkdwn:
    if request.quorum <= 1:
        return EMPTY
    return md(" · {} of {} approvals", len(request.approvals), request.quorum)


def _approve_all(count: int, batch_id: str, platform: str) -> Block:
    noun = "request" if count == 1 else "requests"
    dialog = confirm(f"Approve all {count}?", f"This approves {count} waiting {noun} on {platform}, one at a time, "
                     "and tells each member.", f"Approve {count}")
    return actions("approval-all", [button(f"Approve all {count}", APPROVE_ALL, batch_id, style="primary",
                                           confirmation=dialog)])


def _synced_note(last_synced: float | None, platform: str, now: float) -> Mrkdwn:
    if last_synced is None:
        return md("The approval sync has not read {} yet: is `coursebot worker` running (with the same REDIS_URL)?",
                  platform)
    return md("Read from {} {} s ago.", platform, int(max(0, now - last_synced)))


def pending_message(requests: list[ApprovalRequest], *, course: str | None, batch_id: str | None,
                    platform: str, last_synced: float | None, now: float, note: Mrkdwn = EMPTY,
                    course_id: str | None = None, with_rest: bool = True) -> Message:
    """The ephemeral list; its buttons' block ids carry the course filter, so a click can redraw it.

    The first `LIST_MAX` requests come with buttons; with `with_rest`, the others follow in the
    next messages, one line each (a redraw after a click leaves them out and says how many)."""
    where = md(" in {}", name(course)) if course else EMPTY
    blocks: list[Block] = []
    if note:
        blocks.append(section(note))
    if not requests:
        blocks.append(section(md(":tada: Nothing is waiting for approval{}.", where)))
        blocks.append(context(_synced_note(last_synced, platform, now)))
        return Message(text=md("Nothing is waiting for approval{}", where), blocks=blocks)
    blocks.append(header(f"Waiting for approval: {len(requests)}"))
    for request in requests[:LIST_MAX]:
        blocks.append(section(md("{}{}", _row(request), _quorum_note(request))))
        blocks.append(_buttons(request, block_id=f"approval-list:{request.id}", list_course=course_id or ""))
    rest = requests[LIST_MAX:]
    follow_ups: list[Message] = []
    if rest and with_rest:
        blocks.append(context(md("…and {} more, oldest first, in the next message (decide them on their cards, "
                                 "or run `/course pending` again once these are done).", len(rest))))
        follow_ups.append(Message(text=md("{} more waiting for approval{}", len(rest), where),
                                  blocks=sections_of_lines([_line(r) for r in rest]), noun="requests"))
    elif rest:
        blocks.append(context(md("…and {} more, oldest first: decide these, then run `/course pending` again "
                                 "(or use the cards and the Home tab).", len(rest))))
    if batch_id is not None and len(requests) > 1:
        blocks.append(_approve_all(len(requests), batch_id, platform))
    blocks.append(context(_synced_note(last_synced, platform, now)))
    return Message(text=md("{} waiting for approval{}", len(requests), where), blocks=blocks,
                   follow_ups=follow_ups, noun="requests")


def home_view(data: HomeData | None, *, now: float) -> dict[str, Any]:
    if data is None:
        return home([
            section(md("*coursebot* runs course enrolment from Slack: try `/course help`.")),
            context(md("Course managers see the requests waiting for approval here.")),
        ])
    blocks: list[Block] = [header("Course approvals")]
    if data.note:
        return home([*blocks, section(sentence(data.note))])
    if data.per_course:
        items = [md("{} *{}*: {} waiting", icon(vis), name(title), n) for title, vis, n in data.per_course]
        blocks.extend(sections_of_lines(items, budget=5, more="…and {} more courses: `/course pending` lists them."))
    else:
        blocks.append(section(md(":tada: Nothing is waiting for approval.")))
    if data.waiting:
        blocks.append(divider())
        blocks.append(section(md("*Waiting, oldest first ({})*", len(data.waiting))))
        for index, request in enumerate(data.waiting[:HOME_MAX]):
            blocks.append(section(md("{}{}", _row(request), _quorum_note(request))))
            blocks.append(_buttons(request, block_id=f"approval-home:{index}:{request.id}"))
        if len(data.waiting) > HOME_MAX:
            blocks.append(context(md("…and {} more: `/course pending` lists them all.",
                                     len(data.waiting) - HOME_MAX)))
    if data.recent:
        blocks.append(divider())
        blocks.append(section(md("*Latest decisions*")))
        blocks.extend(sections_of_lines([outcome_line(r, data.platform, LIST_NAME) for r in data.recent], budget=5))
    if data.rules:
        blocks.append(divider())
        blocks.append(section(md("*Approval rules* (`/course rules`)")))
        blocks.extend(sections_of_lines(data.rules, budget=3, more="…and {} more: `/course rules` lists them all."))
    blocks.append(context(_synced_note(data.last_synced, data.platform, now)))
    return home(blocks)
