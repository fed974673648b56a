"""Escaping by construction, end to end: names and titles that try to ping, link, forge or reorder.

Through the HTTP route, the local Nexudus and the Slack stand-in: commands, cards, clicks, the
Block dialog, the member's DM, the pending list, App Home, the digest (preview and posted),
a bulk invite with its report and CSV, a parse error's ack. Then every string the bot sent is
checked (tests/slack_checks.py): no `<…>` it did not build itself, no bidi control. And the
code is checked: no template of `md()` is built at run time, no `Mrkdwn` is made outside the renderer.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.digest.sender import send_digest
from bot.render import Message, Mrkdwn, code, csv_cell, file_title, md, mention, name, plain, section, when
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace
from tests.conftest import APPROVALS, MANAGER, Tenant
from tests.slack_checks import problems
from tests.test_approvals import buttons, cards, click
from tests.test_bulk import DM, ThreadWorker, job_ids, wait_job

EVIL_COURSE = "Tips & <Tricks> <!everyone> *bold ~strike `code"
FORGER = "Mallory\n:white_check_mark: *Approved* by <@U0MANAGER>\u202e lamroN\u2066"
FORMULA = '=HYPERLINK("https://evil.example","click")'
ROOT = Path(__file__).resolve().parent.parent


def seed(tenant: Tenant, slack: SlackWorkspace) -> dict[str, Any]:
    fake = tenant.fake
    evil = fake.add_course(EVIL_COURSE, visibility=3, business_id=tenant.courses["onboarding"]["BusinessId"])
    mallory = fake.add_coworker(FORGER, "mallory@example.com", company_name="Acme\u2028Corp *Ltd*",
                                team_names="<!subteam^S0ALL>")
    formula = fake.add_coworker(FORMULA, "formula@example.com")
    fake.add_enrolment(evil["Id"], mallory["Id"], approved=False)
    fake.add_enrolment(evil["Id"], tenant.people["eve"]["Id"], approved=False)
    slack.add_user("U0EVE", "eve", "eve@example.com", real_name="Eve")
    slack.add_user("U0MALLORY", "mallory", "mallory@example.com", real_name="Mallory")
    slack.add_usergroup("S0STAFF", "staff", ["U0ADA"])
    for n in range(22):  # a report of more than 20 rows comes with a CSV
        fake.add_coworker(f"-Person {n} <https://evil.example|x>", f"p{n}@crowd.example")
    return {"evil": evil, "mallory": mallory, "formula": formula}


async def test_nothing_the_bot_sends_carries_a_control_sequence_it_did_not_build(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace, redis_client: aioredis.Redis,
) -> None:
    seeded = seed(nexudus, slack)
    acks: list[Any] = []

    async def command(text: str) -> str:
        out = "\n".join(await bot.command(text))
        if bot.last_response is not None and bot.last_response.content:
            acks.append(bot.last_response.json())
        return out

    await command("help")
    assert "Tips" in await command("courses")
    await command(f"status {seeded['evil']['Id']}")
    await command(f"status {seeded['evil']['Id']} eve@example.com")
    await command(f"status {seeded['evil']['Id']} mallory@example.com")
    await command("enrol onboarding eve@example.com")
    await command("block onboarding eve@example.com")
    await command("unblock onboarding eve@example.com")
    await command(f"approvers {seeded['evil']['Id']} <@U0ADA|ada> <!subteam^S0STAFF|staff>")
    await command(f"quorum {seeded['evil']['Id']} 2")
    await command(f"autoapprove {seeded['evil']['Id']} domain crowd.example --preview")
    await command("rules")
    await command('enrol "<!channel>')  # a parse error, answered in the ack
    await command("status <!channel> <https://evil.example|x>")

    # cards, a click, the Block dialog and the member's DM
    await bot.runtime.approvals.sync()
    posted = cards(slack)
    assert len(posted) == 3  # Ann's (seeded by conftest), Mallory's, Eve's
    eve_card = next(c for c in posted if "Eve" in c["text"])
    await click(bot, eve_card, "approval_approve")
    mallory_card = next(c for c in posted if "Mallory" in c["text"])
    await click(bot, mallory_card, "approval_block")
    [dialog] = [v for v in slack.views if v.get("callback_id") == "approval_block_reason"] or [slack.views[-1]]
    assert "Mallory" in json.dumps(dialog)

    # the pending list, App Home, the digest (preview and posted)
    await command("pending")
    await bot.runtime.approvals.opened_home(MANAGER)
    await command("digest")
    assert (await send_digest(bot.runtime)).status == "sent"

    # a bulk invite into the course with the hostile title: report, CSV and its title
    people = " ".join(["eve@example.com", "mallory@example.com", "formula@example.com",
                       *(f"p{n}@crowd.example" for n in range(22)), "nobody@nowhere.example"])
    with ThreadWorker(bot.runtime.settings):
        out = await command(f"invite {seeded['evil']['Id']} {people}")
        started = [m for m in slack.messages(DM)]
        [job_id] = set(job_ids(out) or job_ids(json.dumps(started)))
        await wait_job(redis_client, job_id)
    [report_file] = [f for f in slack.files if f["filename"].endswith(".csv")]
    assert "<" not in report_file["title"] and "Tips &" in report_file["title"]

    links = (nexudus.url,)  # the "Open in the admin panel" links point there
    found = problems(slack, links=links, extra=acks)
    assert found == [], "\n".join(found[:20])

    # the CSV: no formula runs, no `<…>`, one row per person
    rows = list(csv.DictReader(io.StringIO(report_file["bytes"].decode())))
    assert len(rows) == 26
    by_email = {r["email"]: r for r in rows}
    assert by_email["formula@example.com"]["name"].startswith("'=HYPERLINK")
    assert by_email["p0@crowd.example"]["name"].startswith("'-Person 0 ‹https://evil.example|x›")
    assert "\n" not in by_email["mallory@example.com"]["name"]
    assert not any(cell[:1] and cell[0] in "=+-@" for row in rows for cell in row.values())


async def test_a_name_with_a_line_break_and_a_bidi_override_stays_on_one_line_of_its_card(
    bot: Shell, nexudus: Tenant, slack: SlackWorkspace,
) -> None:
    seed(nexudus, slack)
    await bot.runtime.approvals.sync()
    [card] = [c for c in cards(slack) if "Mallory" in c["text"]]
    first = card["blocks"][0]["text"]["text"]
    raw = json.dumps(card, ensure_ascii=False)
    assert "\n" not in first and "\u202e" not in raw and "\u2066" not in raw
    # The would-be second line is on the first, inert: no mention, no bold, before "asks to join".
    assert first.startswith(":inbox_tray: *Mallory :white_check_mark: ∗Approved∗ by &lt;@U0MANAGER&gt; lamroN* asks")
    assert "<@U0MANAGER>" not in json.dumps(card)
    assert "\n" not in card["text"]
    seen = "\n".join(bot.view.event("message", card))
    assert sum("Approved" in line for line in seen.splitlines()) == 1
    # Decided: the outcome line names the real decider, on its own line.
    await click(bot, card, "approval_approve")
    decided = next(m for m in slack.messages(APPROVALS) if m["ts"] == card["ts"])
    outcome = decided["blocks"][0]["text"]["text"]
    assert outcome.count("\n") == 0 and outcome.endswith(outcome.split(" · ")[-1])
    assert f"by <@{MANAGER}>" in outcome and "approved for" in outcome
    assert buttons(decided) == {}
    # The company with a line separator and stars, on the card's details: one line, no bold.
    details = json.dumps(card["blocks"][1], ensure_ascii=False)
    assert "Acme Corp ∗Ltd∗" in details and "\u2028" not in details


# ---- the renderer itself ------------------------------------------------------------------------

def test_md_escapes_the_values_and_keeps_the_template() -> None:
    text = md("*{}* by {} · {}", "Eve <!channel> & *co*\n_x_", mention("U0MANAGER"), 3)
    assert text == "*Eve &lt;!channel&gt; &amp; ∗co∗ ˍxˍ* by <@U0MANAGER> · 3"
    assert md("`/course status <course>`") == "`/course status &lt;course&gt;`"
    assert name("x" * 200, 10) == "xxxxxxxxx…"
    assert md("{}", "a\u202eb\u200bc\td\x00e\u0085f") == "abc d e f"
    assert code("a`b<c>") == "`aˋb&lt;c&gt;`"
    assert md("{}", "snake_case_name") == "snake_case_name"
    assert plain("Tips <Tricks>\n") == "Tips ‹Tricks›"
    assert file_title("Eve <!channel>\nreport") == "Eve ‹!channel› report"
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell(" +1") == "'+1"
    assert when(None) == "unknown"


def test_a_raw_string_cannot_be_made_into_a_message() -> None:
    with pytest.raises(TypeError):
        Message(text="raw")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        section("raw")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Message(text=md("ok"), blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "<!channel>"}}])
    with pytest.raises(TypeError):
        Message(text=md("ok"), blocks=[{"type": "header", "text": {"type": "plain_text", "text": "raw"}}])
    with pytest.raises(TypeError):
        Mrkdwn("<!channel>")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        md("{}", object())


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in names:
                found.append(node)
    return found


def _literal(node: ast.expr) -> bool:
    """A template the code wrote: a string literal (or a choice between literals, or literals added)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.IfExp):
        return _literal(node.body) and _literal(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left) and _literal(node.right)
    return False


def test_every_template_is_written_in_the_code_and_mrkdwn_is_made_only_by_the_renderer() -> None:
    offenders = []
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for call in _calls(tree, {"md"}):
            template = call.args[0] if call.args else None
            # a template is a literal, or a name for one (a parameter, a table of literals: STATE_TEXT[...])
            named = isinstance(template, ast.Subscript | ast.Name | ast.Attribute)
            if template is None or not (_literal(template) or named):
                offenders.append(f"{where}:{call.lineno}: md() template is built at run time")
            if isinstance(template, ast.JoinedStr):
                offenders.append(f"{where}:{call.lineno}: md() with an f-string")
        if "bot/render/mrkdwn.py" not in str(path):
            for call in _calls(tree, {"Mrkdwn", "Plain", "_trusted"}):
                offenders.append(f"{where}:{call.lineno}: Mrkdwn made outside bot/render/mrkdwn.py")
        for call in _calls(tree, {"Message"}):
            for keyword in call.keywords:
                if keyword.arg == "text" and isinstance(keyword.value, ast.JoinedStr | ast.Constant):
                    offenders.append(f"{where}:{call.lineno}: Message(text=) with a raw string")
    assert offenders == [], "\n".join(offenders)
