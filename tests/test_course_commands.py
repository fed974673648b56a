"""`/course` end to end: signed requests in, what the manager sees out, what Nexudus holds after."""

from __future__ import annotations

import json
import time

import pytest

from devtools.shell import Shell
from tests.conftest import OUTSIDER, Tenant


def text_of(lines: list[str]) -> str:
    return "\n".join(lines)


def enrolments(tenant: Tenant, course: str, person: str) -> list[dict]:
    course_id, person_id = tenant.courses[course]["Id"], tenant.people[person]["Id"]
    return [r for r in tenant.fake.coursemembers.values()
            if r["CourseId"] == course_id and r["CoworkerId"] == person_id]


def writes(tenant: Tenant) -> list[tuple[str, str, dict]]:
    return [r for r in tenant.fake.requests if r[0] in ("POST", "PUT", "DELETE") and r[1] != "/api/token"]


async def test_help_shows_a_manager_everything_and_others_only_what_they_may_run(bot: Shell) -> None:
    manager_help = text_of(await bot.command("help"))
    for word in ("courses", "status", "enrol", "approve", "block", "unblock", "link"):
        assert f"/course {word}" in manager_help
    bot.user = OUTSIDER
    outsider_help = text_of(await bot.command(""))
    assert "/course status" in outsider_help and "/course courses" in outsider_help
    assert "/course enrol" not in outsider_help and "/course block" not in outsider_help


async def test_courses_lists_every_course_with_visibility_and_counts(bot: Shell) -> None:
    out = text_of(await bot.command("courses"))
    assert "Community Onboarding" in out and "Public" in out
    assert "Founders Circle" in out and "Private" in out
    assert "Advanced Figma Workshop" in out and "Paid" in out
    assert "1 member (0 approved, 1 waiting)" in out


async def test_enrol_by_email_creates_one_approved_enrolment_and_a_repeat_changes_nothing(
    bot: Shell, nexudus: Tenant
) -> None:
    out = text_of(await bot.command('enrol "Community Onboarding" ada@example.com'))
    assert "Ada Lovelace" in out and "enrolled" in out
    [record] = enrolments(nexudus, "onboarding", "ada")
    assert record["Approved"] is True and record["Blocked"] is False

    again = text_of(await bot.command("enrol onboarding ADA@example.com"))
    assert "Nothing to change" in again and "already enrolled and approved" in again
    assert len(enrolments(nexudus, "onboarding", "ada")) == 1


async def test_enrol_pending_leaves_the_enrolment_waiting(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("enrol founders ada@example.com --pending"))
    assert "waiting for approval" in out
    [record] = enrolments(nexudus, "founders", "ada")
    assert record["Approved"] is False


async def test_a_mention_is_resolved_through_the_slack_profile_email(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("enrol founders <@U0ADA|ada>"))
    assert "Ada Lovelace" in out
    assert len(enrolments(nexudus, "founders", "ada")) == 1


async def test_email_matching_is_exact_although_the_platform_filter_is_partial(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("enrol onboarding ann@example.com")
    assert len(enrolments(nexudus, "onboarding", "ann")) == 1
    assert enrolments(nexudus, "onboarding", "joann") == []


async def test_approve_puts_the_whole_record_back(bot: Shell, nexudus: Tenant) -> None:
    [before] = enrolments(nexudus, "founders", "ann")
    out = text_of(await bot.command("approve founders ann@example.com"))
    assert "approved" in out
    [after] = enrolments(nexudus, "founders", "ann")
    assert after["Approved"] is True
    # The full-object PUT kept every other field (the fake clears what a PUT omits).
    for field in ("CourseId", "CoworkerId", "Blocked", "UniqueId", "CreatedOn"):
        assert after[field] == before[field]
    [put] = [w for w in writes(nexudus) if w[0] == "PUT"]
    assert put[1] == "/api/content/coursemembers"


async def test_block_and_unblock_change_access_once_each(bot: Shell, nexudus: Tenant) -> None:
    assert "blocked" in text_of(await bot.command("block founders ann@example.com"))
    assert enrolments(nexudus, "founders", "ann")[0]["Blocked"] is True
    assert "already blocked" in text_of(await bot.command("block founders ann@example.com"))
    assert "unblocked" in text_of(await bot.command("unblock founders ann@example.com"))
    record = enrolments(nexudus, "founders", "ann")[0]
    assert record["Blocked"] is False and record["Approved"] is False
    assert "is not blocked in" in text_of(await bot.command("unblock founders ann@example.com"))
    assert len([w for w in writes(nexudus) if w[0] == "PUT"]) == 2


async def test_approving_someone_not_enrolled_says_so_and_changes_nothing(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("approve founders ada@example.com"))
    assert "not enrolled" in out and "/course enrol" in out
    assert writes(nexudus) == []


async def test_status_of_a_course_and_of_a_member(bot: Shell, nexudus: Tenant) -> None:
    course = text_of(await bot.command('status "Founders Circle"'))
    assert "Waiting for approval: 1" in course and "Members: 1" in course
    fake = nexudus.fake
    enrolment = fake.add_enrolment(nexudus.courses["onboarding"]["Id"], nexudus.people["ada"]["Id"])
    first_lesson = min((le for le in fake.courselessons.values()), key=lambda le: le["Id"])
    fake.add_completed_lesson(enrolment["Id"], first_lesson["Id"])
    member = text_of(await bot.command("status onboarding ada@example.com"))
    assert "Ada Lovelace" in member and "1 of 3 lessons" in member and "approved" in member


async def test_an_ambiguous_course_lists_the_candidates_and_changes_nothing(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("enrol figma ada@example.com"))
    assert "matches 2 courses" in out
    assert "Advanced Figma Workshop" in out and "Figma Basics" in out
    assert writes(nexudus) == []


async def test_an_unknown_course_suggests_close_titles(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command('enrol "Founder Circle" ada@example.com'))
    assert "No course matches" in out and "Founders Circle" in out and "/course courses" in out
    assert writes(nexudus) == []


async def test_a_member_whose_emails_differ_is_told_how_to_link_and_then_works(
    bot: Shell, nexudus: Tenant
) -> None:
    out = text_of(await bot.command("enrol founders <@U0GRACE|grace>"))
    assert "grace@home.example" in out and "/course link" in out
    assert writes(nexudus) == []
    linked = text_of(await bot.command("link <@U0GRACE|grace> grace@work.example"))
    assert "linked to Grace Hopper" in linked
    await bot.command("enrol founders <@U0GRACE|grace>")
    assert len(enrolments(nexudus, "founders", "grace")) == 1


async def test_a_non_manager_changes_nothing_and_is_told_privately(bot: Shell, nexudus: Tenant, redis_client) -> None:
    bot.user = OUTSIDER
    for command in ("enrol founders ada@example.com", "approve founders ann@example.com",
                    "block founders ann@example.com", "link <@U0GRACE|g> grace@work.example"):
        out = await bot.command(command)
        assert "Only course managers" in text_of(out)
        [(kind, payload)] = bot.last_events
        assert kind == "response" and payload.get("response_type") == "ephemeral"
    assert writes(nexudus) == []
    audit = [json.loads(e) for e in await redis_client.lrange("coursebot:audit", 0, -1)]
    assert [e["outcome"] for e in audit] == ["refused"] * 4
    assert all(e["actor"] == OUTSIDER for e in audit)


async def test_names_from_the_platform_are_escaped(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("enrol onboarding eve@example.com")
    [(_kind, payload)] = bot.last_events
    raw = json.dumps(payload["blocks"])
    assert "<!channel>" not in raw and "<!here>" not in raw and "<https://evil" not in raw
    assert "&lt;!channel&gt;" in raw


async def test_a_malformed_command_is_answered_in_the_ack(bot: Shell) -> None:
    out = text_of(await bot.command('enrol "Founders Circle ada@example.com'))
    assert "quote is not closed" in out
    assert bot.last_response is not None and bot.last_response.status_code == 200
    assert bot.last_events == []  # nothing came later: the ack said it all
    assert "don't know" in text_of(await bot.command("enrole founders ada@example.com"))


async def test_throttling_409_is_waited_out_and_the_enrolment_made_once(bot: Shell, nexudus: Tenant) -> None:
    nexudus.fake.throttle_next(2, retry_after=1)
    started = time.monotonic()
    out = text_of(await bot.command("enrol founders ada@example.com"))
    assert "enrolled" in out
    assert time.monotonic() - started >= 1.0
    assert len(enrolments(nexudus, "founders", "ada")) == 1


async def test_an_expired_token_is_renewed_without_the_user_noticing(bot: Shell, nexudus: Tenant) -> None:
    await bot.command("courses")
    nexudus.fake.expire_tokens()
    out = text_of(await bot.command("courses"))
    assert "Founders Circle" in out
    assert nexudus.fake.token_requests == 2


@pytest.mark.parametrize("status", [200, 400])
async def test_platform_validation_errors_become_a_sentence(bot: Shell, nexudus: Tenant, status: int) -> None:
    body = {"Message": "CoworkerId: is not active", "Value": None, "WasSuccessful": False,
            "Errors": [{"AttemptedValue": None, "Message": "is not active", "PropertyName": "CoworkerId"}]}
    nexudus.fake.fail_next(1, status=status, method="POST", body=body)
    out = text_of(await bot.command("enrol founders ada@example.com"))
    assert "Nexudus refused it: CoworkerId is not active." in out
    assert enrolments(nexudus, "founders", "ada") == []
