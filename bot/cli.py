"""`coursebot` command line: serve, worker, shell, digest (click)."""

from __future__ import annotations

import gc
import logging
import os
import sys

import click

from bot.core import logs
from bot.core.config import ConfigError, Settings, exit_on_config_error, load_settings

log = logging.getLogger("coursebot")


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
        settings.require_platform()
    except ConfigError as exc:
        exit_on_config_error(exc)
        raise  # unreachable: exit_on_config_error exits
    secrets = [s.get_secret_value() for s in (settings.slack_bot_token, settings.slack_signing_secret,
                                              settings.slack_app_token, settings.nexudus_password,
                                              settings.meltingspot_api_key) if s]
    logs.setup(os.environ.get("LOG_LEVEL", "INFO"), secrets)
    return settings


@click.group()
def main() -> None:
    """coursebot: run course enrolment on Nexudus or MeltingSpot from Slack."""


@main.command()
@click.option("--port", type=int, default=None, help="Port to listen on (default: $PORT, else 3000).")
def serve(port: int | None) -> None:
    """Serve Slack's requests: over Socket Mode when SLACK_APP_TOKEN is set, else POST /slack/events; GET /healthz."""
    import uvicorn

    from bot.app import build_bolt, build_web
    from bot.runtime import Runtime

    settings = _settings()
    try:
        settings.require("slack_bot_token", *(() if settings.socket_mode else ("slack_signing_secret",)))
    except ConfigError as exc:
        exit_on_config_error(exc)
    if settings.embedded_store:
        log.warning("REDIS_URL is not set: using the embedded in-process store. State is neither shared with "
                    "other processes nor kept across restarts; run a single process, or set REDIS_URL.")
    runtime = Runtime.create(settings)
    bolt = build_bolt(runtime)
    web = build_web(runtime, bolt, slack_events=not settings.socket_mode)
    # Keep collector pauses out of the 3-second ack path: what was loaded at start is never
    # garbage, and a busy process allocates many short-lived objects per request.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    port = port or settings.port
    if settings.socket_mode:
        from bot import socket_mode

        log.info("coursebot serving %s over Socket Mode (no public URL needed; POST /slack/events is off); "
                 "/healthz on port %s", settings.course_platform.value, port)
        socket_mode.run(web, bolt, settings, port=port)
        return
    log.info("coursebot serving %s over HTTP: POST /slack/events and /healthz on port %s",
             settings.course_platform.value, port)
    uvicorn.run(web, host="0.0.0.0", port=port, log_level="warning", access_log=False, backlog=2048)


@main.command()
@click.option("--concurrency", type=int, default=10, show_default=True, help="Jobs run at once by this worker.")
def worker(concurrency: int) -> None:
    """Run queued jobs (bulk invites) and periodic tasks (approval sync, daily digest)."""
    import asyncio

    from bot.worker import run_worker

    settings = _settings()
    try:
        settings.require("slack_bot_token")
    except ConfigError as exc:
        exit_on_config_error(exc)
    asyncio.run(run_worker(settings, concurrency=concurrency))


@main.command()
@click.option("--as", "as_user", default=None, help="Slack user id to act as (default: the demo manager).")
def shell(as_user: str | None) -> None:
    """Try the bot in the terminal: type /course commands as a Slack user; no Slack needed."""
    import asyncio

    from devtools.shell import run_shell

    settings = _settings()
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "WARNING"))
    sys.exit(asyncio.run(run_shell(settings, as_user=as_user)))


@main.command()
@click.option("--dry-run", is_flag=True, help="Print today's digest instead of posting it.")
def digest(dry_run: bool) -> None:
    """Build today's digest; without --dry-run post it now (once per channel per day)."""
    import asyncio

    from bot.digest_command import run_digest_command

    settings = _settings()
    if not dry_run:
        try:
            settings.require("slack_bot_token", "coursebot_digest_channel")
        except ConfigError as exc:
            exit_on_config_error(exc)
        if settings.embedded_store:
            log.warning("REDIS_URL is not set: the once-a-day guard lives in this process only, so running "
                        "this command again posts again. Set REDIS_URL.")
    sys.exit(asyncio.run(run_digest_command(settings, dry_run=dry_run)))


if __name__ == "__main__":
    main()
