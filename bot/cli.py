"""`coursebot` command line: serve, worker, shell, digest, doctor (click)."""

from __future__ import annotations

import gc
import logging
import sys

import click

from bot import __version__
from bot.core import logs
from bot.core.config import ConfigError, Settings, exit_on_config_error, load_settings

log = logging.getLogger("coursebot")


def _settings(*required: str, platform_chosen: bool = False, platform_credentials: bool = True) -> Settings:
    """Read the settings and set up logging; stop with one line naming the first missing or bad variable.

    `required`: settings this command cannot run without; `platform_chosen`: COURSE_PLATFORM must be
    set on purpose (serve, worker); `platform_credentials`: the chosen platform's credentials must be set."""
    try:
        settings = load_settings()
        if platform_credentials:
            settings.require_platform()
        settings.require(*required)
        if platform_chosen:
            settings.require_platform_choice()
    except ConfigError as exc:
        exit_on_config_error(exc)
        raise  # unreachable: exit_on_config_error exits
    secrets = [s.get_secret_value() for s in (settings.slack_bot_token, settings.slack_signing_secret,
                                              settings.slack_app_token, settings.nexudus_password,
                                              settings.meltingspot_api_key) if s]
    logs.setup(settings.log_level, secrets, settings.log_format)
    return settings


def _check_services(settings: Settings) -> None:
    """Redis and the bot token (bot.startup); a failure stops the process with one line."""
    import asyncio

    from bot.startup import StartupError, check_services

    try:
        asyncio.run(check_services(settings))
    except StartupError as exc:
        print(f"coursebot: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


@click.group()
@click.version_option(__version__, "--version", package_name="coursebot", message="coursebot %(version)s")
def main() -> None:
    """coursebot: run course enrolment on Nexudus or MeltingSpot from Slack."""


@main.command()
@click.option("--port", type=int, default=None, help="Port to listen on (default: $PORT, else 3000).")
def serve(port: int | None) -> None:
    """Serve Slack's requests: over Socket Mode when SLACK_APP_TOKEN is set, else POST /slack/events;
    GET /healthz and GET /metrics either way."""
    # Settings and services first, before the app is imported: a bad one stops the process at once.
    settings = _settings("slack_bot_token", platform_chosen=True)
    if not settings.socket_mode:
        try:
            settings.require("slack_signing_secret")
        except ConfigError as exc:
            exit_on_config_error(exc)
    _check_services(settings)
    from bot.app import build_bolt, build_web
    from bot.runtime import Runtime
    from bot.serving import WebServer

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
    how = ("over Socket Mode (no public URL needed; POST /slack/events is off)" if settings.socket_mode
           else "over HTTP: POST /slack/events")

    def announce() -> None:  # once the port is bound (bot.serving)
        log.info("coursebot %s serving %s %s; /metrics and /healthz on port %s", __version__,
                 settings.course_platform.value, how, port)

    if settings.socket_mode:
        from bot import socket_mode

        socket_mode.run(web, bolt, settings, port=port, on_started=announce)
        return
    WebServer(web, port=port, on_started=announce).run()


@main.command()
@click.option("--concurrency", type=int, default=10, show_default=True, help="Jobs run at once by this worker.")
@click.option("--metrics-port", type=int, default=None,
              help="Also export this worker's metrics (jobs, its platform requests) at http://0.0.0.0:PORT/metrics.")
def worker(concurrency: int, metrics_port: int | None) -> None:
    """Run queued jobs (bulk invites) and periodic tasks (approval sync, daily digest)."""
    import asyncio

    settings = _settings("slack_bot_token", platform_chosen=True)
    _check_services(settings)  # before the worker is imported: a bad setting or service stops it at once
    from bot.core import metrics
    from bot.worker import run_worker

    if metrics_port is not None:
        try:
            metrics.serve_on(metrics_port)
        except OSError as exc:
            print(f"coursebot: cannot export metrics on port {metrics_port}: {exc.strerror or exc}", file=sys.stderr)
            raise SystemExit(1) from None
    sys.exit(asyncio.run(run_worker(settings, concurrency=concurrency)))


@main.command()
@click.option("--as", "as_user", default=None, help="Slack user id to act as (default: the demo manager).")
def shell(as_user: str | None) -> None:
    """Try the bot in the terminal: type /course commands as a Slack user; no Slack needed."""
    import asyncio

    from devtools.shell import run_shell

    settings = _settings()
    # The shell's output is the conversation: only warnings, unless LOG_LEVEL asks for more.
    logging.getLogger().setLevel(settings.log_level if "log_level" in settings.model_fields_set else "WARNING")
    sys.exit(asyncio.run(run_shell(settings, as_user=as_user)))


@main.command()
@click.option("--dry-run", is_flag=True, help="Print today's digest instead of posting it.")
def digest(dry_run: bool) -> None:
    """Build today's digest; without --dry-run post it now (once per channel per day)."""
    import asyncio

    from bot.digest_command import run_digest_command

    settings = _settings(*(() if dry_run else ("slack_bot_token", "coursebot_digest_channel")))
    if not dry_run and settings.embedded_store:
        log.warning("REDIS_URL is not set: the once-a-day guard lives in this process only, so running "
                    "this command again posts again. Set REDIS_URL.")
    sys.exit(asyncio.run(run_digest_command(settings, dry_run=dry_run)))


@main.command()
def doctor() -> None:
    """Check a deployment: Redis, the bot token and its scopes, channels, platform credentials, managers."""
    import asyncio

    from bot.doctor import run_doctor

    settings = _settings(platform_credentials=False)  # missing credentials are a finding, not a stop
    logging.getLogger().setLevel(settings.log_level if "log_level" in settings.model_fields_set else "WARNING")
    sys.exit(asyncio.run(run_doctor(settings)))


if __name__ == "__main__":
    main()
