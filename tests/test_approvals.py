"""Approval cards end to end: the sync posts them, clicks decide them once, every surface follows.

Real Redis, the local Nexudus and the stand-in Slack; clicks are signed block_actions requests,
exactly as Slack sends them. The sync is the worker's own periodic task, run with a fresh
Runtime each time (what a restarted or second worker would be).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis

from bot.approvals import keys as approval_keys
from bot.approvals.service import SyncReport
from bot.approvals.tasks import approval_sync
from bot.runtime import Runtime
from devtools import requests as slack_requests
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, MANAGER, OUTSIDER, Tenant, meltingspot_settings, nexudus_settings

# ---- helpers ------------------------------------------------------------------------------


@asynccontextmanager
async def runtime(tenant: Tenant, slack: SlackWorkspace, **overrides: Any) -> AsyncIterator[Runtime]:
    rt = Runtime.create(nexudus_settings(tenant, slack_api_url=slack.base_url + "/api/", **overrides))
    try:
        yield rt
    finally:
        await rt.aclose()


async def sync(tenant: Tenant, slack: SlackWorkspace, **overrides: Any) -> SyncReport:
    """One poll by a freshly started worker."""
    async with runtime(tenant, slack, **overrides) as rt:
        return await rt.approvals.sync()


def cards(slack: SlackWorkspace) -> list[dict[str, Any]]:
    return [m for m in slack.messages(APPROVALS)
            if (m.get("metadata") or {}).get("event_type") == "coursebot_request" and not m.get("thread_ts")]


def card_for(slack: SlackWorkspace, name: str) -> dict[str, Any]:
    [card] = [c for c in cards(slack) if name in text(c)]
    return card


def texts(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        found = [obj["text"]] if isinstance(obj.get("text"), str) else []
        return found + [t for key, value in obj.items() if key != "text" or not isinstance(value, str)
                        for t in texts(value)]
    if isinstance(obj, list):
        return [t for item in obj for t in texts(item)]
    return []


def text(message: dict[str, Any]) -> str:
    return "\n".join(texts(message.get("blocks") or [])) or str(message.get("text", ""))


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: {**e, "block_id": b.get("block_id")}
            for b in message.get("blocks") or [] if b.get("type") == "actions" for e in b["elements"]}


def puts(tenant: Tenant) -> list[tuple[str, str, dict[str, str]]]:
    with tenant.fake.lock:
        return [r for r in tenant.fake.requests if r[0] == "PUT"]


def record(tenant: Tenant, course: str, person: str) -> dict[str, Any]:
    with tenant.fake.lock:
        [found] = [dict(r) for r in tenant.fake.coursemembers.values()
                   if r["CourseId"] == tenant.courses[course]["Id"] and r["CoworkerId"] == tenant.people[person]["Id"]]
    return found


def click_body(slack: SlackWorkspace, message: dict[str, Any], action_id: str, user: str = MANAGER, *,
               channel: str = APPROVALS, ephemeral: bool = False, view: dict[str, Any] | None = None,
               element: dict[str, Any] | None = None) -> str:
    element = element or buttons(message)[action_id]
    action = {"action_id": element["action_id"], "value": element["value"], "block_id": element["block_id"]}
    url = slack.new_response_url(channel=None if ephemeral or view else channel,
                                 message_ts=None if ephemeral or view else message.get("ts"), user=user)
    payload = slack_requests.block_action(
        user_id=user, action=action, channel_id=None if view else channel,
        message=None if ephemeral or view else message, response_url=url, trigger_id=slack.new_trigger_id(),
        is_ephemeral=ephemeral, view=view,
    )
    return slack_requests.interaction(payload)


async def click(bot: Shell, message: dict[str, Any], action_id: str, user: str = MANAGER, **kwargs: Any) -> str:
    body = click_body(bot.ws, message, action_id, user, **kwargs)
    await post(bot, body)
    return body


async def post(bot: Shell, body: str, content_type: str | None = None) -> httpx.Response:
    headers = slack_requests.signed_headers(bot.secret, body)
    if content_type:
        headers["content-type"] = content_type
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    await bot._settle()
    assert response.status_code == 200
    return response


async def submit_block(bot: Shell, reason: str, user: str = MANAGER) -> None:
    view = bot.ws.views[-1]["view"]
    values = {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
    await post(bot, slack_requests.interaction(slack_requests.view_submission(user_id=user, view=view,
                                                                              values=values)))


async def open_home(bot: Shell, user: str) -> None:
    body = json.dumps({
        "token": "unused", "team_id": "T0001", "api_app_id": "A0COURSEBOT", "type": "event_callback",
        "event_id": f"Ev{time.time_ns()}", "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
                  "event_ts": f"{time.time():.6f}"},
    })
    await post(bot, body, content_type="application/json")


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def pending(tenant: Tenant, course: str, person: str, *, days_ago: float = 0) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(days=days_ago) if days_ago else None
    return tenant.fake.add_enrolment(tenant.courses[course]["Id"], tenant.people[person]["Id"], approved=False,
                                     created_on=created)


def decide_in_admin_panel(tenant: Tenant, enrolment_id: int, **changes: Any) -> None:
    with tenant.fake.lock:
        stored = tenant.fake.coursemembers[enrolment_id]
        stored.update(changes)
        stored["UpdatedOn"] = tenant.fake._now()


# ---- the sync ------------------------------------------------------------------------------


async def test_the_sync_posts_one_card_per_waiting_enrolment_and_a_restarted_worker_posts_none(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada")
    nexudus.fake.add_enrolment(nexudus.courses["onboarding"]["Id"], nexudus.people["joann"]["Id"])  # approved
    first = await sync(nexudus, slack)
    assert first.new == 2
    posted = cards(slack)
    assert len(posted) == 2
    ann = card_for(slack, "Ann Other")
    shown = text(ann)
    assert "Founders Circle" in shown and "Private" in shown and "ann@example.com" in shown
    assert set(buttons(ann)) == {"approval_approve", "approval_block"}
    payload = ann["metadata"]["event_payload"]
    assert payload["state"] == "pending" and buttons(ann)["approval_approve"]["value"] == payload["request_id"]
    figma = card_for(slack, "Ada Lovelace")
    assert "Analytical Engines" in text(figma) and "Paid" in text(figma)

    async with runtime(nexudus, slack) as rt:  # a restarted worker: fresh process state, same Redis
        await approval_sync(rt)  # the worker's periodic task itself
    assert (await sync(nexudus, slack)).posted == 0
    assert len(cards(slack)) == 2 and slack.call_count("chat.postMessage") == 2


async def test_an_idle_poll_costs_one_platform_read(nexudus: Tenant, slack: SlackWorkspace) -> None:
    async with runtime(nexudus, slack) as rt:
        await rt.approvals.sync()
        await rt.approvals.sync()
        for _ in range(3):
            before = len(nexudus.fake.requests)
            report = await rt.approvals.sync()
            with nexudus.fake.lock:
                reads = [r for r in nexudus.fake.requests[before:] if r[1] != "/api/token"]
            assert not report.full and len(reads) == 1
            [(method, path, params)] = reads
            assert method == "GET" and path == "/api/content/coursemembers"
            assert "from_CourseMember_UpdatedOn" in params
        # A new request costs one more read: the coworker's email, in one batch.
        pending(nexudus, "figma", "ada")
        before = len(nexudus.fake.requests)
        assert (await rt.approvals.sync()).new == 1
        with nexudus.fake.lock:
            paths = [r[1] for r in nexudus.fake.requests[before:]]
        assert paths == ["/api/content/coursemembers", "/api/spaces/coworkers/"]  # courses come from the cache


async def test_two_workers_syncing_at_once_post_each_card_once(nexudus: Tenant, slack: SlackWorkspace) -> None:
    for person in ("ada", "joann", "grace"):
        pending(nexudus, "figma", person)
    reports = await asyncio.gather(*(sync(nexudus, slack) for _ in range(3)))
    assert sum(r.new for r in reports) == 4
    assert len(cards(slack)) == 4


async def test_after_redis_loses_everything_the_cards_are_found_again_not_posted_twice(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis
) -> None:
    pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    before = {c["ts"]: buttons(c)["approval_approve"]["value"] for c in cards(slack)}
    await redis_client.flushdb()

    report = await sync(nexudus, slack)
    assert report.adopted == 2 and report.new == 0 and report.posted == 0
    assert slack.call_count("chat.postMessage") == 2
    assert slack.calls_to("conversations.history")[0]["include_all_metadata"] in ("1", "true", True)
    for ts, request_id in before.items():  # the old buttons point at the rebuilt requests
        assert await redis_client.hget(approval_keys.REQUEST(request_id), "card_ts") == json.dumps(ts)
    assert (await sync(nexudus, slack)).posted == 0


async def test_a_click_after_a_flush_and_before_the_next_sync_still_decides_once(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis
) -> None:
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    await redis_client.flushdb()
    card.pop("metadata")  # as if Slack left it out of the click: the bot reads it back from the channel
    await click(bot, card, "approval_approve")
    assert len(puts(nexudus)) == 1 and record(nexudus, "founders", "ann")["Approved"] is True
    updated = card_for(slack, "Ann Other")
    assert "approved" in text(updated) and not buttons(updated)
    assert (await sync(nexudus, slack)).posted == 0 and len(cards(slack)) == 1


async def test_a_decision_in_the_admin_panel_updates_the_card(nexudus: Tenant, slack: SlackWorkspace) -> None:
    enrolment = pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    decide_in_admin_panel(nexudus, enrolment["Id"], Blocked=True)
    report = await sync(nexudus, slack)
    assert report.closed == 1
    card = card_for(slack, "Ada Lovelace")
    assert "blocked" in text(card) and "outside Slack" in text(card) and "Nexudus" in text(card)
    assert not buttons(card) and card["metadata"]["event_payload"]["state"] == "blocked"
    assert puts(nexudus) == []


async def test_course_approve_outside_the_card_is_shown_on_it_with_who_did_it(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    await sync(nexudus, slack)
    await bot.command("approve founders ann@example.com")
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    assert "approved" in text(card) and f"<@{MANAGER}>" in text(card) and not buttons(card)
    assert len(puts(nexudus)) == 1


async def test_a_request_waiting_too_long_gets_one_reminder_a_day_that_links_to_its_card(
    nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada", days_ago=2)
    await sync(nexudus, slack, coursebot_reminder_hours=24)
    card = card_for(slack, "Ada Lovelace")
    [reminder] = [m for m in slack.messages(APPROVALS)
                  if (m.get("metadata") or {}).get("event_type") == "coursebot_reminder"]
    assert "waiting 2 days" in text(reminder) and card["ts"].replace(".", "") in text(reminder)
    assert "Ann Other" not in text(reminder)  # Ann asked just now
    await sync(nexudus, slack, coursebot_reminder_hours=24)
    assert len([m for m in slack.messages(APPROVALS)
                if (m.get("metadata") or {}).get("event_type") == "coursebot_reminder"]) == 1


async def test_a_platform_without_an_approval_step_syncs_nothing_and_help_says_so(
    meltingspot: Callable[..., tuple[MeltingSpotFake, str]], slack: SlackWorkspace
) -> None:
    fake, url = meltingspot(api_key="ms_secret")
    settings = meltingspot_settings(url)
    async with Shell(settings, as_user=MANAGER, workspace=slack) as shell:
        report = await shell.runtime.approvals.sync()
        assert report.skipped == "MeltingSpot has no approval step"
        assert fake.requests == [] and slack.call_count("chat.postMessage") == 0
        assert "no approval step" in "\n".join(await shell.command("help"))
        assert "MeltingSpot has no API for" in "\n".join(await shell.command("pending"))
        await open_home(shell, MANAGER)
        home = json.dumps(slack.home_views[MANAGER])
        assert "MeltingSpot has no approval step" in home and "approval_approve" not in home
        assert fake.requests == []


# ---- clicks ----------------------------------------------------------------------------------


async def test_approve_writes_once_replaces_the_card_and_tells_the_member(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    before = record(nexudus, "figma", "ada")
    await click(bot, card_for(slack, "Ada Lovelace"), "approval_approve")
    assert len(puts(nexudus)) == 1
    after = record(nexudus, "figma", "ada")
    assert after["Approved"] is True and after["Blocked"] is False
    assert {k: after[k] for k in ("CourseId", "CoworkerId", "UniqueId", "CreatedOn")} == \
        {k: before[k] for k in ("CourseId", "CoworkerId", "UniqueId", "CreatedOn")}
    card = card_for(slack, "Ada Lovelace")
    assert "was approved for" in text(card) and f"<@{MANAGER}>" in text(card) and "<!date^" in text(card)
    assert not buttons(card) and card["metadata"]["event_payload"]["state"] == "approved"
    [dm] = slack.messages("DU0ADA")
    assert "approved" in dm["text"] and "Advanced Figma Workshop" in text(dm)


async def test_a_repeated_delivery_of_the_same_click_changes_nothing(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    await sync(nexudus, slack)
    body = await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    updates = slack.call_count("chat.update")
    await post(bot, body)
    await post(bot, body)
    assert len(puts(nexudus)) == 1 and slack.call_count("chat.update") == updates
    assert "Nothing to change" in slack.responses[-1]["text"] + json.dumps(slack.responses[-1].get("blocks"))


async def test_a_non_manager_click_changes_nothing_and_is_explained_privately(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    await sync(nexudus, slack)
    card = card_for(slack, "Ann Other")
    for action in ("approval_approve", "approval_block"):
        await click(bot, card, action, user=OUTSIDER)
        response = slack.responses[-1]
        assert "Only course managers" in json.dumps(response) and response["response_type"] == "ephemeral"
        assert response.get("replace_original") is False
    assert puts(nexudus) == [] and slack.views == [] and slack.call_count("chat.update") == 0
    assert buttons(card_for(slack, "Ann Other"))


async def test_a_platform_failure_leaves_a_retryable_card_and_retry_then_works(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis
) -> None:
    await sync(nexudus, slack)
    body = {"Message": "Course is archived", "Value": None, "WasSuccessful": False,
            "Errors": [{"AttemptedValue": None, "Message": "Course is archived", "PropertyName": None}]}
    nexudus.fake.fail_next(1, status=400, method="PUT", body=body)
    await click(bot, card_for(slack, "Ann Other"), "approval_approve")
    card = card_for(slack, "Ann Other")
    assert "Course is archived" in text(card) and "Nothing was changed" in text(card)
    assert set(buttons(card)) == {"approval_retry", "approval_block"}
    assert record(nexudus, "founders", "ann")["Approved"] is False
    request_id = buttons(card)["approval_retry"]["value"]
    assert request_id and await redis_client.keys("coursebot:claim:access:*") == []  # the claim was released

    await click(bot, card, "approval_retry")
    assert record(nexudus, "founders", "ann")["Approved"] is True
    card = card_for(slack, "Ann Other")
    assert "was approved for" in text(card) and not buttons(card)


async def test_a_click_on_a_stale_card_corrects_it_without_writing(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    enrolment = pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    decide_in_admin_panel(nexudus, enrolment["Id"], Approved=True)
    await click(bot, card_for(slack, "Ada Lovelace"), "approval_block")  # the dialog opens: the card looked open
    await submit_block(bot, "too late")
    assert puts(nexudus) == [] and record(nexudus, "figma", "ada")["Blocked"] is False
    card = card_for(slack, "Ada Lovelace")
    assert "was approved for" in text(card) and "outside Slack" in text(card) and not buttons(card)
    assert "too late" not in text(card)

    stale = card_for(slack, "Ann Other")
    await bot.command("approve founders ann@example.com")  # the command decides the waiting request itself
    card = card_for(slack, "Ann Other")
    assert "was approved for" in text(card) and f"<@{MANAGER}>" in text(card) and not buttons(card)
    await click(bot, stale, "approval_approve")  # a copy of the card shown before, clicked late
    assert len(puts(nexudus)) == 1  # the command's, not the click's
    assert "Nothing to change" in json.dumps(slack.responses[-1])


async def test_block_confirms_in_a_dialog_and_the_reason_reaches_card_and_member(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    await click(bot, card_for(slack, "Ada Lovelace"), "approval_block")
    [opened] = slack.views
    view = opened["view"]
    assert view["callback_id"] == "approval_block_reason" and view["submit"]["text"] == "Block"
    assert puts(nexudus) == []  # nothing happens until the dialog is confirmed
    await submit_block(bot, "Seats are for <members> & staff")
    assert len(puts(nexudus)) == 1 and record(nexudus, "figma", "ada")["Blocked"] is True
    card = card_for(slack, "Ada Lovelace")
    assert "blocked from" in text(card) and "Seats are for &lt;members&gt; &amp; staff" in text(card)
    [dm] = slack.messages("DU0ADA")
    assert "not accepted" in text(dm) and "Seats are for" in text(dm)


async def test_a_manager_cannot_approve_their_own_enrolment(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    manager = nexudus.fake.add_coworker("Mia Manager", "MANAGER@example.com")
    nexudus.fake.add_enrolment(nexudus.courses["figma"]["Id"], manager["Id"], approved=False)
    await sync(nexudus, slack)
    await click(bot, card_for(slack, "Mia Manager"), "approval_approve")
    assert puts(nexudus) == []
    assert "your own enrolment" in json.dumps(slack.responses[-1])
    assert buttons(card_for(slack, "Mia Manager"))


async def test_names_on_cards_are_escaped(nexudus: Tenant, slack: SlackWorkspace) -> None:
    pending(nexudus, "figma", "eve")
    await sync(nexudus, slack)
    raw = json.dumps([c["blocks"] for c in cards(slack)]) + json.dumps([c["text"] for c in cards(slack)])
    assert "<!channel>" not in raw and "<!here>" not in raw and "<https://evil" not in raw
    assert "&lt;!channel&gt;" in raw


# ---- /course pending, Approve all, App Home -------------------------------------------------------


async def test_course_pending_lists_the_waiting_oldest_first_with_buttons_and_a_confirmed_approve_all(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "joann", days_ago=1)
    pending(nexudus, "figma", "ada", days_ago=3)
    await sync(nexudus, slack)
    await bot.command("pending")
    listing = slack.responses[-1]
    out = text(listing)
    assert "Waiting for approval: 3" in out
    assert out.index("Ada Lovelace") < out.index("Jo Ann") < out.index("Ann Other")
    assert listing["response_type"] == "ephemeral"
    [approve_all] = [e for b in listing["blocks"] if b.get("block_id") == "approval-all" for e in b["elements"]]
    assert approve_all["text"]["text"] == "Approve all 3"
    assert approve_all["confirm"]["confirm"]["text"] == "Approve 3" and "3 waiting requests" in \
        approve_all["confirm"]["text"]["text"]

    await bot.command("pending advanced")
    out = text(slack.responses[-1])
    assert "Waiting for approval: 2" in out and "Ann Other" not in out

    # A click in the list decides through the same path and redraws the list (still filtered).
    listing = slack.responses[-1]
    first = next(b for b in listing["blocks"] if b.get("type") == "actions")
    await click(bot, listing, "approval_approve", ephemeral=True, element={**first["elements"][0],
                                                                           "block_id": first["block_id"]})
    assert len(puts(nexudus)) == 1 and record(nexudus, "figma", "ada")["Approved"] is True
    redrawn = slack.responses[-1]
    assert redrawn["replace_original"] is True
    assert "Waiting for approval: 1" in json.dumps(redrawn) and "Ann Other" not in json.dumps(redrawn)
    assert "was approved for" in text(card_for(slack, "Ada Lovelace"))


async def test_approve_all_goes_through_the_exactly_once_path_in_the_worker(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    from bot.worker import saq_worker

    for person in ("ada", "joann", "grace"):
        pending(nexudus, "figma", person)
    await sync(nexudus, slack)
    await bot.command("pending")
    listing = slack.responses[-1]
    [approve_all] = [e for b in listing["blocks"] if b.get("block_id") == "approval-all" for e in b["elements"]]
    assert approve_all["text"]["text"] == "Approve all 4"
    await click(bot, card_for(slack, "Jo Ann"), "approval_approve")  # decided meanwhile, from her card
    body = click_body(slack, listing, "approval_approve_all", ephemeral=True,
                      element={**approve_all, "block_id": "approval-all"})
    worker = saq_worker(bot.runtime)
    task = asyncio.create_task(worker.start())
    try:
        for _ in range(2):  # the second delivery finds the batch already taken
            await bot.http.post("/slack/events", content=body,
                                headers=slack_requests.signed_headers(bot.secret, body))
        await wait_until(lambda: any("Approved 3" in json.dumps(r) for r in slack.responses))
    finally:
        await worker.stop()
        task.cancel()
    assert all(record(nexudus, "figma", p)["Approved"] for p in ("ada", "joann", "grace"))
    assert record(nexudus, "founders", "ann")["Approved"] is True
    assert len(puts(nexudus)) == 4  # one per request, Jo Ann's included (from her card)
    assert all("approved" in text(c) and not buttons(c) for c in cards(slack))
    report = next(r for r in slack.responses if "Approved 3" in json.dumps(r))
    assert "1 had already been decided" in json.dumps(report)
    assert any("already used" in json.dumps(r) for r in slack.responses)


async def test_app_home_shows_a_manager_the_waiting_requests_and_follows_decisions(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace
) -> None:
    pending(nexudus, "figma", "ada")
    await sync(nexudus, slack)
    await open_home(bot, MANAGER)
    home = slack.home_views[MANAGER]
    shown = "\n".join(texts(home["blocks"]))
    assert "Advanced Figma Workshop*: 1 waiting" in shown and "Founders Circle*: 1 waiting" in shown
    home_buttons = [e for b in home["blocks"] if b.get("type") == "actions" for e in b["elements"]]
    assert len([e for e in home_buttons if e["action_id"] == "approval_approve"]) == 2

    ada_request = buttons(card_for(slack, "Ada Lovelace"))["approval_approve"]["value"]
    ada = next(b for b in home["blocks"] if b.get("type") == "actions" and b["block_id"].endswith(ada_request))
    await click(bot, home, "approval_approve", view=home,
                element={**ada["elements"][0], "block_id": ada["block_id"]})
    assert record(nexudus, "figma", "ada")["Approved"] is True
    home = slack.home_views[MANAGER]
    shown = "\n".join(texts(home["blocks"]))
    assert "Latest decisions" in shown and "Ada Lovelace* was approved" in shown
    assert "Advanced Figma Workshop*: 1 waiting" not in shown

    # The sync republishes it when something changes elsewhere.
    pending(nexudus, "figma", "joann")
    await sync(nexudus, slack)
    assert "Jo Ann" in "\n".join(texts(slack.home_views[MANAGER]["blocks"]))

    await open_home(bot, OUTSIDER)
    outsider = slack.home_views[OUTSIDER]
    assert not [b for b in outsider["blocks"] if b.get("type") == "actions"]
    assert "Course managers see" in json.dumps(outsider)
