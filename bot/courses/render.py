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
    Block,
    Message,
    Mrkdwn,
    actions,
    button,
    context,
    course_label,
    icon,
    input_block,
    join,
    link,
    md,
    member_label,
    mention,
    modal,
    option,
    plain_text,
    section,
    sections_of_lines,
    sentence,
    simple,
    user_text,
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


def _option(text: str, value: str) -> dict[str, Any]:
    return option(text, value)


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
    return input_block(block_id, label, element, optional=optional, hint=hint)


def _modal(title: str, blocks: list[Block], *, metadata: str = "", submit: str | None = None,
           close: str = "Close") -> dict[str, Any]:
    return modal(NEW_VIEW, title, blocks, submit=submit, close=close, private_metadata=metadata)


def loading_modal(metadata: str) -> dict[str, Any]:
    return _modal("New course", [section(md(":hourglass_flowing_sand: Loading the locations and pricing plans…"))],
                  metadata=metadata)


def problem_modal(text: str) -> dict[str, Any]:
    return _modal("New course", [section(md(":x: {}", sentence(text))), context(md("Nothing was created."))])


def working_modal(title: str) -> dict[str, Any]:
    return _modal("New course", [
        section(md(":hourglass_flowing_sand: Creating *{}*… The platform is slow to answer; "
                   "I will send you a message with the new course when it is done.", title)),
        context(md("You can close this window: the course is created once, whatever you do here.")),
    ])


def course_form(choices: FormChoices, *, platform: str, metadata: str) -> dict[str, Any]:
    """The form; menus too long for a static menu become type-ahead menus served by the options listener."""
    if len(choices.locations) > STATIC_MAX:
        location: dict[str, Any] = {"type": "external_select", "action_id": action(LOCATION), "min_query_length": 0,
                                    "placeholder": plain_text("Type part of the location's name")}
    else:
        location = {"type": "static_select", "action_id": action(LOCATION),
                    "placeholder": plain_text("Pick a location"),
                    "options": [location_option(loc) for loc in choices.locations]}
        if len(choices.locations) == 1:
            location["initial_option"] = location_option(choices.locations[0])
    visibility_options = [_option(VISIBILITY_HELP[v], v.value) for v in VISIBILITY_HELP]
    blocks: list[Block] = [
        _input(TITLE, "Title", {"type": "plain_text_input", "action_id": action(TITLE), "max_length": TITLE_MAX,
                                "placeholder": plain_text("e.g. Makerspace Safety, spring cohort")}),
        _input(LOCATION, "Location", location),
        _input(HOST, "Host", {"type": "external_select", "action_id": action(HOST), "min_query_length": 2,
                              "placeholder": plain_text("Type part of a member's name or email")},
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
                    "placeholder": plain_text("Type part of the plan's name")}
        else:
            plan = {"type": "static_select", "action_id": action(PLAN),
                    "placeholder": plain_text("Pick a pricing plan"),
                    "options": [plan_option(p, with_location=with_location) for p in choices.plans]}
        blocks.append(_input(PLAN, "Pricing plan", plan, optional=True,
                             hint="Required for a Paid course: what members buy to join it."))
    else:
        why = choices.plans_problem or f"{platform} has no pricing plans"
        blocks.append(context(md(":information_source: {}, so a Paid course cannot be created here.", sentence(why))))
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
    details = [md("{} {}", icon(course.visibility), course.visibility.value)]
    if location:
        details.append(md("at {}", location))
    if host:
        details.append(md("hosted by {}", host))
    if plan:
        details.append(md("plan {}", plan))
    if not course.active:
        details.append(md("inactive"))
    text = md(":white_check_mark: {} created {}: {}", mention(actor), course_label(course), join(details))
    blocks = [section(text)]
    if course.admin_url:
        blocks.append(context(link(course.admin_url, "Open it in the admin panel")))
    blocks.append(context(md("Add people with `/course enrol {} <member>` or `/course invite {} #channel`.",
                             course.id, course.id)))
    return Message(text=md("Created {} (id {})", course.title, course.id), blocks=blocks)


def creation_unclear_message(title: str, reason: str) -> Message:
    return Message(text=md("Not sure whether {} was created: {}", title, sentence(reason)), blocks=[
        section(md(":warning: {}", sentence(reason))),
    ])


def creation_failed_message(title: str, reason: str) -> Message:
    return Message(text=md("Could not create {}: {}", title, sentence(reason)), blocks=[
        section(md(":x: *{}* was not created: {}", title, sentence(reason))),
        context(md("Open the form again with `/course new`; a repeat never creates the course twice.")),
    ])


# ---- lessons --------------------------------------------------------------------------------

def _lesson_line(lesson: Lesson, number: int) -> Mrkdwn:
    inactive = md(" _(inactive)_") if not lesson.active else md("")
    return md("{}. {}{}  ·  id {} · unlock {} · completed by {}", number, lesson.title, inactive, lesson.id,
              lesson.unlock_type or "unknown", lesson.completion_type or "unknown")


def _section_line(section_: Section | None) -> Mrkdwn:
    if section_ is None:
        return md("*Not in a section*")
    unlock = md(" · unlock {}", section_.unlock_type) if section_.unlock_type else md("")
    inactive = md(" _(inactive)_") if not section_.active else md("")
    return md("*{}*{}  ·  id {}{}", section_.title or "Untitled section", inactive, section_.id, unlock)


def lessons_message(listing: LessonsListing) -> Message:
    course = listing.course
    if not listing.lessons and not listing.sections:
        return simple(md("{} has no lessons yet.", course_label(course)))
    items: list[Mrkdwn] = []
    number = 0
    groups = listing.grouped()
    for section_, lessons in groups:
        indented = section_ is not None or len(groups) > 1
        if indented:
            items.append(_section_line(section_))
        if not lessons:
            items.append(md("    _no lessons_"))
        for lesson in lessons:
            number += 1
            items.append(md("    {}", _lesson_line(lesson, number)) if indented else _lesson_line(lesson, number))
    counted = f"{len(listing.lessons)} lesson{'' if len(listing.lessons) == 1 else 's'}"
    if listing.sections:
        counted += f" in {len(listing.sections)} section{'' if len(listing.sections) == 1 else 's'}"
    blocks = [section(md("{} {}: {}, in order", icon(course.visibility), course_label(course), counted)),
              *sections_of_lines(items),
              context(md("Mark one done: `/course complete {} <member> <lesson id or title>`.", course.id))]
    return Message(text=md("{}: {}", course.title, counted), blocks=blocks)


# ---- completions ----------------------------------------------------------------------------

def _lesson_label(lesson: Lesson) -> Mrkdwn:
    return md("“{}” (lesson {})", lesson.title, lesson.id)


def completion_message(result: CompletionResult, *, actor: str) -> Message:
    who, course, lesson = member_label(result.member), course_label(result.course), _lesson_label(result.lesson)
    if result.removed:
        text = (md(":white_check_mark: {} removed the completion of {} for {} in {}.", mention(actor), lesson, who,
                   course)
                if result.changed else md("Nothing to change: {} had not completed {} in {}.", who, lesson, course))
    else:
        text = (md(":white_check_mark: {} marked {} completed for {} in {}.", mention(actor), lesson, who, course)
                if result.changed else md("Nothing to change: {} already completed {} in {}.", who, lesson, course))
    note = md("Enrolment {}", result.enrolment.id)
    if not result.enrolment.approved or result.enrolment.blocked:
        note = md("{} · the enrolment is {}", note,
                  "blocked" if result.enrolment.blocked else "waiting for approval")
    return Message(text=md("{}: {} {}", result.member.label, "uncomplete" if result.removed else "complete",
                           result.lesson.title), blocks=[section(text), context(note)])


def offer_value(course_id: str, member_id: str, lesson_id: str) -> str:
    return json.dumps({"course": course_id, "member": member_id, "lesson": lesson_id}, separators=(",", ":"))


def not_enrolled_message(error: NotEnrolled) -> Message:
    who, course = member_label(error.member), course_label(error.course)
    if error.remove:
        return simple(md(":information_source: {} is not enrolled in {}, so they have not completed {} there. "
                         "Nothing was changed.", who, course, _lesson_label(error.lesson)))
    text = md(":warning: {} is not enrolled in {}, so {} cannot be marked for them. Nothing was changed.", who,
              course, _lesson_label(error.lesson))
    offer = button("Enrol them", ENROL_OFFER, offer_value(error.course.id, error.member.id, error.lesson.id),
                   style="primary")
    return Message(text=md("{} is not enrolled in {}", error.member.label, error.course.title), blocks=[
        section(text), actions("course_enrol_offer", [offer]),
    ])


def enrolled_offer_message(result: DecisionResult, lesson_id: str, lesson_title: str, *, actor: str) -> Message:
    """After "Enrol them": what happened, and the next button; anything but enrolled is the usual reply."""
    subject = result.subject
    assert subject is not None
    if result.outcome not in (Outcome.DONE, Outcome.ALREADY):
        return change_message(result, actor=actor)
    who, course = subject_label(subject), subject_course(subject)
    if result.changed:
        text = md(":white_check_mark: {} enrolled {} in {}.", mention(actor), who, course)
    else:
        text = md("{} is {} in {}.", who, sentence(result.note), course)
    offer = button(f"Mark “{lesson_title}” complete", COMPLETE_OFFER,
                   offer_value(subject.course_id, subject.member_id, lesson_id), style="primary")
    return Message(text=md("{} enrolled in {}", subject.member_label, subject.course_title), blocks=[
        section(text), actions("course_complete_offer", [offer]),
    ])


def lesson_error_message(error: LessonAmbiguous | LessonNotFound) -> Message:
    blocks = [section(md(":warning: {}", user_text(error)))]
    if isinstance(error, LessonAmbiguous):
        items = [md("• {}{}", _lesson_label(le), md(" in {}", le.section_title) if le.section_title else md(""))
                 for le in error.candidates[:30]]
        blocks += [*sections_of_lines(items, budget=10),
                   context(md("Nothing was changed. Use the lesson id, or more of its title."))]
    else:
        items = [md("• {}", _lesson_label(le)) for le in error.lessons[:30]]
        if items:
            blocks += [*sections_of_lines(items, budget=10)]
        blocks.append(context(md("Nothing was changed. `/course lessons {}` lists them all.", error.course.id)))
    return Message(text=user_text(error), blocks=blocks)
