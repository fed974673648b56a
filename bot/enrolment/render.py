"""Replies of `/course courses|status|enrol|approve|block|unblock|link`."""

from __future__ import annotations

from bot.approvals.decisions import Action, DecisionResult, Outcome, Subject
from bot.core.models import AccessState, EnrolmentCounts
from bot.enrolment.service import CourseRow, CourseStatus, LinkResult, MemberStatus
from bot.render import (
    Message,
    Mrkdwn,
    context,
    course_label,
    email,
    fields,
    header,
    icon,
    join,
    link,
    md,
    member_label,
    mention,
    refusal_message,
    section,
    sections_of_lines,
    sentence,
    simple,
    state_text,
    when,
)


def counts_text(counts: EnrolmentCounts) -> Mrkdwn:
    parts = [f"{counts.approved} approved"]
    if counts.pending:
        parts.append(f"{counts.pending} waiting")
    if counts.blocked:
        parts.append(f"{counts.blocked} blocked")
    noun = "member" if counts.total == 1 else "members"
    return md("{} {} ({})", counts.total, noun, ", ".join(parts))


def courses_message(rows: list[CourseRow], *, platform: str) -> Message:
    """Every course, one line each: a long list goes on in the next messages (`Message.pages`)."""
    if not rows:
        return simple(md("There are no courses on {} yet.", platform))
    items = [
        md("{} {} · {}{} · {}", icon(row.course.visibility), course_label(row.course), row.course.visibility.value,
           md("") if row.course.active else md(" · inactive"), counts_text(row.counts))
        for row in rows
    ]
    return Message(
        text=md("{} courses on {}", len(rows), platform),
        blocks=[header(f"Courses on {platform}"), *sections_of_lines(items),
                context(md("`/course status <course>` for one course, "
                           "`/course status <course> <member>` for a member."))],
        noun="courses",
    )


def course_status_message(status: CourseStatus) -> Message:
    course = status.course
    pairs = [
        ("Visibility", md("{} {}", icon(course.visibility), course.visibility.value)),
        ("Members", md("{}", status.counts.total)),
        ("Approved", md("{}", status.counts.approved)),
        ("Waiting for approval", md("{}", status.counts.pending)),
        ("Blocked", md("{}", status.counts.blocked)),
    ]
    if status.lessons is not None:
        pairs.append(("Lessons", md("{}", status.lessons)))
    blocks = [section(course_label(course)), fields(pairs)]
    if course.admin_url:
        blocks.append(context(link(course.admin_url, "Open in the admin panel")))
    return Message(text=md("{}: {}", course.title, counts_text(status.counts)), blocks=blocks)


def member_status_message(status: MemberStatus, *, show_email: bool, hints: bool) -> Message:
    """One member's access and progress; their email only for managers and approvers, and the
    "enrol them" hint only for those who may."""
    who, course = member_label(status.member, with_email=show_email), course_label(status.course)
    enrolment = status.enrolment
    if enrolment is None:
        text = md("{} is not enrolled in {}.", who, course)
        blocks = [section(text)]
        if hints:
            blocks.append(context(md("Enrol them with `/course enrol <course> <member>`.")))
        return Message(text=md("{} is not enrolled in {}.", status.member.label, status.course.title), blocks=blocks)
    pairs = [("Access", state_text(enrolment.state)), ("Enrolled", when(enrolment.created_on))]
    if status.lessons:
        done = {c.lesson_id for c in status.completed}
        total = len(status.lessons)
        finished = sum(1 for lesson in status.lessons if lesson.id in done)
        tada = md(" :tada:" if finished == total else "")
        pairs.append(("Progress", md("{} of {} lessons{}", finished, total, tada)))
    elif enrolment.completion_rate is not None:
        pairs.append(("Progress", md("{}%", enrolment.completion_rate)))
    if enrolment.last_completed_lesson:
        pairs.append(("Last lesson completed", md("{}", enrolment.last_completed_lesson)))
    if enrolment.last_access:
        pairs.append(("Last seen", when(enrolment.last_access)))
    blocks = [section(md("{} in {}", who, course)), fields(pairs)]
    if status.lessons:
        done = {c.lesson_id for c in status.completed}
        items = [md("{} {}", md(":white_check_mark:" if lesson.id in done else ":white_circle:"), lesson.title)
                 for lesson in status.lessons]
        blocks.extend(sections_of_lines(items, budget=20))
    return Message(text=md("{} in {}: {}", status.member.label, status.course.title, enrolment.state.value),
                   blocks=blocks)


DONE_TEXT = {
    Action.ENROL: "enrolled",
    Action.APPROVE: "approved",
    Action.BLOCK: "blocked",
    Action.UNBLOCK: "unblocked",
}


def subject_label(subject: Subject, *, with_email: bool = True) -> Mrkdwn:
    if with_email and subject.member_email:
        return md("*{}* ({})", subject.member_label, email(subject.member_email))
    return md("*{}*", subject.member_label)


def subject_course(subject: Subject) -> Mrkdwn:
    return md("*{}* (id {})", subject.course_title or "course " + subject.course_id, subject.course_id)


def change_message(result: DecisionResult, *, actor: str) -> Message:
    """The answer to `/course enrol|approve|block|unblock` (and the buttons that do the same)."""
    assert result.subject is not None
    who, course = subject_label(result.subject), subject_course(result.subject)
    plain = md("{}: {} {}", result.subject.member_label, result.action.value, result.subject.course_title)
    outcome = result.outcome
    if outcome is Outcome.DONE and result.enrolment is not None:
        verb = DONE_TEXT[result.action]
        if result.action is Action.ENROL and result.enrolment.state is AccessState.PENDING:
            verb = "enrolled, waiting for approval,"
        note = md(" ({})", sentence(result.note)) if result.note else md("")
        text = md(":white_check_mark: {} {} in {} by {}.{}", who, verb, course, mention(actor), note)
        return Message(text=plain, blocks=[section(text),
                                           context(md("Now: {}", state_text(result.enrolment.state)))])
    if outcome is Outcome.COUNTED:
        text = md(":ballot_box_with_check: Your approval of {} in {} is counted: {} of {} ({}). "
                  "The enrolment is approved when the last one lands.", who, course, len(result.approvals),
                  result.quorum, mentions(result.approvals))
        return Message(text=plain, blocks=[section(text)])
    if outcome is Outcome.ALREADY:
        if result.request is not None and not result.request.state.open and not result.note:
            state = result.request.state.value
            by = md(" by {}", mention(result.request.decided_by)) if result.request.decided_by \
                else md(" outside Slack")
            text = md("Nothing to change: {} was already {} in {}{}.", who, state, course, by)
        else:
            text = md("Nothing to change: {} is {} in {}.", who, sentence(result.note or "already so"), course)
        blocks = [section(text)]
        if result.enrolment is not None:
            blocks.append(context(md("Now: {}", state_text(result.enrolment.state))))
        return Message(text=plain, blocks=blocks)
    if outcome is Outcome.NOT_ENROLLED:
        return simple(md(":warning: {} is not enrolled in {}, so there is nothing to {}. "
                         "Enrol them first: `/course enrol`.", who, course, result.action.value))
    if outcome is Outcome.OWN:
        return simple(md(":no_entry_sign: That is your own enrolment: another manager or approver has to decide it. "
                         "Nothing was changed."))
    if outcome is Outcome.BUSY:
        busy = mention(result.holder.actor) if result.holder and result.holder.actor else md("Someone")
        return simple(md(":hourglass_flowing_sand: {} is changing {}'s enrolment in {} right now; "
                         "nothing else was changed. Try again in a moment.", busy, who, course))
    if outcome is Outcome.NOT_ALLOWED:
        return refusal_message(result.message)
    if outcome is Outcome.FAILED:
        return Message(text=sentence(result.message), blocks=[section(md(":x: {}", sentence(result.message))),
                                                               context(md("Nothing was changed. Try again shortly."))])
    return simple(md(":grey_question: I no longer know this request; nothing was changed."))


def mentions(users: list[str]) -> Mrkdwn:
    return join(mention(u) for u in users)


def link_message(result: LinkResult) -> Message:
    member = md("{} (id {})", member_label(result.member), result.member.id)
    text = md(":link: {} is now linked to {}.", mention(result.user_id), member)
    if result.previous:
        text = md("{} Before, they were linked to {}.", text, result.previous)
    return simple(text)
