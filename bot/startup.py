"""What `serve` and `worker` check before they start, so that a deployment that cannot work
says why at once, in one line, instead of failing every request later.

- Redis (when REDIS_URL is set) answers a PING.
- The bot token is valid: `auth.test`. A refused token (invalid, revoked, deactivated) is a
  configuration error naming SLACK_BOT_TOKEN (exit 2); retrying would not help.
- A Slack or Redis that cannot be reached is tried a few times over about ten seconds, then the
  process stops (exit 1) so that the process manager restarts it: a deploy that starts while
  Slack or Redis is briefly away heals itself, and one that can never reach them says so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from bot.core.config import Settings
from bot.slack.client import error_code, make_slack_client

log = logging.getLogger(__name__)

# auth.test errors that mean the token itself is no good (docs.slack.dev, auth.test).
REFUSED_TOKEN_ERRORS = frozenset({"invalid_auth", "account_inactive", "token_revoked", "not_authed",
                                  "token_expired"})
ATTEMPTS = 3
PAUSE = 1.5  # seconds before the 2nd try; doubled before the 3rd
TIMEOUT = 10


class StartupError(Exception):
    """A start-up check failed. exit_code 2: fix the configuration; 1: a service could not be reached."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class SlackIdentity:
    team: str
    user: str
    user_id: str
    scopes: frozenset[str] | None  # from the x-oauth-scopes header; None when Slack did not send it


def safe_url(url: str) -> str:
    """A URL fit for a log line or an error: any password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_problem(exc: BaseException) -> str:
    """Why Redis did not answer, with the fix when it is a known one."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return ("its TLS certificate could not be verified; for a provider with a self-signed certificate "
                "(Heroku Redis) set REDIS_TLS_VERIFY=false")
    return text


def refused_token(error: str) -> StartupError:
    return StartupError(
        f"configuration error: SLACK_BOT_TOKEN was refused by Slack ({error}). Copy the Bot User OAuth Token "
        "(xoxb-…) from the app's OAuth & Permissions page; if the app was removed or the token revoked, "
        "reinstall the app first.", 2)


async def check_slack(settings: Settings, *, attempts: int = ATTEMPTS, pause: float = PAUSE) -> SlackIdentity:
    client = make_slack_client(settings, retry=False, timeout=TIMEOUT)
    problem = ""
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(pause * 2 ** (attempt - 1))
        try:
            response = await client.auth_test()
        except SlackApiError as exc:
            error = error_code(exc)
            if error in REFUSED_TOKEN_ERRORS:
                raise refused_token(error) from None
            problem = error
            continue
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
            continue
        header = response.headers.get("x-oauth-scopes") if response.headers else None
        scopes = frozenset(s.strip() for s in header.split(",") if s.strip()) if header is not None else None
        return SlackIdentity(team=str(response.get("team") or ""), user=str(response.get("user") or ""),
                             user_id=str(response.get("user_id") or ""), scopes=scopes)
    raise StartupError(f"cannot reach Slack at {settings.slack_api_url} ({problem}) after {attempts} tries. "
                       "Check the network, and SLACK_API_URL if you set it.", 1)


async def check_redis(settings: Settings, *, attempts: int = ATTEMPTS, pause: float = PAUSE) -> None:
    if settings.redis_url is None:
        return
    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT,
                                     **settings.redis_options())
    problem = ""
    try:
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(pause * 2 ** (attempt - 1))
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                problem = redis_problem(exc)
    finally:
        await client.aclose()
    raise StartupError(f"cannot reach Redis at {safe_url(settings.redis_url)} ({problem}) after {attempts} tries. "
                       "Check REDIS_URL and that Redis is running.", 1)


async def check_services(settings: Settings) -> SlackIdentity:
    """Redis, then the bot token; raises StartupError."""
    await check_redis(settings)
    identity = await check_slack(settings)
    log.info("Slack: workspace %s, bot user @%s (%s)", identity.team, identity.user, identity.user_id)
    return identity
