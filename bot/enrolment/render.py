"""Replies of `/course courses|status|enrol|approve|block|unblock|link`."""

from __future__ import annotations

from bot.approvals.decisions import Action, DecisionResult, Outcome, Subject
from bot.core.models import AccessState, EnrolmentCounts
from bot.enrolment.service import CourseRow, CourseStatus, LinkResult, MemberStatus
from bot.render import (
    STATE_TEXT,
    VISIBILITY_ICON,
    Message,
    context,
    course_label,
    esc,
    fields,
    header,
    member_label,
    mention,
    refusal_message,
    section,
    sections_of_lines,
    simple,
    when,
)


def counts_text(counts: EnrolmentCounts) -> str:
    parts = [f"{counts.approved} approved"]
    if counts.pending:
        parts.append(f"{counts.pending} waiting")
    if counts.blocked:
        parts.append(f"{counts.blocked} blocked")
    noun = "member" if counts.total == 1 else "members"
    return f"{counts.total} {noun} ({', '.join(parts)})"


def courses_message(rows: list[CourseRow], *, platform: str) -> Message:
    if not rows:
        return simple(f"There are no courses on {esc(platform)} yet.")
    lines = [
        f"{VISIBILITY_ICON[row.course.visibility]} {course_label(row.course)} · {row.course.visibility.value}"
        f"{'' if row.course.active else ' · inactive'} · {counts_text(row.counts)}"
        for row in rows
    ]
    return Message(
        text=f"{len(rows)} courses on {platform}",
        blocks=[header(f"Courses on {platform}"), *sections_of_lines(lines),
                context(esc("`/course status <course>` for one course, "
                            "`/course status <course> <member>` for a member."))],
    )


def course_status_message(status: CourseStatus) -> Message:
    course = status.course
    pairs = [
        ("Visibility", f"{VISIBILITY_ICON[course.visibility]} {course.visibility.value}"),
        ("Members", str(status.counts.total)),
        ("Approved", str(status.counts.approved)),
        ("Waiting for approval", str(status.counts.pending)),
        ("Blocked", str(status.counts.blocked)),
    ]
    if status.lessons is not None:
        pairs.append(("Lessons", str(status.lessons)))
    blocks = [section(course_label(course)), fields(pairs)]
    if course.admin_url:
        blocks.append(context(f"<{esc(course.admin_url)}|Open in the admin panel>"))
    return Message(text=f"{course.title}: {counts_text(status.counts)}", blocks=blocks)


def member_status_message(status: MemberStatus, *, show_email: bool, hints: bool) -> Message:
    """One member's access and progress; their email only for managers and approvers, and the
    "enrol them" hint only for those who may."""
    who, course = member_label(status.member, with_email=show_email), course_label(status.course)
    enrolment = status.enrolment
    if enrolment is None:
        text = f"{who} is not enrolled in {course}."
        blocks = [section(text)]
        if hints:
            blocks.append(context(esc("Enrol them with `/course enrol <course> <member>`.")))
        return Message(text=esc(f"{status.member.label} is not enrolled in {status.course.title}."), blocks=blocks)
    pairs = [("Access", STATE_TEXT[enrolment.state]), ("Enrolled", when(enrolment.created_on))]
    if status.lessons:
        done = {c.lesson_id for c in status.completed}
        total = len(status.lessons)
        finished = sum(1 for lesson in status.lessons if lesson.id in done)
        pairs.append(("Progress", f"{finished} of {total} lessons{' :tada:' if finished == total else ''}"))
    elif enrolment.completion_rate is not None:
        pairs.append(("Progress", f"{enrolment.completion_rate}%"))
    if enrolment.last_completed_lesson:
        pairs.append(("Last lesson completed", esc(enrolment.last_completed_lesson)))
    if enrolment.last_access:
        pairs.append(("Last seen", when(enrolment.last_access)))
    blocks = [section(f"{who} in {course}"), fields(pairs)]
    if status.lessons:
        done = {c.lesson_id for c in status.completed}
        lines = [f"{':white_check_mark:' if lesson.id in done else ':white_circle:'} {esc(lesson.title)}"
                 for lesson in status.lessons]
        blocks.extend(sections_of_lines(lines, budget=20))
    return Message(text=f"{status.member.label} in {status.course.title}: {enrolment.state.value}", blocks=blocks)


DONE_TEXT = {
    Action.ENROL: "enrolled",
    Action.APPROVE: "approved",
    Action.BLOCK: "blocked",
    Action.UNBLOCK: "unblocked",
}


def subject_label(subject: Subject, *, with_email: bool = True) -> str:
    email = f" ({esc(subject.member_email)})" if with_email and subject.member_email else ""
    return f"*{esc(subject.member_label)}*{email}"


def subject_course(subject: Subject) -> str:
    return f"*{esc(subject.course_title or 'course ' + subject.course_id)}* (id {esc(subject.course_id)})"


def change_message(result: DecisionResult, *, actor: str) -> Message:
    """The answer to `/course enrol|approve|block|unblock` (and the buttons that do the same)."""
    assert result.subject is not None
    who, course = subject_label(result.subject), subject_course(result.subject)
    plain = f"{result.subject.member_label}: {result.action.value} {result.subject.course_title}"
    outcome = result.outcome
    if outcome is Outcome.DONE and result.enrolment is not None:
        verb = DONE_TEXT[result.action]
        if result.action is Action.ENROL and result.enrolment.state is AccessState.PENDING:
            verb = "enrolled, waiting for approval,"
        text = f":white_check_mark: {who} {verb} in {course} by {mention(actor)}."
        if result.note:
            text += f" ({esc(result.note)})"
        return Message(text=esc(plain), blocks=[section(text), context(f"Now: {STATE_TEXT[result.enrolment.state]}")])
    if outcome is Outcome.COUNTED:
        given = ", ".join(mention(u) for u in result.approvals)
        text = (f":ballot_box_with_check: Your approval of {who} in {course} is counted: {len(result.approvals)} of "
                f"{result.quorum} ({given}). The enrolment is approved when the last one lands.")
        return Message(text=esc(plain), blocks=[section(text)])
    if outcome is Outcome.ALREADY:
        if result.request is not None and not result.request.state.open and not result.note:
            state = result.request.state.value
            by = f" by {mention(result.request.decided_by)}" if result.request.decided_by else " outside Slack"
            text = f"Nothing to change: {who} was already {esc(state)} in {course}{by}."
        else:
            text = f"Nothing to change: {who} is {esc(result.note or 'already so')} in {course}."
        blocks = [section(text)]
        if result.enrolment is not None:
            blocks.append(context(f"Now: {STATE_TEXT[result.enrolment.state]}"))
        return Message(text=esc(plain), blocks=blocks)
    if outcome is Outcome.NOT_ENROLLED:
        return simple(f":warning: {who} is not enrolled in {course}, so there is nothing to {result.action.value}. "
                      "Enrol them first: `/course enrol`.")
    if outcome is Outcome.OWN:
        return simple(":no_entry_sign: That is your own enrolment: another manager or approver has to decide it. "
                      "Nothing was changed.")
    if outcome is Outcome.BUSY:
        busy = mention(result.holder.actor) if result.holder and result.holder.actor else "Someone"
        return simple(f":hourglass_flowing_sand: {busy} is changing {who}'s enrolment in {course} right now; "
                      "nothing else was changed. Try again in a moment.")
    if outcome is Outcome.NOT_ALLOWED:
        return refusal_message(result.message)
    if outcome is Outcome.FAILED:
        return Message(text=esc(result.message), blocks=[section(f":x: {esc(result.message)}"),
                                                         context("Nothing was changed. Try again shortly.")])
    return simple(":grey_question: I no longer know this request; nothing was changed.")


def link_message(result: LinkResult) -> Message:
    member = f"{member_label(result.member)} (id {esc(result.member.id)})"
    text = f":link: {mention(result.user_id)} is now linked to {member}."
    if result.previous:
        text += f" Before, they were linked to {esc(result.previous)}."
    return simple(text)
