"""`/course invite` end to end on the local Nexudus: who is invited, confirmation, progress, cancel, report.

Jobs run the way they do in production: queued in SAQ on the real Redis and taken by a worker
(`ThreadWorker`: `bot.worker.saq_worker` on its own event loop and its own runtime, as a
`coursebot worker` would). tests/test_bulk_worker.py kills real worker processes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.bulk.service import JobRecord, load_record
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.config import Settings
from bot.core.pacing import Budget, BudgetExceeded, make_storage, smooth_per_minute
from bot.runtime import Runtime
from bot.worker import saq_worker
from devtools import requests as slack_requests
from devtools.clock import FastClock
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import GENERAL, MANAGER, REDIS_URL, Tenant, nexudus_settings

DM = f"D{MANAGER}"


# ---- helpers shared by the bulk tests --------------------------------------------------------

class ThreadWorker:
    """An SAQ worker with its own runtime on its own event loop, like a `coursebot worker` process.

    `clock` paces its schedulers (e.g. a `FastClock`: progress updates and cancel checks come sooner).
    """

    def __init__(self, settings: Settings, *, concurrency: int = 4, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        rt = Runtime.create(self.settings, clock=self.clock)
        worker = saq_worker(rt, concurrency=self.concurrency)
        task = asyncio.create_task(worker.start())
        await asyncio.to_thread(self._stop.wait)
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)
        await rt.aclose()

    def __enter__(self) -> ThreadWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        # A worker left running would take the next test's jobs from the same queue.
        assert not self._thread.is_alive(), "the worker did not stop within 15 s"


def text_of(lines: list[str]) -> str:
    return "\n".join(lines)


def job_ids(text: str) -> list[str]:
    return re.findall(r"job ([0-9a-f]{12})", text)


async def wait_job(redis: aioredis.Redis, job_id: str, *, within: float = 60.0,
                   until: Any = None) -> JobRecord:
    """Wait until the job is finished and its report delivered (or `until(record)` holds)."""
    deadline = time.monotonic() + within
    while True:
        record = await load_record(redis, job_id)
        if record is not None and (until(record) if until else (record.status.finished and record.reported)):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not get there in {within} s: {record}")
        await asyncio.sleep(0.1)


async def eventually(predicate: Any, within: float = 20.0) -> None:
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("it did not happen in time")


def find_button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return {"action_id": action_id, "value": element.get("value"), "block_id": block.get("block_id")}
    raise AssertionError(f"no {action_id} button in {json.dumps(message)[:500]}")


async def click(shell: Shell, message: dict[str, Any], action_id: str, *, channel: str,
                user: str = MANAGER, ephemeral: bool = False) -> httpx.Response:
    """Press a button of a message the way Slack does (signed block_actions request)."""
    url = shell.ws.new_response_url(channel=channel, message_ts=message.get("ts"), user=user)
    payload = slack_requests.block_action(user_id=user, action=find_button(message, action_id), channel_id=channel,
                                          message=message, response_url=url, is_ephemeral=ephemeral,
                                          trigger_id=shell.ws.new_trigger_id())
    body = slack_requests.interaction(payload)
    response = await shell.http.post("/slack/events", content=body,
                                     headers=slack_requests.signed_headers(shell.secret, body))
    await shell._settle()  # the work after the ack
    return response


def last_response(ws: SlackWorkspace) -> dict[str, Any]:
    return ws.responses[-1]


def seed_people(tenant: Tenant, ws: SlackWorkspace, count: int, *, channel: str = "C0COHORT",
                prefix: str = "p") -> list[dict[str, Any]]:
    """`count` coworkers on Nexudus, each with a Slack user (same email), all in one channel."""
    people = []
    for n in range(count):
        email = f"{prefix}{n:04d}@cohort.example"
        people.append(tenant.fake.add_coworker(f"Person {prefix}{n:04d}", email))
        ws.add_user(f"U{prefix.upper()}{n:05d}", f"{prefix}{n}", email, real_name=f"Person {prefix}{n:04d}")
    ws.add_channel(channel, "cohort", [MANAGER, *(f"U{prefix.upper()}{n:05d}" for n in range(count))])
    return people


def enrolled(tenant: Tenant, course: str) -> list[int]:
    course_id = tenant.courses[course]["Id"]
    with tenant.fake.lock:
        return [r["CoworkerId"] for r in tenant.fake.coursemembers.values() if r["CourseId"] == course_id]


@pytest.fixture
def worker(bot: Shell) -> Iterator[ThreadWorker]:
    with ThreadWorker(bot.runtime.settings) as running:
        yield running


async def make_shell(tenant: Tenant, slack: SlackWorkspace, **overrides: Any) -> Shell:
    shell = Shell(nexudus_settings(tenant, **overrides), as_user=MANAGER, workspace=slack)
    await shell.__aenter__()
    shell.channel = GENERAL
    return shell


SPEEDUP = 3  # a slow worker's clock runs this many times faster than real time


@pytest.fixture
async def slow_bot(nexudus: Tenant, slack: SlackWorkspace) -> AsyncIterator[Shell]:
    """A bot whose jobs take a while: run by `slow_worker`, they go at 2 members a second of the
    worker's clock (a Nexudus budget of 120 writes a minute of that clock: 120 * SPEEDUP of real time)."""
    shell = await make_shell(nexudus, slack, nexudus_writes_per_minute=120 * SPEEDUP)
    yield shell
    await shell.__aexit__(None, None, None)


def slow_worker(shell: Shell, clock: FastClock | None = None) -> ThreadWorker:
    """The slow bot's worker: its progress updates, cancel checks and budget waits run on a clock
    SPEEDUP times faster, so its 3 s between progress updates pass in 1 s."""
    return ThreadWorker(shell.runtime.settings, clock=clock or FastClock(SPEEDUP))


# ---- who is invited --------------------------------------------------------------------------

async def test_everyone_named_is_resolved_invited_once_and_the_unresolvable_are_reported(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    fake = nexudus.fake
    slack.add_user("U0BOTTY", "botty", "", is_bot=True)
    slack.add_user("U0GONE", "gone", "gone@example.com", deleted=True)
    slack.add_user("U0NOMAIL", "nomail", "", real_name="Nomail Person")
    slack.add_user("U0JOANN", "joann", "JoAnn@Example.com", real_name="Jo Ann")
    slack.add_channel("C0NEW", "new-members", ["U0ADA", "U0GRACE", "U0NOBODY", "U0BOTTY", "U0GONE", "U0NOMAIL",
                                               MANAGER])
    slack.add_usergroup("S0DESIGN", "designers", ["U0JOANN", "U0ADA"])
    fake.add_coworker("Mia Manager", "manager@example.com")
    founders = nexudus.courses["founders"]["Id"]

    out = text_of(await bot.command(
        'invite "Founders Circle" <#C0NEW|new-members> <!subteam^S0DESIGN|@designers> ann@example.com '
        'eve@example.com, stranger@nowhere.example <@U0GHOST|ghost> ada@example.com'))

    # Seven found: Ada (once, though named three times), Jo Ann (by a differently-cased email), the
    # manager, Ann (already enrolled, waiting), Eve; Grace's Slack email is not hers on Nexudus.
    assert "found on Nexudus: 4 to do, 1 already enrolled" in out
    assert "bots or deactivated accounts skipped" in out
    for who in ("U0GHOST", "U0NOMAIL", "U0NOBODY", "U0GRACE", "stranger@nowhere.example"):
        assert who in json.dumps(bot.last_events)
    [job_id] = set(job_ids(out)) or set(job_ids(json.dumps(slack.messages(DM))))
    record = await wait_job(redis_client, job_id)
    assert record.status.value == "done"

    people = nexudus.people
    for name in ("ada", "joann", "eve"):
        assert enrolled(nexudus, "founders").count(people[name]["Id"]) == 1
    assert enrolled(nexudus, "founders").count(people["ann"]["Id"]) == 1  # not enrolled twice
    assert people["grace"]["Id"] not in enrolled(nexudus, "founders")
    posts = [w for w in fake.requests if w[0] == "POST" and w[1] == "/api/content/coursemembers"]
    assert len(posts) == 4 and founders

    report = slack.messages(DM)[-1]
    text = json.dumps(report["blocks"])
    assert "Done" in text and "Invited*\\n4" in text and "Already enrolled*\\n1" in text
    assert "Not found in Slack*\\n2" in text and "Not found on Nexudus*\\n3" in text
    assert "<@U0GHOST>" in text and "Slack does not know this user" in text
    assert "<@U0GRACE>" in text and "/course link" in text
    assert "stranger@nowhere.example" in text
    assert slack.files == []  # 12 rows: no CSV


async def test_a_linked_user_is_invited_as_the_member_they_are_linked_to(
    bot: Shell, nexudus: Tenant, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    await bot.command("link <@U0GRACE|grace> grace@work.example")
    out = text_of(await bot.command("invite onboarding <@U0GRACE|grace>"))
    [job_id] = set(job_ids(out) or job_ids(json.dumps(bot.ws.messages(DM))))
    await wait_job(redis_client, job_id)
    assert enrolled(nexudus, "onboarding") == [nexudus.people["grace"]["Id"]]


async def test_a_channel_the_bot_cannot_see_stops_everything_with_a_hint(bot: Shell, slack: SlackWorkspace,
                                                                         nexudus: Tenant) -> None:
    out = text_of(await bot.command("invite onboarding <#C0SECRET|secret> ada@example.com"))
    assert "invite me to it first" in out and "Nothing was started" in out
    assert enrolled(nexudus, "onboarding") == []
    assert slack.messages(DM) == []


async def test_when_everyone_is_already_enrolled_no_job_is_started(bot: Shell, nexudus: Tenant) -> None:
    out = text_of(await bot.command("invite founders ann@example.com"))
    assert "Nothing to do" in out and "already enrolled" in out
    assert bot.ws.messages(DM) == []


async def test_a_non_manager_cannot_invite(bot: Shell, nexudus: Tenant) -> None:
    bot.user = "U0OUTSIDER"
    out = text_of(await bot.command("invite onboarding ada@example.com"))
    assert "Only course managers" in out
    assert enrolled(nexudus, "onboarding") == []


# ---- confirmation, progress, report ----------------------------------------------------------

async def test_above_50_people_the_bot_asks_first_then_runs_and_attaches_a_csv(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    seed_people(nexudus, slack, 60)
    nexudus.fake.add_enrolment(nexudus.courses["onboarding"]["Id"], nexudus.fake.coworkers[max(
        nexudus.fake.coworkers)]["Id"])
    out = text_of(await bot.command("invite onboarding <#C0COHORT|cohort>"))
    assert "Invite 60 people to Community Onboarding?" in out
    assert "59 to do, 1 already enrolled" in out
    assert "About 6 s at the current budget of 10.0 writes a second" in out
    assert "more than 50 people" in out
    assert len(enrolled(nexudus, "onboarding")) == 1  # nothing yet

    confirmation = last_response(slack)
    await click(bot, confirmation, "bulk_start", channel=GENERAL, ephemeral=True)
    replaced = last_response(slack)
    assert replaced.get("replace_original") is True and "started it" in json.dumps(replaced["blocks"])
    [job_id] = set(job_ids(json.dumps(replaced)))
    record = await wait_job(redis_client, job_id)
    assert record.status.value == "done" and record.confirmed_by == MANAGER
    assert len(enrolled(nexudus, "onboarding")) == 60
    assert len(set(enrolled(nexudus, "onboarding"))) == 60

    # A second click on Start changes nothing.
    await click(bot, confirmation, "bulk_start", channel=GENERAL, ephemeral=True)
    assert "already" in json.dumps(last_response(slack))
    assert len(enrolled(nexudus, "onboarding")) == 60

    progress_updates = [c for c in slack.calls_to("chat.update") if c.get("channel") == DM]
    assert progress_updates  # the progress message was updated in place…
    report = slack.messages(DM)[-1]
    assert "Invited*\\n59" in json.dumps(report["blocks"]) and "CSV" in json.dumps(report["blocks"])
    [file] = slack.files
    assert file["thread_ts"] == report["ts"] and file["channel"] == DM
    rows = list(csv.DictReader(io.StringIO(file["bytes"].decode())))
    assert len(rows) == 61  # the manager is in the channel too, and not on Nexudus
    assert sum(r["outcome"] == "Invited" for r in rows) == 59
    assert [r["email"] for r in rows if r["outcome"] == "Not found on Nexudus"] == ["manager@example.com"]
    assert sum(r["outcome"] == "Already enrolled" for r in rows) == 1


async def test_progress_is_updated_in_place_at_most_every_few_seconds(
    slow_bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    seed_people(nexudus, slack, 20)
    clock = FastClock(SPEEDUP)  # the worker's: updates are timed on it
    seen: list[tuple[float, dict[str, Any]]] = []
    slack.subscribe(lambda kind, payload: seen.append((clock.monotonic(), payload)) if kind == "update" else None)
    with slow_worker(slow_bot, clock):
        out = text_of(await slow_bot.command("invite onboarding <#C0COHORT|cohort>"))
        [job_id] = set(job_ids(out) or job_ids(json.dumps(slack.messages(DM))))
        await wait_job(redis_client, job_id, within=40)
    [message] = slack.messages(DM)  # one message, updated in place
    updates = [(at, p) for at, p in seen if p.get("ts") == message["ts"]]
    progress = [(at, p) for at, p in updates if "of 20" in json.dumps(p["blocks"])]
    assert len(progress) >= 2  # 20 members at 2 a second: about 10 s (of the worker's clock)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(progress)]
    # never more often than every 3 s; seen at Slack, so less the jitter of delivery (0.15 s real)
    assert min(gaps) >= 3.0 - 0.15 * SPEEDUP
    texts = [json.dumps(p["blocks"], ensure_ascii=False) for _, p in progress]
    assert any("a second" in t and "left" in t for t in texts)  # rate and time left
    assert any("`████" in t and "░" in t for t in texts)  # a bar, part-filled
    assert "Cancel" in texts[-1]
    assert "Done" in json.dumps(updates[-1][1]["blocks"])  # then the report replaces it
    assert len(enrolled(nexudus, "onboarding")) == 20


async def test_cancel_before_start_changes_nothing(bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
                                                   worker: ThreadWorker) -> None:
    seed_people(nexudus, slack, 55)
    await bot.command("invite onboarding <#C0COHORT|cohort>")
    confirmation = last_response(slack)
    await click(bot, confirmation, "bulk_discard", channel=GENERAL, ephemeral=True)
    assert "Not started" in json.dumps(last_response(slack))
    await click(bot, confirmation, "bulk_start", channel=GENERAL, ephemeral=True)
    assert "cancelled" in json.dumps(last_response(slack))
    await asyncio.sleep(1)
    assert enrolled(nexudus, "onboarding") == []


async def test_a_running_job_can_be_cancelled_from_its_progress_message(
    slow_bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    seed_people(nexudus, slack, 30)
    with slow_worker(slow_bot):
        out = text_of(await slow_bot.command("invite onboarding <#C0COHORT|cohort>"))
        [job_id] = set(job_ids(out) or job_ids(json.dumps(slack.messages(DM))))
        await wait_job(redis_client, job_id, until=lambda r: r.status.value == "running")
        await eventually(lambda: len(enrolled(nexudus, "onboarding")) >= 3)
        [progress] = slack.messages(DM)
        slow_bot.user = "U0OUTSIDER"
        await click(slow_bot, progress, "bulk_cancel", channel=DM, user="U0OUTSIDER")
        assert "Only course managers" in json.dumps(last_response(slack))
        await click(slow_bot, progress, "bulk_cancel", channel=DM)
        assert "Cancelling" in json.dumps(last_response(slack))
        record = await wait_job(redis_client, job_id, within=20)
    assert record.status.value == "cancelled" and record.cancelled_by == MANAGER
    done = len(enrolled(nexudus, "onboarding"))
    assert 3 <= done < 30
    await asyncio.sleep(1.5 / SPEEDUP)  # 3 more members' time at the job's pace
    assert len(enrolled(nexudus, "onboarding")) == done  # nothing after the cancel
    report = json.dumps(slack.messages(DM)[-1]["blocks"])
    assert "Cancelled by <@U0MANAGER>" in report
    assert f"Invited*\\n{done}" in report and f"Not done*\\n{30 - done}" in report
    [file] = slack.files  # 30 rows
    rows = list(csv.DictReader(io.StringIO(file["bytes"].decode())))
    assert sum(r["outcome"] == "Not done" for r in rows) == 30 - done


async def test_a_job_over_the_daily_budget_says_so_up_front_and_pauses_until_it_frees_up(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    shell = await make_shell(nexudus, slack, nexudus_writes_per_day=5)
    try:
        seed_people(nexudus, slack, 8)
        out = text_of(await shell.command("invite onboarding <#C0COHORT|cohort>"))
        assert "Only 5 writes are left in today's Nexudus budget" in out and "NEXUDUS_WRITES_PER_DAY" in out
        with ThreadWorker(shell.runtime.settings, clock=FastClock(SPEEDUP)):
            await click(shell, last_response(slack), "bulk_start", channel=GENERAL, ephemeral=True)
            [job_id] = set(job_ids(json.dumps(last_response(slack))))
            record = await wait_job(redis_client, job_id, until=lambda r: r.status.value == "paused")
            assert record.resume_at and record.resume_at > time.time() + 3600
            await asyncio.sleep(3.5 / SPEEDUP)  # 3.5 s of the worker's clock: a progress update is due
            assert len(enrolled(nexudus, "onboarding")) == 5
            assert "Paused" in json.dumps(slack.messages(DM)[-1]["blocks"])
            assert "carries on by itself" in json.dumps(slack.messages(DM)[-1]["blocks"])
            await click(shell, slack.messages(DM)[-1], "bulk_cancel", channel=DM)
            record = await wait_job(redis_client, job_id, within=10)
        assert record.status.value == "cancelled"
        assert len(enrolled(nexudus, "onboarding")) == 5
    finally:
        await shell.__aexit__(None, None, None)


async def test_failures_carry_the_platform_reason_into_the_report(
    bot: Shell, nexudus: Tenant, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    body = {"Message": "CoworkerId: is not active", "Value": None, "WasSuccessful": False,
            "Errors": [{"AttemptedValue": None, "Message": "is not active", "PropertyName": "CoworkerId"}]}
    nexudus.fake.fail_next(1, status=400, method="POST", body=body)
    out = text_of(await bot.command("invite onboarding ada@example.com"))
    [job_id] = set(job_ids(out) or job_ids(json.dumps(bot.ws.messages(DM))))
    await wait_job(redis_client, job_id)
    report = json.dumps(bot.ws.messages(DM)[-1]["blocks"])
    assert "Failed*\\n1" in report and "Nexudus refused it: CoworkerId is not active." in report


# ---- the form --------------------------------------------------------------------------------

async def test_without_people_the_command_opens_a_form_that_starts_the_same_job(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, worker: ThreadWorker, redis_client: aioredis.Redis,
) -> None:
    await bot.command('invite "Founders Circle"')
    opened, updated = slack.views[-2:]
    assert opened["method"] == "views.open" and updated["method"] == "views.update"
    view = updated["view"]
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["course"]["element"]["type"] == "static_select"
    assert blocks["course"]["element"]["initial_option"]["value"] == str(nexudus.courses["founders"]["Id"])
    assert {o["text"]["text"] for o in blocks["course"]["element"]["options"]} >= {"Founders Circle",
                                                                                  "Figma Basics"}
    assert blocks["people"]["element"]["type"] == "multi_users_select"
    assert blocks["channels"]["element"]["type"] == "multi_conversations_select"
    assert blocks["emails"]["element"]["type"] == "plain_text_input"
    assert "email" not in blocks  # Nexudus sends no invitation email: nothing to tick

    async def submit(values: dict[str, Any]) -> httpx.Response:
        payload = slack_requests.view_submission(user_id=MANAGER, view=view, values=values)
        body = slack_requests.interaction(payload)
        response = await bot.http.post("/slack/events", content=body,
                                       headers=slack_requests.signed_headers(bot.secret, body))
        await bot._settle()
        return response

    course = {"course": {"selected_option": {"value": str(nexudus.courses["founders"]["Id"])}}}
    bad = await submit({"course": course, "emails": {"emails": {"value": "ada@example.com not-an-email"}}})
    assert bad.json()["response_action"] == "errors" and "not-an-email" in bad.json()["errors"]["emails"]
    empty = await submit({"course": course})
    assert empty.json()["response_action"] == "errors" and "people" in empty.json()["errors"]

    ok = await submit({"course": course, "people": {"people": {"selected_users": ["U0ADA"]}},
                       "channels": {"channels": {"selected_conversations": [GENERAL]}},
                       "emails": {"emails": {"value": "joann@example.com,\neve@example.com"}}})
    assert ok.status_code == 200 and not ok.content
    for _ in range(50):
        ids = job_ids(json.dumps(slack.messages(DM)))
        if ids:
            break
        await asyncio.sleep(0.1)
    await wait_job(redis_client, ids[0])
    found = set(enrolled(nexudus, "founders"))
    assert {nexudus.people[n]["Id"] for n in ("ada", "joann", "eve")} <= found
    assert nexudus.people["grace"]["Id"] not in found  # in #general, but her Slack email is another


# ---- pacing ----------------------------------------------------------------------------------

async def test_writes_racing_for_the_days_last_units_never_overspend_it() -> None:
    budget = Budget(make_storage(REDIS_URL), "nexudus:writes", smooth_per_minute(6000), daily=5)

    async def one() -> bool:
        try:
            await budget.acquire()
        except BudgetExceeded:
            return False
        return True

    granted = await asyncio.gather(*(one() for _ in range(20)))  # like the members a runner has in flight
    assert sum(granted) == 5 and await budget.remaining_today() == 0


async def test_writes_never_outrun_the_budget_even_over_windows_shorter_than_a_minute(
    nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    """1200 writes a minute configured; the fake allows 105 per 5 s (its clock runs 12 times faster).

    The 5 are the arrival jitter of a loaded machine: writes are paced when sent, counted when they
    arrive. A runner that spent its minute's budget in a burst would send 130 at once."""
    started = time.monotonic()
    nexudus.fake.monotonic = lambda: started + (time.monotonic() - started) * 12
    nexudus.fake.writes_per_minute = 105
    seed_people(nexudus, slack, 130)
    shell = await make_shell(nexudus, slack, nexudus_writes_per_minute=1200)
    try:
        with ThreadWorker(shell.runtime.settings):
            await shell.command("invite onboarding <#C0COHORT|cohort>")
            await click(shell, last_response(slack), "bulk_start", channel=GENERAL, ephemeral=True)
            [job_id] = set(job_ids(json.dumps(last_response(slack))))
            record = await wait_job(redis_client, job_id, within=60)
    finally:
        await shell.__aexit__(None, None, None)
    assert record.status.value == "done"
    assert len(enrolled(nexudus, "onboarding")) == 130
    assert nexudus.fake.throttled == 0
    assert record.finished_at and record.started_at
    # ~(130 - 20) / 20 per second; not much slower either (at half the budget it would take 11 s)
    assert 4.8 <= record.finished_at - record.started_at <= 9.5


async def test_no_email_on_nexudus_is_refused_plainly_and_starts_nothing(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    out = text_of(await bot.command("invite founders ada@example.com --no-email"))
    assert "Nexudus sends no invitation email through its API" in out and "Nothing was started" in out
    assert job_ids(out) == [] and slack.messages(DM) == []
    assert await redis_client.keys("coursebot:job:*") == []

