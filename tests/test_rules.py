"""Approval rules end to end: per-course approvers, auto-approve by domain and by user group, quorum.

Managers set the rules with signed `/course` commands; the sync is the worker's own (a fresh
Runtime each time); clicks are signed block_actions; the platform is the local Nexudus, whose
PUTs are counted: the write counts below are the ones the README states.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from bot.approvals.decisions import Action, Change, Outcome, Via
from devtools import requests as slack_requests
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, MANAGER, OUTSIDER, Tenant, meltingspot_settings
from tests.test_approvals import (
    buttons,
    card_for,
    cards,
    click,
    click_body,
    open_home,
    pending,
    puts,
    record,
    submit_block,
    sync,
    text,
    texts,
)

HOST = "U0HOST"  # approver of Founders Circle
FAN = "U0FAN"  # in the Founders team user group
TEAM = "S0FOUNDERS"
STAFF = "S0STAFF"


def answer(slack: SlackWorkspace) -> str:
    """The last private reply, as Slack would render its mrkdwn (mentions still as <@U…>)."""
    response = slack.responses[-1]
    return "\n".join([str(response.get("text", "")), *texts(response.get("blocks") or [])])


async def audit_log(redis_client: aioredis.Redis) -> list[dict[str, Any]]:
    return [json.loads(e) for e in await redis_client.lrange("coursebot:audit", 0, 200)]


def people(slack: SlackWorkspace) -> None:
    slack.add_user(HOST, "hanna", "host@example.com", real_name="Hanna Host")
    slack.add_user(FAN, "fan", "fan@example.com", real_name="Fay Fan")
    slack.add_usergroup(TEAM, "founders-team", [FAN])


def platform_requests(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant.fake.lock:
        return [(m, p) for m, p, _ in tenant.fake.requests if p != "/api/token"]


# ---- approvers --------------------------------------------------------------------------------------

async def test_an_approver_of_one_course_decides_it_from_every_surface_and_nothing_else(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    people(slack)
    await bot.command(f"approvers founders <@{HOST}|hanna>")
    assert "Founders Circle" in answer(slack) and f"<@{HOST}> and the managers" in answer(slack)
    pending(nexudus, "figma", "ada")
    pending(nexudus, "founders", "joann")
    await sync(nexudus, slack)
    ann, ada = card_for(slack, "Ann Other"), card_for(slack, "Ada Lovelace")
    assert f"Decided by <@{HOST}> (or a manager)" in text(ann) and "Decided by" not in text(ada)

    # Another course: not from its card, not by command, not in the list, not on Home.
    await click(bot, ada, "approval_approve", user=HOST)
    assert "Only course managers and this course's approvers" in answer(slack)
    await click(bot, ada, "approval_block", user=HOST)
    assert "Only course managers and this course's approvers" in answer(slack) and slack.views == []
    bot.user = HOST
    await bot.command("approve advanced ada@example.com")
    assert "Only course managers and this course's approvers" in answer(slack)
    await bot.command("enrol onboarding grace@work.example")
    assert "Only course managers" in answer(slack)
    await bot.command("quorum founders 2")
    assert "Only course managers" in answer(slack)
    assert puts(nexudus) == [] and buttons(card_for(slack, "Ada Lovelace"))
    await bot.command("pending")
    listed = answer(slack)
    assert "Waiting for approval: 2" in listed and "Ann Other" in listed and "Jo Ann" in listed
    assert "Ada Lovelace" not in listed and "ada@example.com" not in listed
    await open_home(bot, HOST)
    home = "\n".join(texts(slack.home_views[HOST]["blocks"]))
    assert "Ann Other" in home and "Ada Lovelace" not in home and "Approval rules" not in home
    help_text = "\n".join(await bot.command("help"))
    assert "approve <course> <member>" in help_text and "quorum" not in help_text

    # Their course: from the card, by command, from the list.
    await click(bot, card_for(slack, "Ann Other"), "approval_approve", user=HOST)
    assert len(puts(nexudus)) == 1 and record(nexudus, "founders", "ann")["Approved"] is True
    assert f"by <@{HOST}>" in text(card_for(slack, "Ann Other")) and not buttons(card_for(slack, "Ann Other"))
    await bot.command("block founders ann@example.com")
    assert len(puts(nexudus)) == 2 and record(nexudus, "founders", "ann")["Blocked"] is True
    await bot.command("unblock founders ann@example.com")
    assert len(puts(nexudus)) == 3 and record(nexudus, "founders", "ann")["Blocked"] is False
    await bot.command("pending")
    listing = slack.responses[-1]
    row = next(b for b in listing["blocks"] if b.get("type") == "actions" and "approval-list" in b["block_id"])
    await click(bot, listing, "approval_approve", user=HOST, ephemeral=True,
                element={**row["elements"][0], "block_id": row["block_id"]})
    assert len(puts(nexudus)) == 4 and record(nexudus, "founders", "joann")["Approved"] is True
    assert record(nexudus, "figma", "ada")["Approved"] is False

    refused = [e for e in await audit_log(redis_client) if e["actor"] == HOST and e["outcome"] == "refused"]
    assert len(refused) >= 4


async def test_a_user_group_can_be_a_courses_approver(bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    people(slack)
    await bot.command(f"approvers founders <!subteam^{TEAM}|@founders-team>")
    assert f"<!subteam^{TEAM}|@founders-team> and the managers" in answer(slack)
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    assert f"Decided by <!subteam^{TEAM}>" in text(card)
    await click(bot, card, "approval_approve", user=OUTSIDER)
    assert "Only course managers" in answer(slack) and puts(nexudus) == []
    await open_home(bot, FAN)
    home = slack.home_views[FAN]
    row = next(b for b in home["blocks"] if b.get("type") == "actions")
    await click(bot, home, "approval_approve", user=FAN, view=home,
                element={**row["elements"][0], "block_id": row["block_id"]})
    assert len(puts(nexudus)) == 1 and f"by <@{FAN}>" in text(card_for(slack, "Ann Other"))

    # `none` clears them: the group's member is no longer let through.
    await bot.command("approvers founders none")
    assert "the managers only" in answer(slack) and f"before: <!subteam^{TEAM}|@founders-team>" in answer(slack)
    pending(nexudus, "founders", "joann")
    await sync(nexudus, slack)
    await click(bot, card_for(slack, "Jo Ann"), "approval_approve", user=FAN)
    assert "Only course managers" in answer(slack) and len(puts(nexudus)) == 1


# ---- auto-approve -----------------------------------------------------------------------------------

def domain_people(nexudus: Tenant) -> None:
    for key, name, email in (("tru", "Tru Sted", "tru@trusted.example"), ("caps", "Cap Sted", "Caps@Trusted.Example"),
                             ("evil", "Eve Iltrusted", "eve@eviltrusted.example"),
                             ("sub", "Sue Bdomain", "sue@trusted.example.evil.com")):
        nexudus.people[key] = nexudus.fake.add_coworker(name, email)
        pending(nexudus, "figma", key)


async def test_auto_approve_by_domain_is_an_exact_match_and_preview_changes_nothing(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    domain_people(nexudus)
    await sync(nexudus, slack)
    assert len(cards(slack)) == 5

    await bot.command("autoapprove advanced domain trusted.example --preview")
    preview = answer(slack)
    assert "Preview, nothing was changed" in preview and "matches 2 of the 4 waiting requests" in preview
    assert "Tru Sted" in preview and "Cap Sted" in preview and "Eve Iltrusted" not in preview
    assert await redis_client.hgetall("coursebot:rules") == {}
    assert not [e for e in await audit_log(redis_client) if e["action"].startswith("rules")]
    assert (await sync(nexudus, slack)).auto_approved == 0 and puts(nexudus) == []

    await bot.command("autoapprove advanced domain trusted.example")
    assert "2 waiting requests match now" in answer(slack)
    nexudus.fake.reset_counters(reset_limits=False)
    report = await sync(nexudus, slack)
    assert report.auto_approved == 2
    # One read and one write per approved request, nothing else written.
    writes = [r for r in platform_requests(nexudus) if r[0] != "GET" or r[1].startswith("/api/content/coursemembers/")]
    assert [m for m, _ in writes] == ["GET", "PUT", "GET", "PUT"]
    assert {p for m, p in writes if m == "GET"} == {f"/api/content/coursemembers/{record(nexudus, 'figma', k)['Id']}"
                                                    for k in ("tru", "caps")}
    for key in ("tru", "caps"):
        assert record(nexudus, "figma", key)["Approved"] is True
    for key in ("evil", "sub"):
        assert record(nexudus, "figma", key)["Approved"] is False
        assert buttons(card_for(slack, nexudus.people[key]["FullName"]))
    card = card_for(slack, "Tru Sted")
    assert "was approved for" in text(card) and "by the rule _domain trusted.example_" in text(card)
    assert not buttons(card) and card["metadata"]["event_payload"]["state"] == "approved"
    key = f"coursebot:decision-record:{record(nexudus, 'figma', 'tru')['Id']}"
    decision = json.loads(await redis_client.get(key))
    assert decision["actor"] == "rule:domain:trusted.example" and decision["via"] == "rule"
    assert (await sync(nexudus, slack)).auto_approved == 0 and len(puts(nexudus)) == 2

    await open_home(bot, MANAGER)
    home = "\n".join(texts(slack.home_views[MANAGER]["blocks"]))
    assert "by the rule _domain trusted.example_" in home and "Approval rules" in home
    digest = "\n".join(await bot.command("digest"))
    assert "Approved by the auto-approve rules: 2" in digest and "domain trusted.example" in digest


async def test_auto_approve_by_user_group_matches_by_email_and_off_stops_it(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    slack.add_user("U0TRUDY", "trudy", "trudy@partner.example", real_name="Trudy Partner")
    slack.add_usergroup(STAFF, "staff", ["U0TRUDY", "U0GRACE"])
    nexudus.people["trudy"] = nexudus.fake.add_coworker("Trudy Partner", "trudy@partner.example")
    pending(nexudus, "figma", "trudy")
    pending(nexudus, "figma", "ada")  # not in the group
    pending(nexudus, "figma", "grace")  # in the group, but her Slack email (grace@home.example) is not hers there
    await bot.command(f"autoapprove all group <!subteam^{STAFF}|@staff> --preview")
    assert "matches 0 of the 0 waiting requests" in answer(slack)  # no sync yet: nothing is known to wait
    await sync(nexudus, slack)
    await bot.command(f"autoapprove all group <!subteam^{STAFF}|@staff> --preview")
    assert "matches 1 of the 4 waiting requests" in answer(slack) and "Trudy Partner" in answer(slack)
    await bot.command(f"autoapprove all group <!subteam^{STAFF}|@staff>")
    assert "Auto-approve for *every course*: group @staff" in answer(slack)
    assert (await sync(nexudus, slack)).auto_approved == 1
    assert record(nexudus, "figma", "trudy")["Approved"] is True and len(puts(nexudus)) == 1
    assert "by the rule _group @staff_" in text(card_for(slack, "Trudy Partner"))
    [dm] = slack.messages("DU0TRUDY")
    assert "approved" in dm["text"]
    for name in ("Ada Lovelace", "Grace Hopper", "Ann Other"):
        assert buttons(card_for(slack, name))

    # A link record makes Grace the group's Slack user on the platform; `off` first: nothing happens.
    await bot.command("link <@U0GRACE|grace> grace@work.example")
    await bot.command("autoapprove all off")
    assert "Auto-approve for *every course*: none (before: group @staff)" in answer(slack)
    assert (await sync(nexudus, slack)).auto_approved == 0
    await bot.command(f"autoapprove all group <!subteam^{STAFF}|@staff>")
    assert (await sync(nexudus, slack)).auto_approved == 1 and record(nexudus, "figma", "grace")["Approved"] is True


async def test_a_rule_decides_only_from_the_sync_and_never_its_authors_own_enrolment(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    mia = nexudus.fake.add_coworker("Mia Manager", "manager@example.com")
    nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], mia["Id"], approved=False)
    domain_people(nexudus)
    await bot.command("autoapprove advanced domain example.com")  # the manager's own domain
    await sync(nexudus, slack)
    assert record(nexudus, "figma", "tru")["Approved"] is False
    request_id = buttons(card_for(slack, "Mia Manager"))["approval_approve"]["value"]
    rt = bot.runtime
    rule = "rule:domain:example.com"
    # Her own: the rule she set leaves it waiting for someone else.
    assert (await rt.decisions.decide(Change(rule, Action.APPROVE, Via.RULE, request_id=request_id))).outcome \
        is Outcome.OWN
    # Through any other way in, the rule's name is nobody's: a Slack user id that says "rule:" is refused.
    assert (await rt.decisions.decide(Change(rule, Action.APPROVE, Via.CARD, request_id=request_id))).outcome \
        is Outcome.NOT_ALLOWED
    await click(bot, card_for(slack, "Tru Sted"), "approval_approve", user="rule:domain:trusted.example")
    assert "Only course managers" in answer(slack)
    # A rule that is not (or no longer) in place decides nothing.
    tru = buttons(card_for(slack, "Tru Sted"))["approval_approve"]["value"]
    for actor in ("rule:domain:trusted.example", "rule:group:S0NOPE"):
        result = await rt.decisions.decide(Change(actor, Action.APPROVE, Via.RULE, request_id=tru))
        assert result.outcome is Outcome.NOT_ALLOWED
    assert (await rt.decisions.decide(Change(rule, Action.BLOCK, Via.RULE, request_id=tru))).outcome \
        is Outcome.NOT_ALLOWED
    assert puts(nexudus) == [] and buttons(card_for(slack, "Mia Manager"))


# ---- quorum ---------------------------------------------------------------------------------------

async def test_a_quorum_of_two_counts_each_person_once_and_writes_once(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    people(slack)
    await sync(nexudus, slack)  # the request exists before the rule: its card follows the change
    await bot.command(f"approvers founders <@{HOST}|hanna>")
    await bot.command("quorum founders 2")
    reply = answer(slack)
    assert "needs 2 approvals from different people (before: 1)" in reply and "1 waiting request" in reply
    card = card_for(slack, "Ann Other")
    assert "Needs 2 approvals from different people: 0 of 2 so far" in text(card)

    nexudus.fake.reset_counters(reset_limits=False)
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert platform_requests(nexudus) == [("GET", "/api/content/coursemembers/1")]  # a counted approval: one read
    for _ in range(2):  # the same person again
        await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert puts(nexudus) == [] and "Your approval is counted: 1 of 2" in answer(slack)
    assert f"1 of 2 so far: <@{MANAGER}>" in text(card_for(slack, "Ann Other"))
    bot.user = MANAGER
    await bot.command("approve founders ann@example.com")  # a command counts the same way
    assert "is counted: 1 of 2" in answer(slack) and puts(nexudus) == []

    nexudus.fake.reset_counters(reset_limits=False)
    await click(bot, card_for(slack, "Ann Other"), "approval_approve", user=HOST)
    assert platform_requests(nexudus) == [("GET", "/api/content/coursemembers/1"),
                                          ("PUT", "/api/content/coursemembers")]
    card = card_for(slack, "Ann Other")
    assert f"by <@{MANAGER}> and <@{HOST}>" in text(card) and not buttons(card)
    assert record(nexudus, "founders", "ann")["Approved"] is True


async def test_concurrent_clicks_by_two_people_write_the_platform_once(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    people(slack)
    await bot.command(f"approvers founders <@{HOST}|hanna>")
    await bot.command("quorum founders 2")
    await bot.command("approve founders ann@example.com")  # before the sync made its request: nowhere to count
    assert "needs 2 approvals" in answer(slack) and "Nothing was changed" in answer(slack) and puts(nexudus) == []
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    bodies = [click_body(slack, card, "approval_approve", user) for user in (MANAGER, HOST) * 4]
    answers = await asyncio.gather(*(bot.http.post("/slack/events", content=body,
                                                   headers=slack_requests.signed_headers(bot.secret, body))
                                     for body in bodies))
    await bot._settle()  # once all are in (a click that settled alone would wait for its siblings, 20 s)
    assert [a.status_code for a in answers] == [200] * len(bodies)
    if record(nexudus, "founders", "ann")["Approved"] is not True:  # everyone but one was told "busy": again
        for user in (MANAGER, HOST):
            await click(bot, card, "approval_approve", user)
    assert record(nexudus, "founders", "ann")["Approved"] is True
    assert len(puts(nexudus)) == 1
    for user in (MANAGER, HOST):  # late clicks change nothing
        await click(bot, card, "approval_approve", user)
    assert len(puts(nexudus)) == 1 and "Nothing to change" in answer(slack)


async def test_one_block_decides_at_once_under_a_quorum(bot: Shell, nexudus: Tenant, slack: SlackWorkspace) -> None:
    people(slack)
    await bot.command(f"approvers founders <@{HOST}|hanna>")
    await bot.command("quorum founders 3")
    await sync(nexudus, slack)
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    assert "1 of 3" in text(card_for(slack, "Ann Other")) and puts(nexudus) == []
    await click(bot, card_for(slack, "Ann Other"), "approval_block", user=HOST)
    await submit_block(bot, "not this cohort", user=HOST)
    assert len(puts(nexudus)) == 1 and record(nexudus, "founders", "ann")["Blocked"] is True
    card = card_for(slack, "Ann Other")
    assert "blocked from" in text(card) and f"by <@{HOST}>" in text(card) and not buttons(card)


# ---- the rule book: audit, listing, Home, bad input, Redis loss, MeltingSpot --------------------------------

async def test_every_rule_change_is_audited_with_before_and_after_and_listed(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    people(slack)
    slack.add_usergroup(STAFF, "staff", [])
    await bot.command(f"approvers founders <@{HOST}|hanna> <!subteam^{TEAM}|@founders-team>")
    await bot.command("quorum founders 2")
    await bot.command("autoapprove advanced domain trusted.example")
    await bot.command(f"autoapprove all group <!subteam^{STAFF}|@staff>")
    await bot.command("quorum founders 2")  # the same again: nothing to change, nothing audited
    assert "Nothing to change" in answer(slack)
    await bot.command("approvers founders none")
    entries = [e for e in await audit_log(redis_client) if e["action"].startswith("rules")]
    assert [(e["action"], e["target"]) for e in reversed(entries)] == [
        ("rules approvers", f"course {nexudus.courses['founders']['Id']}"),
        ("rules quorum", f"course {nexudus.courses['founders']['Id']}"),
        ("rules autoapprove", f"course {nexudus.courses['figma']['Id']}"),
        ("rules autoapprove", "every course"),
        ("rules approvers", f"course {nexudus.courses['founders']['Id']}"),
    ]
    assert all(e["actor"] == MANAGER for e in entries)
    quorum = entries[3]
    assert quorum["before"]["quorum"] == 1 and quorum["after"]["quorum"] == 2
    cleared = entries[0]
    assert cleared["before"]["approvers"] == [HOST, TEAM] and cleared["after"]["approvers"] == []

    await bot.command("rules")
    listing = answer(slack)
    assert "Approval rules" in listing
    assert "*Every course*: auto-approve group @staff" in listing
    assert "Founders Circle* (id 2): decided by the managers only · needs 2 approvals" in listing
    assert "Advanced Figma Workshop* (id 3): decided by the managers only · auto-approve domain trusted.example" \
        in listing
    # Each change left a copy of the whole book in the approvals channel.
    copies = [m for m in slack.messages(APPROVALS) if (m.get("metadata") or {}).get("event_type") == "coursebot_rules"]
    assert len(copies) == 5 and "changed the approvers of" in text(copies[-1])


async def test_bad_rule_commands_say_what_is_wrong_and_change_nothing(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    for command, said in (
        ("quorum founders 4", "A quorum is 1, 2 or 3"),
        ("approvers founders bob@example.com", "Approvers are @users and @user-groups"),
        ("approvers founders @hanna", "I can't tell who `@hanna` is"),
        ("approvers founders none <@U0ADA|ada>", "`none` clears the approvers and goes alone"),
        ("autoapprove advanced domain eviltrusted", "is not an email domain"),
        ("autoapprove advanced domain ada@example.com", "is not an email domain"),
        ("autoapprove advanced group @staff", "Give one @user-group picked from Slack's list"),
        ("autoapprove all off --preview", "`--preview` goes with `domain` or `group`"),
        ("autoapprove figma", "Usage"),
        ("approvers nosuchcourse <@U0ADA|ada>", "No course matches"),
        ("approvers founders <@U0GHOST|ghost>", "Slack does not know"),
        ("autoapprove all group <!subteam^S0NOPE|@nope>", "user group S0NOPE"),
    ):
        shown = "\n".join(await bot.command(command))  # a malformed command is answered in the ack itself
        assert said in shown, (command, shown)
    bot.user = OUTSIDER
    await bot.command("quorum founders 2")
    assert "Only course managers" in answer(slack)
    await bot.command("rules")
    assert "Only course managers" in answer(slack)
    assert await redis_client.hgetall("coursebot:rules") == {}
    assert not [e for e in await audit_log(redis_client) if e["outcome"] == "changed"]
    assert slack.call_count("chat.postMessage") == 0  # no copy of the rules either


async def test_rules_come_back_from_the_approvals_channel_after_redis_loses_its_data(
        bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis) -> None:
    people(slack)
    await bot.command(f"approvers founders <@{HOST}|hanna>")
    await bot.command("quorum founders 2")
    await bot.command("autoapprove all domain trusted.example")
    slack.add_message(APPROVALS, "chatter", MANAGER)  # the channel moves on
    await redis_client.flushdb()

    await sync(nexudus, slack)  # a worker after the flush: the rules first, then the requests
    assert await redis_client.hlen("coursebot:rules") == 2
    card = card_for(slack, "Ann Other")
    assert f"Decided by <@{HOST}>" in text(card) and "0 of 2 so far" in text(card)
    await bot.command("rules")
    assert "needs 2 approvals" in answer(slack) and "auto-approve domain trusted.example" in answer(slack)
    restored = [e for e in await audit_log(redis_client) if e["action"] == "rules restored"]
    assert len(restored) == 1


async def test_the_rule_commands_say_plainly_that_meltingspot_has_no_approval_step(
    meltingspot: Callable[..., tuple[MeltingSpotFake, str]], slack: SlackWorkspace
) -> None:
    fake, url = meltingspot(api_key="ms_secret")
    settings = meltingspot_settings(url)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        for command in ("approvers x <@U0ADA|ada>", "autoapprove all domain trusted.example --preview",
                        "autoapprove all off", "quorum x 2", "rules"):
            await shell.command(command)
            assert "MeltingSpot has no approval step" in answer(slack) and "Nothing was changed" in answer(slack)
        help_text = "\n".join(await shell.command("help"))
        assert "autoapprove" not in help_text and "quorum" not in help_text
        assert fake.requests == [] and slack.call_count("chat.postMessage") == 0


async def test_a_rules_listing_stays_within_slacks_limits(bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
                                                          redis_client: aioredis.Redis) -> None:
    book = {f"{1000 + n}": json.dumps({"course_id": f"{1000 + n}", "title": f"A long course title <&> number {n}",
                                       "approvers": [HOST, TEAM], "quorum": 2,
                                       "auto": [{"kind": "domain", "value": "partner.example"}]})
            for n in range(400)}
    await redis_client.hset("coursebot:rules", mapping=book)
    await bot.command("rules")
    response = slack.responses[-1]
    assert len(response["blocks"]) <= 50
    assert sum(len(t) for t in texts(response["blocks"])) < 12_000
    assert "more." in answer(slack) and "&lt;&amp;&gt;" in answer(slack)
