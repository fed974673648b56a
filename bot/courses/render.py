"""The `/course new` form, `/course lessons`, and the replies of `/course complete|uncomplete`.

Block ids of the form are named after what they hold; `FIELD_BLOCK` says which block shows an
error about which `CourseDraft` field. Buttons carry ids only (course, member, lesson): whoever
clicks is checked again on the server, so a value grants nothing.
"""

from __future__ import annotations

import json
from typing import Any

from bot.approvals.decisions import DecisionResult, Outcome
from bot.core.models import Course, Lesson, Location, Member, PricePlan, Section, Visibility
from bot.courses.service import (
    SUMMARY_MAX,
    TITLE_MAX,
    CompletionResult,
    FormChoices,
    LessonAmbiguous,
    LessonNotFound,
    LessonsListing,
    NotEnrolled,
)
from bot.enrolment.render import change_message, subject_course, subject_label
from bot.render import (
    VISIBILITY_ICON,
    Block,
    Message,
    context,
    course_label,
    esc,
    member_label,
    mention,
    section,
    sections_of_lines,
    simple,
)
from bot.render.ids import ActionId, ViewId

NEW_VIEW = ViewId.COURSE_NEW
ENROL_OFFER = ActionId.ENROL_OFFER
COMPLETE_OFFER = ActionId.COMPLETE_OFFER

# Block ids (== action ids) of the form
TITLE, LOCATION, HOST, ORDER, VISIBILITY, PLAN = "title", "location", "host", "display_order", "visibility", "plan"
SUMMARY, DESCRIPTION, GROUP, OPTIONS = "summary", "description", "group_name", "options"
HOME_OPTION, ACTIVE_OPTION = "show_on_home_page", "active"



def action(block_id: str) -> str:
    """The action id of the form's element in block `block_id` (namespaced: type-ahead menus route on it)."""
    return f"course_new:{block_id}"


FIELD_BLOCK = {
    "title": TITLE, "location_id": LOCATION, "host_id": HOST, "display_order": ORDER, "visibility": VISIBILITY,
    "plan_id": PLAN, "summary": SUMMARY, "description": DESCRIPTION, "group_name": GROUP,
    "show_on_home_page": OPTIONS, "active": OPTIONS,
}
STATIC_MAX = 100  # options a static menu may hold; more use a type-ahead menu
VISIBILITY_HELP = {
    Visibility.PUBLIC: "Public: listed, anyone can join",
    Visibility.HIDDEN: "Hidden: not listed, joined by link",
    Visibility.PRIVATE: "Private: only members you add",
    Visibility.PAID: "Paid: members buy the pricing plan",
}
OPTION_TEXT_MAX = 75


def _plain(text: str, limit: int = OPTION_TEXT_MAX) -> dict[str, Any]:
    text = " ".join(text.split()) or "…"
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…", "emoji": False}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(text), "value": value[:150]}


def member_option(member: Member) -> dict[str, Any]:
    text = member.full_name or member.email or f"member {member.id}"
    if member.email and member.full_name:
        text = f"{member.full_name} ({member.email})"
    return _option(text, member.id)


def location_option(location: Location) -> dict[str, Any]:
    return _option(location.name, location.id)


def plan_text(plan: PricePlan) -> str:
    price = f"{plan.price:,.2f} {plan.currency}".strip() if plan.price is not None else ""
    parts = [plan.name, price, "" if plan.visible else "hidden"]
    return " · ".join(p for p in parts if p)


def plan_option(plan: PricePlan, *, with_location: bool = False) -> dict[str, Any]:
    text = plan_text(plan)
    if with_location and plan.location_name:
        text = f"{text} · {plan.location_name}"
    return _option(text, plan.id)


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False,
           hint: str = "") -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": _plain(label, 2000), "element": element,
                    "optional": optional}
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _modal(title: str, blocks: list[Block], *, metadata: str = "", submit: str | None = None,
           close: str = "Close") -> dict[str, Any]:
    view: dict[str, Any] = {"type": "modal", "callback_id": NEW_VIEW, "title": _plain(title, 24),
                            "close": _plain(close, 24), "blocks": blocks, "private_metadata": metadata}
    if submit:
        view["submit"] = _plain(submit, 24)
    return view


def loading_modal(metadata: str) -> dict[str, Any]:
    return _modal("New course", [section(":hourglass_flowing_sand: Loading the locations and pricing plans…")],
                  metadata=metadata)


def problem_modal(text: str) -> dict[str, Any]:
    return _modal("New course", [section(f":x: {esc(text)}"), context("Nothing was created.")])


def working_modal(title: str) -> dict[str, Any]:
    return _modal("New course", [
        section(f":hourglass_flowing_sand: Creating *{esc(title)}*… The platform is slow to answer; "
                "I will send you a message with the new course when it is done."),
        context("You can close this window: the course is created once, whatever you do here."),
    ])


def course_form(choices: FormChoices, *, platform: str, metadata: str) -> dict[str, Any]:
    """The form; menus too long for a static menu become type-ahead menus served by the options listener."""
    if len(choices.locations) > STATIC_MAX:
        location: dict[str, Any] = {"type": "external_select", "action_id": action(LOCATION), "min_query_length": 0,
                                    "placeholder": _plain("Type part of the location's name")}
    else:
        location = {"type": "static_select", "action_id": action(LOCATION), "placeholder": _plain("Pick a location"),
                    "options": [location_option(loc) for loc in choices.locations]}
        if len(choices.locations) == 1:
            location["initial_option"] = location_option(choices.locations[0])
    visibility_options = [_option(VISIBILITY_HELP[v], v.value) for v in VISIBILITY_HELP]
    blocks: list[Block] = [
        _input(TITLE, "Title", {"type": "plain_text_input", "action_id": action(TITLE), "max_length": TITLE_MAX,
                                "placeholder": _plain("e.g. Makerspace Safety, spring cohort")}),
        _input(LOCATION, "Location", location),
        _input(HOST, "Host", {"type": "external_select", "action_id": action(HOST), "min_query_length": 2,
                              "placeholder": _plain("Type part of a member's name or email")},
               hint=f"The member of {platform} who runs the course."),
        _input(ORDER, "Display order", {"type": "number_input", "action_id": action(ORDER), "is_decimal_allowed": False,
                                        "initial_value": "0"},
               hint="Courses are listed by this number, lowest first."),
        _input(VISIBILITY, "Visibility", {"type": "static_select", "action_id": action(VISIBILITY),
                                          "options": visibility_options,
                                          "initial_option": visibility_options[0]}),
    ]
    if choices.plans:
        with_location = len({p.location_id for p in choices.plans}) > 1
        plan: dict[str, Any]
        if len(choices.plans) > STATIC_MAX:
            plan = {"type": "external_select", "action_id": action(PLAN), "min_query_length": 0,
                    "placeholder": _plain("Type part of the plan's name")}
        else:
            plan = {"type": "static_select", "action_id": action(PLAN), "placeholder": _plain("Pick a pricing plan"),
                    "options": [plan_option(p, with_location=with_location) for p in choices.plans]}
        blocks.append(_input(PLAN, "Pricing plan", plan, optional=True,
                             hint="Required for a Paid course: what members buy to join it."))
    else:
        why = choices.plans_problem or f"{platform} has no pricing plans"
        blocks.append(context(f":information_source: {esc(why)}, so a Paid course cannot be created here."))
    blocks += [
        _input(SUMMARY, "Summary", {"type": "plain_text_input", "action_id": action(SUMMARY), "multiline": True,
                                    "max_length": SUMMARY_MAX}, optional=True),
        _input(DESCRIPTION, "Description", {"type": "plain_text_input", "action_id": action(DESCRIPTION),
                                            "multiline": True, "max_length": 3000}, optional=True),
        _input(GROUP, "Group name", {"type": "plain_text_input", "action_id": action(GROUP), "max_length": 100},
               optional=True, hint="Courses with the same group name are shown together."),
    ]
    home, active = _option("Show on the home page", HOME_OPTION), _option("Active", ACTIVE_OPTION)
    blocks.append(_input(OPTIONS, "Options", {"type": "checkboxes", "action_id": action(OPTIONS),
                                              "options": [home, active], "initial_options": [active]},
                         optional=True))
    return _modal("New course", blocks, metadata=metadata, submit="Create", close="Cancel")


def created_message(course: Course, *, location: str, host: str, plan: str, actor: str) -> Message:
    icon = VISIBILITY_ICON[course.visibility]
    details = [f"{icon} {course.visibility.value}", f"at {esc(location)}" if location else "",
               f"hosted by {esc(host)}" if host else "", f"plan {esc(plan)}" if plan else "",
               "" if course.active else "inactive"]
    text = f":white_check_mark: {mention(actor)} created {course_label(course)}: " + ", ".join(d for d in details if d)
    blocks = [section(text)]
    if course.admin_url:
        blocks.append(context(f"<{esc(course.admin_url)}|Open it in the admin panel>"))
    blocks.append(context(esc(f"Add people with `/course enrol {course.id} <member>` or "
                              f"`/course invite {course.id} #channel`.")))
    return Message(text=f"Created {course.title} (id {course.id})", blocks=blocks)


def creation_unclear_message(title: str, reason: str) -> Message:
    return Message(text=f"Not sure whether {title} was created: {reason}", blocks=[
        section(f":warning: {esc(reason)}"),
    ])


def creation_failed_message(title: str, reason: str) -> Message:
    return Message(text=f"Could not create {title}: {reason}", blocks=[
        section(f":x: *{esc(title)}* was not created: {esc(reason)}"),
        context("Open the form again with `/course new`; a repeat never creates the course twice."),
    ])


# ---- lessons --------------------------------------------------------------------------------

def _lesson_line(lesson: Lesson, number: int) -> str:
    parts = [f"id {esc(lesson.id)}", f"unlock {esc(lesson.unlock_type or 'unknown')}",
             f"completed by {esc(lesson.completion_type or 'unknown')}"]
    inactive = " _(inactive)_" if not lesson.active else ""
    return f"{number}. {esc(lesson.title)}{inactive}  ·  " + " · ".join(parts)


def _section_line(section_: Section | None) -> str:
    if section_ is None:
        return "*Not in a section*"
    parts = [f"id {esc(section_.id)}"]
    if section_.unlock_type:
        parts.append(f"unlock {esc(section_.unlock_type)}")
    inactive = " _(inactive)_" if not section_.active else ""
    return f"*{esc(section_.title or 'Untitled section')}*{inactive}  ·  " + " · ".join(parts)


def lessons_message(listing: LessonsListing) -> Message:
    course = listing.course
    if not listing.lessons and not listing.sections:
        return simple(f"{course_label(course)} has no lessons yet.")
    lines: list[str] = []
    number = 0
    groups = listing.grouped()
    for section_, lessons in groups:
        if section_ is not None or len(groups) > 1:
            lines.append(_section_line(section_))
        if not lessons:
            lines.append("    _no lessons_")
        for lesson in lessons:
            number += 1
            lines.append(("    " if section_ is not None or len(groups) > 1 else "") + _lesson_line(lesson, number))
    counted = f"{len(listing.lessons)} lesson{'' if len(listing.lessons) == 1 else 's'}"
    if listing.sections:
        counted += f" in {len(listing.sections)} section{'' if len(listing.sections) == 1 else 's'}"
    blocks = [section(f"{VISIBILITY_ICON[course.visibility]} {course_label(course)}: {counted}, in order"),
              *sections_of_lines(lines, budget=45),
              context(esc(f"Mark one done: `/course complete {course.id} <member> <lesson id or title>`."))]
    return Message(text=f"{course.title}: {counted}", blocks=blocks)


# ---- completions ----------------------------------------------------------------------------

def _lesson_label(lesson: Lesson) -> str:
    return f"“{esc(lesson.title)}” (lesson {esc(lesson.id)})"


def completion_message(result: CompletionResult, *, actor: str) -> Message:
    who, course, lesson = member_label(result.member), course_label(result.course), _lesson_label(result.lesson)
    if result.removed:
        text = (f":white_check_mark: {mention(actor)} removed the completion of {lesson} for {who} in {course}."
                if result.changed else f"Nothing to change: {who} had not completed {lesson} in {course}.")
    else:
        text = (f":white_check_mark: {mention(actor)} marked {lesson} completed for {who} in {course}."
                if result.changed else f"Nothing to change: {who} already completed {lesson} in {course}.")
    note = f"Enrolment {esc(result.enrolment.id)}"
    if not result.enrolment.approved or result.enrolment.blocked:
        note += " · the enrolment is " + ("blocked" if result.enrolment.blocked else "waiting for approval")
    return Message(text=f"{result.member.label}: {'uncomplete' if result.removed else 'complete'} "
                        f"{result.lesson.title}", blocks=[section(text), context(note)])


def offer_value(course_id: str, member_id: str, lesson_id: str) -> str:
    return json.dumps({"course": course_id, "member": member_id, "lesson": lesson_id}, separators=(",", ":"))


def not_enrolled_message(error: NotEnrolled) -> Message:
    who, course = member_label(error.member), course_label(error.course)
    if error.remove:
        return simple(f":information_source: {who} is not enrolled in {course}, so they have not completed "
                      f"{_lesson_label(error.lesson)} there. Nothing was changed.")
    text = (f":warning: {who} is not enrolled in {course}, so {_lesson_label(error.lesson)} cannot be marked "
            "for them. Nothing was changed.")
    button = {"type": "button", "action_id": ENROL_OFFER, "style": "primary", "text": _plain("Enrol them"),
              "value": offer_value(error.course.id, error.member.id, error.lesson.id)}
    return Message(text=f"{error.member.label} is not enrolled in {error.course.title}", blocks=[
        section(text), {"type": "actions", "block_id": "course_enrol_offer", "elements": [button]},
    ])


def enrolled_offer_message(result: DecisionResult, lesson_id: str, lesson_title: str, *, actor: str) -> Message:
    """After "Enrol them": what happened, and the next button; anything but enrolled is the usual reply."""
    subject = result.subject
    assert subject is not None
    if result.outcome not in (Outcome.DONE, Outcome.ALREADY):
        return change_message(result, actor=actor)
    who, course = subject_label(subject), subject_course(subject)
    if result.changed:
        text = f":white_check_mark: {mention(actor)} enrolled {who} in {course}."
    else:
        text = f"{who} is {esc(result.note)} in {course}."
    button = {"type": "button", "action_id": COMPLETE_OFFER, "style": "primary",
              "text": _plain(f"Mark “{lesson_title}” complete"),
              "value": offer_value(subject.course_id, subject.member_id, lesson_id)}
    return Message(text=esc(f"{subject.member_label} enrolled in {subject.course_title}"), blocks=[
        section(text), {"type": "actions", "block_id": "course_complete_offer", "elements": [button]},
    ])


def lesson_error_message(error: LessonAmbiguous | LessonNotFound) -> Message:
    blocks = [section(f":warning: {error.text(esc)}")]
    if isinstance(error, LessonAmbiguous):
        lines = [f"• {_lesson_label(le)}" + (f" in {esc(le.section_title)}" if le.section_title else "")
                 for le in error.candidates[:30]]
        blocks += [*sections_of_lines(lines, budget=10),
                   context("Nothing was changed. Use the lesson id, or more of its title.")]
    else:
        lines = [f"• {_lesson_label(le)}" for le in error.lessons[:30]]
        if lines:
            blocks += [*sections_of_lines(lines, budget=10)]
        blocks.append(context(esc(f"Nothing was changed. `/course lessons {error.course.id}` lists them all.")))
    return Message(text=str(error), blocks=blocks)
