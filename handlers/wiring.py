"""Every way into the bot, connected in one place: each id (bot.render.ids) to its listener.

Read top to bottom, this is the whole Slack surface: the `/course` subcommands and their
runners, then every button, form, menu and event, with who may use it.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.approvals.decisions import Action
from bot.render.ids import ActionId, CommandId, OptionsId, ViewId
from bot.runtime import Runtime
from handlers import approvals, bulk, courses, digest, enrolment, rules
from handlers.commands import CourseCommand, Runner
from handlers.middleware import Edge, Gate


def register(app: AsyncApp, rt: Runtime) -> None:
    edge = Edge(app, rt)

    # /course <subcommand>: who may run each is declared in the grammar (bot.core.grammar): managers, or
    # managers and course approvers for approve|block|unblock|pending (the decision path checks the course).
    runners: dict[str, Runner] = {
        "courses": enrolment.courses,
        "status": enrolment.status,
        "enrol": enrolment.change_runner(Action.ENROL),
        "approve": enrolment.change_runner(Action.APPROVE),
        "block": enrolment.change_runner(Action.BLOCK),
        "unblock": enrolment.change_runner(Action.UNBLOCK),
        "link": enrolment.link,
        "pending": approvals.pending,
        "invite": bulk.invite,
        "digest": digest.preview,
        "new": courses.new,
        "lessons": courses.lessons,
        "complete": courses.complete,
        "uncomplete": courses.uncomplete,
        "approvers": rules.approvers,
        "autoapprove": rules.autoapprove,
        "quorum": rules.quorum,
        "rules": rules.rules,
    }
    runners["help"] = enrolment.help_runner([*runners, "help"])
    course = CourseCommand(rt, edge, runners)
    edge.command(CommandId.COURSE, course)

    # Approval requests: cards, /course pending, App Home. The decision path checks the course.
    decide = approvals.ApprovalListeners(rt)
    edge.action(ActionId.APPROVE, decide.approve, gate=Gate.DECIDERS)
    edge.action(ActionId.BLOCK, decide.block, gate=Gate.DECIDERS)
    edge.action(ActionId.RETRY, decide.retry, gate=Gate.DECIDERS)
    edge.view(ViewId.BLOCK_REASON, decide.block_confirmed, gate=Gate.DECIDERS)
    edge.action(ActionId.APPROVE_ALL, decide.approve_all, gate=Gate.DECIDERS)
    edge.home_opened(decide.home_opened)

    # The daily digest's buttons: the same decision path.
    daily = digest.DigestListeners(rt)
    edge.action(ActionId.DIGEST_APPROVE, daily.click, gate=Gate.DECIDERS)
    edge.action(ActionId.DIGEST_BLOCK, daily.click, gate=Gate.DECIDERS)

    # Bulk jobs: the invite form, Start / Cancel before a job runs, Cancel while it runs.
    jobs = bulk.BulkListeners(rt, course)
    edge.view(ViewId.BULK_INVITE, jobs.form_submitted, gate=Gate.MANAGERS)
    edge.action(ActionId.BULK_START, jobs.start, gate=Gate.MANAGERS)
    edge.action(ActionId.BULK_DISCARD, jobs.discard, gate=Gate.MANAGERS)
    edge.action(ActionId.BULK_CANCEL, jobs.cancel, gate=Gate.MANAGERS)

    # Courses: the /course new form and its type-ahead menus, and the offers after /course complete.
    admin = courses.CourseListeners(rt)
    edge.view(ViewId.COURSE_NEW, admin.form_submitted, gate=Gate.MANAGERS)
    edge.options(OptionsId.HOST, admin.suggest("host"), gate=Gate.MANAGERS)
    edge.options(OptionsId.LOCATION, admin.suggest("location"), gate=Gate.MANAGERS)
    edge.options(OptionsId.PLAN, admin.suggest("plan"), gate=Gate.MANAGERS)
    edge.action(ActionId.ENROL_OFFER, admin.enrol_offer, gate=Gate.MANAGERS)
    edge.action(ActionId.COMPLETE_OFFER, admin.complete_offer, gate=Gate.MANAGERS)
