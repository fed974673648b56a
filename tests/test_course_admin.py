"""`/course new`, `lessons`, `complete` and `uncomplete` end to end: signed Slack requests in, what the
manager sees out, and what the local Nexudus holds after."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.core.pacing import Budget, make_storage, smooth_per_minute
from bot.courses import render as view
from bot.platforms.http import RetryPolicy
from bot.platforms.nexudus import NexudusPlatform
from devtools import requests as slack_requests
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import (
    GENERAL,
    MANAGER,
    OUTSIDER,
    REDIS_URL,
    Tenant,
    meltingspot_settings,
    nexudus_settings,
)


def text_of(lines: list[str]) -> str:
    return "\n".join(lines)


def writes(tenant: Tenant) -> list[tuple[str, str, dict[str, str]]]:
    with tenant.fake.lock:
        return [r for r in tenant.fake.requests if r[0] in ("POST", "PUT", "DELETE") and r[1] != "/api/token"]


async def settle() -> None:
    """Let the work a listener started after its ack finish (as Shell does after each request)."""
    for _ in range(200):
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if not others:
            return
        await asyncio.wait(others, timeout=0.1)


async def deliver(shell: Shell, payload: dict[str, Any]) -> httpx.Response:
    """Send one interaction payload the way Slack does (signed), without waiting for what follows the ack."""
    body = slack_requests.interaction(payload)
    return await shell.http.post("/slack/events", content=body,
                                 headers=slack_requests.signed_headers(shell.secret, body))


def ack_body(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    return response.json() if response.content else {}


async def open_form(shell: Shell) -> dict[str, Any]:
    await shell.command("new")
    entry = shell.ws.views[-1]
    assert entry["method"] == "views.update"
    form: dict[str, Any] = entry["view"]
    assert form["callback_id"] == view.NEW_VIEW
    return form


def option(text: str, value: object) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": str(value)}


def form_values(tenant: Tenant, *, title: str = "Spring cohort", visibility: str = "Private",
                plan: dict[str, Any] | None = None, order: str = "7", summary: str = "Four evenings, hands on.",
                checked: tuple[str, ...] = (view.ACTIVE_OPTION, view.HOME_OPTION),
                host: dict[str, Any] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    business = next(iter(tenant.fake.businesses.values()))
    host = host or tenant.people["grace"]

    def put(block: str, value: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
        return block, {view.action(block): value}

    return dict([
        put(view.TITLE, {"type": "plain_text_input", "value": title}),
        put(view.LOCATION, {"type": "static_select", "selected_option": option(business["Name"], business["Id"])}),
        put(view.HOST, {"type": "external_select",
                        "selected_option": option(f"{host['FullName']} ({host['Email']})", host["Id"])}),
        put(view.ORDER, {"type": "number_input", "value": order}),
        put(view.VISIBILITY, {"type": "static_select", "selected_option": option(visibility, visibility)}),
        put(view.PLAN, {"type": "static_select",
                        "selected_option": option(plan["Name"], plan["Id"]) if plan else None}),
        put(view.SUMMARY, {"type": "plain_text_input", "value": summary}),
        put(view.DESCRIPTION, {"type": "plain_text_input", "value": "Bring safety glasses."}),
        put(view.GROUP, {"type": "plain_text_input", "value": "Makerspace"}),
        put(view.OPTIONS, {"type": "checkboxes", "selected_options": [option(c, c) for c in checked]}),
    ])


async def submit(shell: Shell, form: dict[str, Any], values: dict[str, Any], user: str = MANAGER) -> dict[str, Any]:
    response = await deliver(shell, slack_requests.view_submission(user_id=user, view=form, values=values))
    await settle()
    return ack_body(response)


def courses_titled(tenant: Tenant, title: str) -> list[dict[str, Any]]:
    with tenant.fake.lock:
        return [dict(c) for c in tenant.fake.courses.values() if c["Title"] == title]


@pytest.fixture
def plan(nexudus: Tenant) -> dict[str, Any]:
    business = next(iter(nexudus.fake.businesses.values()))
    return nexudus.fake.add_tariff("Workshop pass", business["Id"], price=49.0)


# ---- /course new -------------------------------------------------------------------------------

async def test_new_opens_a_form_with_the_tenants_locations_and_plans(bot: Shell, nexudus: Tenant,
                                                                       plan: dict[str, Any]) -> None:
    form = await open_form(bot)
    blocks = {b.get("block_id"): b for b in form["blocks"]}
    assert [v["method"] for v in bot.ws.views] == ["views.open", "views.update"]
    location = blocks[view.LOCATION]["element"]
    assert [o["text"]["text"] for o in location["options"]] == ["Main Street Hub"]
    assert location["initial_option"]["value"] == str(next(iter(nexudus.fake.businesses)))
    assert blocks[view.HOST]["element"]["type"] == "external_select"
    assert [o["value"] for o in blocks[view.VISIBILITY]["element"]["options"]] == ["Public", "Hidden", "Private",
                                                                                    "Paid"]
    assert [o["value"] for o in blocks[view.PLAN]["element"]["options"]] == [str(plan["Id"])]
    assert "49.00 EUR" in blocks[view.PLAN]["element"]["options"][0]["text"]["text"]
    for block in (view.TITLE, view.ORDER, view.SUMMARY, view.DESCRIPTION, view.GROUP, view.OPTIONS):
        assert block in blocks
    assert json.loads(form["private_metadata"]) == {"v": 1, "channel": GENERAL}


async def test_the_host_menu_finds_members_by_name_or_email_for_managers_only(bot: Shell, nexudus: Tenant) -> None:
    form = await open_form(bot)

    async def suggest(text: str, user: str = MANAGER) -> list[str]:
        payload = {"type": "block_suggestion", "user": {"id": user, "team_id": "T0001"},
                   "team": {"id": "T0001", "domain": "coursebot"}, "api_app_id": "A0COURSEBOT", "token": "unused",
                   "container": {"type": "view", "view_id": form["id"]}, "view": form,
                   "action_id": view.action(view.HOST), "block_id": view.HOST, "value": text}
        return [o["text"]["text"] for o in ack_body(await deliver(bot, payload))["options"]]

    assert await suggest("lovelace") == ["Ada Lovelace (ada@example.com)"]
    assert await suggest("grace@work") == ["Grace Hopper (grace@work.example)"]
    assert "Jo Ann (joann@example.com)" in await suggest("ann")
    assert await suggest("lovelace", user=OUTSIDER) == []


async def test_a_submission_creates_exactly_one_course_with_every_field_even_when_delivered_twice(
    bot: Shell, nexudus: Tenant
) -> None:
    form = await open_form(bot)
    values = form_values(nexudus, title="Makerspace Safety: spring cohort")
    payload = slack_requests.view_submission(user_id=MANAGER, view=form, values=values)
    first, second = await asyncio.gather(deliver(bot, payload), deliver(bot, payload))
    await settle()
    assert ack_body(first) == {} and ack_body(second) == {}  # both close the form
    third = await submit(bot, form, values)  # and a late repeat too
    assert third == {}

    [course] = courses_titled(nexudus, "Makerspace Safety: spring cohort")
    business = next(iter(nexudus.fake.businesses.values()))
    assert course["BusinessId"] == business["Id"]
    assert course["HostId"] == nexudus.people["grace"]["Id"]
    assert course["DisplayOrder"] == 7
    assert course["Visibility"] == 3
    assert course["TariffId"] is None
    assert course["SummaryText"] == "Four evenings, hands on."
    assert course["FullDescription"] == "Bring safety glasses."
    assert course["GroupName"] == "Makerspace"
    assert course["ShowInHomePage"] is True and course["Active"] is True
    assert course["SystemId"] == f"coursebot:new:T0001:{form['id']}"
    assert len([w for w in writes(nexudus) if w[1] == "/api/content/courses"]) == 1

    [announced] = [m for m in bot.ws.ephemeral if "created" in m["text"].lower()]
    assert announced["channel"] == GENERAL and announced["user"] == MANAGER
    raw = json.dumps(announced["blocks"])
    assert f"(id {course['Id']})" in raw and f"/content/courses/{course['Id']}" in raw
    assert "Main Street Hub" in raw and "Grace Hopper" in raw


async def test_paid_without_a_plan_is_refused_inline_and_nothing_is_created(
    bot: Shell, nexudus: Tenant, plan: dict[str, Any]
) -> None:
    form = await open_form(bot)
    answer = await submit(bot, form, form_values(nexudus, title="Laser masterclass", visibility="Paid"))
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {view.PLAN}
    assert "pricing plan" in answer["errors"][view.PLAN]
    assert courses_titled(nexudus, "Laser masterclass") == []
    assert writes(nexudus) == []

    answer = await submit(bot, form, form_values(nexudus, title="Laser masterclass", visibility="Paid", plan=plan))
    assert answer == {}
    [course] = courses_titled(nexudus, "Laser masterclass")
    assert course["Visibility"] == 4 and course["TariffId"] == plan["Id"]


async def test_input_the_form_can_check_itself_is_refused_before_the_platform_is_asked(
    bot: Shell, nexudus: Tenant
) -> None:
    form = await open_form(bot)
    values = form_values(nexudus, title="   ", order="seven", summary="x" * 401)
    values[view.HOST] = {view.action(view.HOST): {"type": "external_select", "selected_option": None}}
    answer = await submit(bot, form, values)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {view.TITLE, view.HOST, view.ORDER, view.SUMMARY}
    assert writes(nexudus) == []


async def test_the_platforms_validation_errors_come_back_beside_the_field_and_a_corrected_submit_works(
    bot: Shell, nexudus: Tenant
) -> None:
    form = await open_form(bot)
    refusal = {"Message": "HostId: is not an active coworker", "Value": None, "WasSuccessful": False,
               "Errors": [{"AttemptedValue": 5, "Message": "is not an active coworker", "PropertyName": "HostId"},
                          {"AttemptedValue": None, "Message": "Quota reached", "PropertyName": "Mystery"}]}
    nexudus.fake.fail_next(1, status=400, method="POST", path_contains="/api/content/courses", body=refusal)
    answer = await submit(bot, form, form_values(nexudus, title="Evening sessions"))
    assert answer["response_action"] == "errors"
    assert answer["errors"][view.HOST] == "Nexudus says this is not an active coworker."
    assert "Mystery Quota reached" in answer["errors"][view.TITLE]
    assert courses_titled(nexudus, "Evening sessions") == []

    # The claim on the form was released: the corrected form goes through, once.
    answer = await submit(bot, form, form_values(nexudus, title="Evening sessions", host=nexudus.people["ada"]))
    assert answer == {}
    [course] = courses_titled(nexudus, "Evening sessions")
    assert course["HostId"] == nexudus.people["ada"]["Id"]


async def test_a_slow_platform_closes_the_form_on_a_note_and_the_course_is_announced_when_made(
    bot: Shell, nexudus: Tenant
) -> None:
    form = await open_form(bot)
    nexudus.fake.throttle_next(1, retry_after=3, method="POST", path_contains="/api/content/courses")
    started = time.monotonic()
    response = await deliver(bot, slack_requests.view_submission(
        user_id=MANAGER, view=form, values=form_values(nexudus, title="Night owls")))
    answer = ack_body(response)
    assert time.monotonic() - started < 3.0  # acknowledged inside Slack's 3 seconds
    assert answer["response_action"] == "update"
    assert "Creating" in json.dumps(answer["view"])
    await settle()
    [course] = courses_titled(nexudus, "Night owls")
    assert any(f"(id {course['Id']})" in json.dumps(m["blocks"]) for m in bot.ws.ephemeral)


async def test_a_non_manager_cannot_create_a_course_from_a_form(bot: Shell, nexudus: Tenant) -> None:
    form = await open_form(bot)
    answer = await submit(bot, form, form_values(nexudus, title="Sneaky"), user=OUTSIDER)
    assert answer["response_action"] == "errors" and "Only course managers" in answer["errors"][view.TITLE]
    assert courses_titled(nexudus, "Sneaky") == []
    bot.user = OUTSIDER
    assert "Only course managers" in text_of(await bot.command("new"))


# ---- /course lessons ---------------------------------------------------------------------------

async def test_lessons_lists_sections_and_lessons_in_order_with_ids_and_types(bot: Shell, nexudus: Tenant) -> None:
    fake = nexudus.fake
    course = fake.add_course("Makerspace Safety", visibility=3, business_id=1, host_id=1)
    second = fake.add_section(course["Id"], "Machines", display_order=2, UnlockType=2)
    first = fake.add_section(course["Id"], "Basics", display_order=1)
    fake.add_lesson(course["Id"], "3D printers", display_order=2, section_id=second["Id"], completion_type=3)
    laser = fake.add_lesson(course["Id"], "Laser cutter", display_order=1, section_id=second["Id"], unlock_type=3,
                            completion_type=4)
    fake.add_lesson(course["Id"], "Welcome", display_order=1, section_id=first["Id"])
    fake.add_lesson(course["Id"], "Read me first", display_order=0)
    fake.reset_counters()

    out = text_of(await bot.command("lessons makerspace"))
    order = ["Read me first", "Basics", "Welcome", "Machines", "Laser cutter", "3D printers"]
    positions = [out.index(title) for title in order]
    assert positions == sorted(positions)
    assert f"Laser cutter  ·  id {laser['Id']} · unlock Timed · completed by Video" in out
    assert "3D printers" in out and "completed by Button" in out
    assert f"Machines  ·  id {second['Id']} · unlock Sequential" in out
    assert "4 lessons in 2 sections" in out
    # List records omit the types: one batch GET filled them in, not one GET per lesson.
    lesson_reads = [r for r in fake.requests if r[1].startswith("/api/content/courselessons")]
    assert len(lesson_reads) == 2 and lesson_reads[1][2]["id"].startswith("[")


# ---- /course complete and uncomplete -----------------------------------------------------------

@pytest.fixture
def enrolled(nexudus: Tenant) -> dict[str, Any]:
    """Ada enrolled in onboarding; an enrolment before hers makes its id differ from her coworker id."""
    fake = nexudus.fake
    fake.add_enrolment(nexudus.courses["figma2"]["Id"], nexudus.people["joann"]["Id"])
    fake.add_enrolment(nexudus.courses["figma2"]["Id"], nexudus.people["grace"]["Id"])
    enrolment = fake.add_enrolment(nexudus.courses["onboarding"]["Id"], nexudus.people["ada"]["Id"])
    assert enrolment["Id"] != nexudus.people["ada"]["Id"]
    return enrolment


def completions(tenant: Tenant) -> list[dict[str, Any]]:
    with tenant.fake.lock:
        return [dict(c) for c in tenant.fake.coursecompletedlessons.values()]


async def test_complete_records_the_lesson_on_the_enrolment_and_a_repeat_writes_nothing(
    bot: Shell, nexudus: Tenant, enrolled: dict[str, Any], redis_client: Any
) -> None:
    welcome = next(le for le in nexudus.fake.courselessons.values() if le["Title"] == "Welcome")
    out = text_of(await bot.command("complete onboarding ada@example.com welcome"))
    assert "marked “Welcome”" in out and "Ada Lovelace" in out
    [record] = completions(nexudus)
    assert record["CourseMemberId"] == enrolled["Id"]
    assert record["CourseLessonId"] == welcome["Id"]
    assert [(w[0], w[1]) for w in writes(nexudus)] == [("POST", "/api/content/coursecompletedlessons")]

    again = text_of(await bot.command("complete onboarding <@U0ADA|ada> Welcome"))
    assert "Nothing to change" in again and "already completed" in again
    assert len(completions(nexudus)) == 1 and len(writes(nexudus)) == 1
    audit = [json.loads(e) for e in await redis_client.lrange("coursebot:audit", 0, -1)]
    assert [(e["action"], e["outcome"]) for e in audit[:2]] == [("complete", "unchanged"), ("complete", "changed")]


async def test_uncomplete_deletes_the_record_and_a_repeat_changes_nothing(
    bot: Shell, nexudus: Tenant, enrolled: dict[str, Any]
) -> None:
    welcome = next(le for le in nexudus.fake.courselessons.values() if le["Title"] == "Welcome")
    record = nexudus.fake.add_completed_lesson(enrolled["Id"], welcome["Id"])
    out = text_of(await bot.command(f"uncomplete onboarding ada@example.com {welcome['Id']}"))
    assert "removed the completion" in out
    assert completions(nexudus) == []
    assert [(w[0], w[1]) for w in writes(nexudus)] == [
        ("DELETE", f"/api/content/coursecompletedlessons/{record['Id']}")]
    again = text_of(await bot.command("uncomplete onboarding ada@example.com welcome"))
    assert "Nothing to change" in again and "had not completed" in again
    assert len(writes(nexudus)) == 1


async def test_a_member_not_enrolled_is_told_and_offered_enrolment_then_completion(
    bot: Shell, nexudus: Tenant
) -> None:
    out = text_of(await bot.command('complete onboarding ada@example.com "house rules"'))
    assert "is not enrolled in" in out and "Nothing was changed" in out and "Enrol them" in out
    assert writes(nexudus) == []
    button = max(bot.view.buttons)
    out = text_of(await bot.press(button))
    assert "enrolled" in out and "Mark “House rules” complete" in out
    [enrolment] = [e for e in nexudus.fake.coursemembers.values()
                   if e["CoworkerId"] == nexudus.people["ada"]["Id"]]
    assert enrolment["CourseId"] == nexudus.courses["onboarding"]["Id"] and enrolment["Approved"] is True
    out = text_of(await bot.press(max(bot.view.buttons)))
    assert "marked “House rules”" in out
    [record] = completions(nexudus)
    assert record["CourseMemberId"] == enrolment["Id"]


async def test_an_outsider_pressing_the_offer_changes_nothing(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("complete onboarding ada@example.com welcome")
    bot.user = OUTSIDER
    out = text_of(await bot.press(max(bot.view.buttons)))
    assert "Only course managers" in out
    assert writes(nexudus) == []


async def test_an_ambiguous_or_unknown_lesson_lists_candidates_and_changes_nothing(
    bot: Shell, nexudus: Tenant, enrolled: dict[str, Any]
) -> None:
    out = text_of(await bot.command("complete onboarding ada@example.com o"))
    assert "matches 3 lessons" in out
    for title in ("Welcome", "House rules", "Booking rooms"):
        assert title in out
    out = text_of(await bot.command("complete onboarding ada@example.com yoga"))
    assert "No lesson of Community Onboarding matches “yoga”" in out and "/course lessons" in out
    assert writes(nexudus) == []


async def test_complete_naming_nobody_is_answered_with_the_usage(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("complete onboarding welcome \"\""))  # found by the command-text fuzz test
    assert "Usage: `/course complete" in out and "went wrong" not in out
    assert writes(nexudus) == []


# ---- bulk completion (the bulk-invite job machinery) -----------------------------------------

async def test_bulk_completion_runs_as_a_job_with_a_report(nexudus: Tenant, slack: SlackWorkspace) -> None:
    fake = nexudus.fake
    onboarding = nexudus.courses["onboarding"]["Id"]
    ada = fake.add_enrolment(onboarding, nexudus.people["ada"]["Id"])
    joann = fake.add_enrolment(onboarding, nexudus.people["joann"]["Id"])
    welcome = next(le for le in fake.courselessons.values() if le["Title"] == "Welcome")
    fake.add_completed_lesson(joann["Id"], welcome["Id"])
    # The embedded store runs queued jobs in this process, so the whole job happens here.
    settings = nexudus_settings(nexudus, redis_url=None)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        shell.channel = GENERAL
        out = text_of(await shell.command(
            "complete onboarding welcome <#C0GENERAL|general> joann@example.com ann@example.com nobody@none.example"))
        await settle()
    assert "Marking a lesson complete for" in out
    done = {c["CourseMemberId"] for c in completions(nexudus) if c["CourseLessonId"] == welcome["Id"]}
    assert done == {ada["Id"], joann["Id"]}
    posts = [w for w in writes(nexudus) if w[1] == "/api/content/coursecompletedlessons"]
    assert len(posts) == 1  # only Ada needed it
    report = json.dumps([m["blocks"] for m in slack.messages(slack.open_dm(MANAGER))])
    assert "Not enrolled in Community Onboarding" in report  # Ann (and Grace, whose email differs) said why
    assert "nobody@none.example" in report


# ---- MeltingSpot -----------------------------------------------------------------------------

async def test_meltingspot_says_plainly_that_these_are_not_available(
    meltingspot: Callable[..., tuple[MeltingSpotFake, str]], slack: SlackWorkspace
) -> None:
    fake, url = meltingspot()
    settings = meltingspot_settings(url, fake.api_key, coursebot_approvals_channel=None)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        answers = {command: text_of(await shell.command(command)) for command in (
            "new", "lessons onboarding", "complete onboarding ada@example.com welcome",
            "uncomplete onboarding ada@example.com welcome",
            "complete onboarding welcome <#C0GENERAL|general>")}
        help_text = text_of(await shell.command("help"))
    assert "MeltingSpot has no API for creating courses, so the bot cannot do it there." in answers["new"]
    assert "MeltingSpot has no API for listing a course's lessons" in answers["lessons onboarding"]
    for command, answer in answers.items():
        if command.startswith(("complete", "uncomplete")):
            assert "MeltingSpot has no API for recording completed lessons" in answer
    assert slack.views == []
    assert fake.requests == []  # answered without asking MeltingSpot anything
    for hidden in ("/course new", "/course lessons", "/course complete", "/course uncomplete"):
        assert hidden not in help_text


async def test_without_the_locations_and_plans_lists_the_form_still_works_from_what_courses_show(
    bot: Shell, nexudus: Tenant
) -> None:
    nexudus.fake.fail_next(5, status=404, path_contains="/api/sys/businesses")
    nexudus.fake.fail_next(5, status=403, path_contains="/api/billing/tariffs")
    form = await open_form(bot)
    blocks = {b.get("block_id"): b for b in form["blocks"]}
    business = next(iter(nexudus.fake.businesses.values()))
    assert [(o["text"]["text"], o["value"]) for o in blocks[view.LOCATION]["element"]["options"]] == [
        ("Main Street Hub", str(business["Id"]))]  # read off the existing courses
    assert view.PLAN not in blocks
    assert "a Paid course cannot be created here" in json.dumps(form["blocks"])
    answer = await submit(bot, form, form_values(nexudus, title="Paid but planless", visibility="Paid"))
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {view.VISIBILITY}
    assert await submit(bot, form, form_values(nexudus, title="Free for all", visibility="Public")) == {}
    assert len(courses_titled(nexudus, "Free for all")) == 1


async def test_a_completion_whose_write_failed_is_looked_for_before_it_is_sent_again(
    bot: Shell, nexudus: Tenant, enrolled: dict[str, Any]
) -> None:
    nexudus.fake.fail_next(1, status=502, method="POST", path_contains="/api/content/coursecompletedlessons")
    out = text_of(await bot.command("complete onboarding ada@example.com welcome"))
    assert "marked “Welcome”" in out
    assert len(completions(nexudus)) == 1
    calls = [(r[0], r[1]) for r in nexudus.fake.requests if r[1].startswith("/api/content/coursecompletedlessons")]
    # read (is it done?), POST (502, unclear), read again (not there), POST, read the new record
    assert [m for m, _ in calls] == ["GET", "POST", "GET", "POST", "GET"]


async def test_a_spent_daily_write_budget_is_said_plainly(nexudus: Tenant, slack: SlackWorkspace,
                                                          enrolled: dict[str, Any]) -> None:
    async with Shell(nexudus_settings(nexudus, nexudus_writes_per_day=1), as_user=MANAGER, workspace=slack) as shell:
        assert "marked “Welcome”" in text_of(await shell.command("complete onboarding ada@example.com welcome"))
        out = text_of(await shell.command('complete onboarding ada@example.com "house rules"'))
    assert "spent today's write budget for Nexudus" in out and "nothing was changed" in out
    assert len(completions(nexudus)) == 1


# ---- a course is made at most once, even when Nexudus ignores SystemId -------------------------

@asynccontextmanager
async def quick_bot(tenant: Tenant, slack: SlackWorkspace, *, settle: float = 0.2) -> AsyncIterator[Shell]:
    """The bot with a Nexudus client that gives up after 1 s and retries fast (the tests' timings)."""
    platform = NexudusPlatform(
        tenant.url, tenant.fake.username, tenant.fake.password,
        Budget(make_storage(REDIS_URL), "nexudus:writes", smooth_per_minute(600)),
        timeout=1.0, settle=settle, policy=RetryPolicy(attempts=2, base_delay=0.05, throttle_statuses=frozenset({409})),
    )
    async with Shell(nexudus_settings(tenant), as_user=MANAGER, workspace=slack, platform=platform) as shell:
        shell.channel = GENERAL
        yield shell


def course_posts(tenant: Tenant) -> int:
    return len([w for w in writes(tenant) if w[1] == "/api/content/courses"])


async def test_a_create_whose_answer_is_lost_is_found_by_title_and_time_and_not_sent_again(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    fake = nexudus.fake
    fake.ignore_system_id = True  # the bot must not need the mark
    fake.clock = lambda: datetime.now(UTC) - timedelta(hours=3)  # Nexudus's clock (and Date) 3 h behind ours
    older = fake.add_course("Night owls", business_id=1, host_id=1)  # the same title, there already
    async with quick_bot(nexudus, slack) as bot:
        form = await open_form(bot)
        # Nexudus makes the course, but answers only after the bot stopped waiting (a timeout).
        fake.apply_then_fail_next(1, method="POST", path_contains="/api/content/courses", delay=2.0)
        started = time.monotonic()
        answer = await submit(bot, form, form_values(nexudus, title="Night owls"))
        assert answer == {} and time.monotonic() - started < 3.0
        assert await submit(bot, form, form_values(nexudus, title="Night owls")) == {}  # and a repeat
    assert course_posts(nexudus) == 1
    [made] = [c for c in courses_titled(nexudus, "Night owls") if c["Id"] != older["Id"]]
    assert made["SystemId"] is None
    assert [m for m in bot.ws.ephemeral if f"(id {made['Id']})" in json.dumps(m["blocks"])]


async def test_an_answer_lost_after_an_error_with_nothing_made_is_sent_once_more(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    nexudus.fake.ignore_system_id = True
    async with quick_bot(nexudus, slack) as bot:
        form = await open_form(bot)
        nexudus.fake.fail_next(1, status=500, method="POST", path_contains="/api/content/courses")
        assert await submit(bot, form, form_values(nexudus, title="Second try")) == {}
    assert course_posts(nexudus) == 2  # Nexudus answered 500 and made nothing: one more POST
    assert len(courses_titled(nexudus, "Second try")) == 1


async def test_when_it_cannot_tell_it_says_so_and_sends_nothing_more(nexudus: Tenant, slack: SlackWorkspace) -> None:
    fake = nexudus.fake
    fake.ignore_system_id = True
    async with quick_bot(nexudus, slack) as bot:
        form = await open_form(bot)
        # A proxy sent the create on twice, then answered 500: two new courses with this title.
        fake.apply_then_fail_next(1, method="POST", path_contains="/api/content/courses", times=2)
        answer = await submit(bot, form, form_values(nexudus, title="Twins"))
        assert answer["response_action"] == "errors"
        said = answer["errors"][view.TITLE]
        assert "cannot tell whether “Twins” was created" in said and "2 courses titled like it" in said
        assert "`/course courses` before you try again" in said and "Nothing was created" not in said
        # Submitting the same form again looks again, and still sends nothing.
        again = await submit(bot, form, form_values(nexudus, title="Twins"))
        assert "cannot tell whether" in again["errors"][view.TITLE]
    assert course_posts(nexudus) == 1 and len(courses_titled(nexudus, "Twins")) == 2


async def test_when_it_cannot_tell_after_the_form_closed_the_manager_is_told_in_a_message(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    nexudus.fake.ignore_system_id = True
    async with quick_bot(nexudus, slack, settle=2.6) as bot:  # the look comes after the ack is due
        form = await open_form(bot)
        nexudus.fake.apply_then_fail_next(1, method="POST", path_contains="/api/content/courses", times=2)
        answer = await submit(bot, form, form_values(nexudus, title="Twins"))
        assert answer["response_action"] == "update", answer  # the form closed on "Creating…"
        [told] = [m for m in bot.ws.ephemeral if "Twins" in m["text"]]
    said = json.dumps(told["blocks"])
    assert "cannot tell whether" in said and "/course courses" in said and "was not created" not in said
    assert told["channel"] == GENERAL and told["user"] == MANAGER
    assert course_posts(nexudus) == 1


async def test_when_nexudus_keeps_failing_it_cannot_tell_and_sends_nothing_more(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    fake = nexudus.fake
    async with quick_bot(nexudus, slack) as bot:
        form = await open_form(bot)
        fake.fail_next(1, status=500, method="POST", path_contains="/api/content/courses")

        async def then_reads_fail_too() -> None:  # from the failed POST on, every look fails as well
            for _ in range(500):
                if course_posts(nexudus):
                    break
                await asyncio.sleep(0.01)
            fake.fail_next(10, status=503, method="GET", path_contains="/api/content/courses")

        storm = asyncio.create_task(then_reads_fail_too())
        answer = await submit(bot, form, form_values(nexudus, title="Stormy"))
        await storm
        said = answer["errors"][view.TITLE]
        assert "cannot tell whether “Stormy” was created" in said and "Nexudus is still failing" in said
    assert course_posts(nexudus) == 1 and courses_titled(nexudus, "Stormy") == []


async def test_a_timeout_with_nothing_there_yet_is_not_sent_again_and_a_later_submit_finds_the_course(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    fake = nexudus.fake
    fake.ignore_system_id = True
    async with quick_bot(nexudus, slack) as bot:
        form = await open_form(bot)
        # The request is lost on the way: no answer, and (for now) no course.
        fake.apply_then_fail_next(1, method="POST", path_contains="/api/content/courses", delay=2.0, times=0)
        answer = await submit(bot, form, form_values(nexudus, title="Late bloomer"))
        assert "did not answer in time, so the course may still appear" in answer["errors"][view.TITLE]
        assert course_posts(nexudus) == 1
        # It turns up later after all (Nexudus was slow, not dead): the same form, submitted again, finds it.
        late = fake.add_course("Late bloomer", business_id=1, host_id=1)
        assert await submit(bot, form, form_values(nexudus, title="Late bloomer")) == {}
        assert course_posts(nexudus) == 1
        assert [m for m in bot.ws.ephemeral if f"(id {late['Id']})" in json.dumps(m["blocks"])]

