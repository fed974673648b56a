"""Slack listeners only: parse, check permission, ack, call a service, render.

`register(app, runtime)` wires every listener; each module below holds one Slack surface.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.runtime import Runtime
from handlers import approvals, bulk, commands, courses, digest, home


def register(app: AsyncApp, runtime: Runtime) -> None:
    commands.register(app, runtime)
    approvals.register(app, runtime)
    home.register(app, runtime)
    digest.register(app, runtime)
    bulk.register(app, runtime)
    courses.register(app, runtime)
