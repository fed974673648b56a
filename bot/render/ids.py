"""Every id Slack sends back to the bot: slash commands, buttons, forms, menus, events.

The renderers draw elements with these ids and `handlers/wiring.py` connects each to its
listener, so one look here lists every way in.
"""

from __future__ import annotations

from enum import StrEnum


class CommandId(StrEnum):
    COURSE = "/course"


class ActionId(StrEnum):
    """Buttons (block_actions)."""

    APPROVE = "approval_approve"  # a request's Approve: card, /course pending, App Home
    BLOCK = "approval_block"  # a request's Block…: opens the Block dialog
    RETRY = "approval_retry"  # after the platform failed a decision
    APPROVE_ALL = "approval_approve_all"  # /course pending's "Approve all N"
    DIGEST_APPROVE = "digest_approve"
    DIGEST_BLOCK = "digest_block"
    BULK_START = "bulk_start"  # a bulk job's confirmation
    BULK_DISCARD = "bulk_discard"
    BULK_CANCEL = "bulk_cancel"  # a running bulk job's progress message
    ENROL_OFFER = "course_enrol_offer"  # "Enrol them" after /course complete on someone not enrolled
    COMPLETE_OFFER = "course_complete_offer"  # "Mark … complete" after enrolling them


class ViewId(StrEnum):
    """Forms (view_submission callback ids)."""

    BLOCK_REASON = "approval_block_reason"
    BULK_INVITE = "bulk_invite"
    COURSE_NEW = "course_new"


class OptionsId(StrEnum):
    """Type-ahead menus of the /course new form (block_suggestion action ids)."""

    HOST = "course_new:host"
    LOCATION = "course_new:location"
    PLAN = "course_new:plan"


class EventId(StrEnum):
    APP_HOME_OPENED = "app_home_opened"
