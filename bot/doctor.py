"""`coursebot doctor`: check a deployment, one line per check, each `ok` or what is wrong and the fix.

It reads the same settings as `serve` and `worker` and asks the real services: Redis (a key
written, read back and deleted; the eviction policy), Slack (`auth.test`, the scopes granted
against manifest.yml's, membership of the approvals and digest channels, each manager id) and
the course platform (one login, one read). It changes nothing else. Exit code 0 only when no
check failed; a check that could not run because an earlier one failed says so (`skip`).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from slack_sdk.errors import SlackApiError

from bot.core import keys
from bot.core.config import ConfigError, Platform, Settings
from bot.platforms.base import PlatformError
from bot.slack.client import CountingWebClient, error_code, make_slack_client
from bot.slack.scopes import BOT_SCOPES
from bot.startup import SlackIdentity, StartupError, check_slack, redis_problem, safe_url

Status = Literal["ok", "fail", "skip"]
LABELS: dict[Status, str] = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}
PLATFORM_TIMEOUT = 60.0
INVITE = "open the channel in Slack and type /invite @coursebot"


@dataclass(frozen=True)
class Result:
    status: Status
    check: str
    text: str

    def line(self) -> str:
        return f"{LABELS[self.status]} {self.check}: {self.text}"


def ok(check: str, text: str) -> Result:
    return Result("ok", check, text)


def fail(check: str, text: str) -> Result:
    return Result("fail", check, text)


def skip(check: str, text: str) -> Result:
    return Result("skip", check, text)


class Doctor:
    def __init__(self, settings: Settings, out: TextIO) -> None:
        self.settings = settings
        self.out = out
        self.results: list[Result] = []

    def report(self, result: Result) -> None:
        self.results.append(result)
        print(result.line(), file=self.out, flush=True)

    async def run(self) -> int:
        for result in await self.redis():
            self.report(result)
        identity, result = await self.token()
        self.report(result)
        self.report(await self.connection())
        if identity is None:
            for check in ("slack scopes", "approvals channel", "digest channel", "managers"):
                self.report(skip(check, "not checked: needs a valid bot token (see above)"))
        else:
            self.report(self.scopes(identity))
            slack = make_slack_client(self.settings, timeout=15)
            self.report(await self.channel(slack, "approvals channel", self.settings.coursebot_approvals_channel,
                                           "COURSEBOT_APPROVALS_CHANNEL", "approval cards are not posted"))
            self.report(await self.channel(slack, "digest channel", self.settings.coursebot_digest_channel,
                                           "COURSEBOT_DIGEST_CHANNEL", "no daily digest is posted"))
            for result in await self.managers(slack):
                self.report(result)
        self.report(await self.platform())
        return 0 if all(r.status != "fail" for r in self.results) else 1

    # ---- Redis ------------------------------------------------------------------------

    async def redis(self) -> list[Result]:
        url = self.settings.redis_url
        if url is None:
            return [skip("redis", "REDIS_URL is not set: the embedded in-process store keeps state in one process "
                                  "only and loses it on restart. Fine for a single `serve`; set REDIS_URL to run a "
                                  "worker or more than one process.")]
        client = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=10, socket_timeout=10,
                                         **self.settings.redis_options())
        where = safe_url(url)
        try:
            key, value = keys.DOCTOR_PROBE(secrets.token_hex(8)), secrets.token_hex(8)
            try:
                await client.set(key, value, ex=keys.DOCTOR_PROBE.ttl)
                read = await client.get(key)
                await client.delete(key)
            except (RedisError, OSError) as exc:
                return [fail("redis", f"{where}: {redis_problem(exc)}. Check REDIS_URL, that Redis is running and "
                                      "that it accepts writes (a primary, not a read-only replica; not full).")]
            if read != value:
                return [fail("redis", f"{where}: a key written was not read back. Point REDIS_URL at one Redis "
                                      "server (not a cluster proxy that routes reads elsewhere).")]
            return [ok("redis", f"reachable and writable at {where}"), await self.eviction(client)]
        finally:
            await client.aclose()

    @staticmethod
    async def eviction(client: aioredis.Redis) -> Result:
        try:
            config = await client.config_get("maxmemory-policy")
        except (ResponseError, RedisError):
            return skip("redis eviction", "could not read maxmemory-policy (CONFIG is disabled on this server); "
                                          "make sure it is noeviction.")
        policy = str(config.get("maxmemory-policy", ""))
        if policy in ("noeviction", ""):
            return ok("redis eviction", f"maxmemory-policy is {policy or 'not set (noeviction)'}")
        return fail("redis eviction", f"maxmemory-policy is {policy}: under memory pressure Redis would delete the "
                                      "bot's locks, queued jobs and approval records. Set it to noeviction "
                                      "(redis.conf or CONFIG SET maxmemory-policy noeviction; Heroku: "
                                      "heroku redis:maxmemory --policy noeviction).")

    # ---- Slack ------------------------------------------------------------------------

    async def token(self) -> tuple[SlackIdentity | None, Result]:
        try:
            self.settings.require("slack_bot_token")
        except ConfigError:
            return None, fail("slack token", "SLACK_BOT_TOKEN is not set. Copy the Bot User OAuth Token (xoxb-…) "
                                             "from the app's OAuth & Permissions page.")
        try:
            identity = await check_slack(self.settings, attempts=2, pause=1.0)
        except StartupError as exc:
            return None, fail("slack token", str(exc).removeprefix("configuration error: "))
        return identity, ok("slack token", f"valid: workspace {identity.team}, bot user @{identity.user} "
                                           f"({identity.user_id})")

    async def connection(self) -> Result:
        """How Slack's requests reach `serve`: Socket Mode (the app-level token opens a connection) or HTTP."""
        from bot import socket_mode

        if not self.settings.socket_mode:
            try:
                self.settings.require("slack_signing_secret")
            except ConfigError:
                return fail("slack connection", "SLACK_SIGNING_SECRET is not set: serve needs it to take Slack's "
                                                "requests over HTTP. Copy it from Basic Information › App "
                                                "Credentials, or set SLACK_APP_TOKEN to use Socket Mode.")
            return ok("slack connection", "HTTP: Slack sends requests to POST /slack/events (the request URLs in "
                                          "the app's settings must reach serve)")
        assert self.settings.slack_app_token is not None
        try:
            await socket_mode.open_url(socket_mode.app_client(self.settings),
                                       self.settings.slack_app_token.get_secret_value())
        except ConfigError as exc:
            return fail("slack connection", str(exc))
        return ok("slack connection", "Socket Mode: the app-level token opens a connection")

    @staticmethod
    def scopes(identity: SlackIdentity) -> Result:
        if identity.scopes is None:
            return skip("slack scopes", "Slack did not say which scopes the token has (no x-oauth-scopes header).")
        missing = [scope for scope in BOT_SCOPES if scope not in identity.scopes]
        if not missing:
            return ok("slack scopes", f"all {len(BOT_SCOPES)} bot scopes of manifest.yml granted")
        needs = "; ".join(f"{scope} ({BOT_SCOPES[scope]})" for scope in missing)
        return fail("slack scopes", f"missing {needs}. Add them to the app's bot scopes (paste manifest.yml again, "
                                    "or OAuth & Permissions › Scopes) and reinstall the app to the workspace.")

    async def channel(self, slack: CountingWebClient, check: str, channel_id: str | None, variable: str,
                      without: str) -> Result:
        if not channel_id:
            return skip(check, f"{variable} is not set: {without}.")
        try:
            response = await slack.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            error = error_code(exc)
            if error == "channel_not_found":
                return fail(check, f"{channel_id} ({variable}) is not a channel the bot can see. Check the id "
                                   "(the channel's About tab); for a private channel, " + INVITE + " first.")
            if error == "missing_scope":
                return fail(check, f"the token may not read channel {channel_id} (missing_scope): reinstall the app "
                                   "with manifest.yml's scopes.")
            return fail(check, f"conversations.info for {channel_id} failed: {error}.")
        except Exception as exc:
            return fail(check, f"Slack did not answer conversations.info ({type(exc).__name__}); try again.")
        info = response.get("channel") or {}
        name = f"#{info.get('name')} ({channel_id})" if info.get("name") else channel_id
        if info.get("is_archived"):
            return fail(check, f"{name} is archived. Unarchive it, or set {variable} to another channel.")
        if not info.get("is_member"):
            return fail(check, f"the bot is not a member of {name}: {INVITE}.")
        return ok(check, f"the bot is a member of {name}")

    async def managers(self, slack: CountingWebClient) -> list[Result]:
        ids = self.settings.coursebot_managers
        if not ids:
            return [fail("managers", "COURSEBOT_MANAGERS is empty: nobody may change anything. Set it to Slack "
                                     "user ids (U…) and/or user-group ids (S…), comma-separated.")]
        return [await self.manager(slack, manager_id) for manager_id in ids]

    @staticmethod
    async def manager(slack: CountingWebClient, manager_id: str) -> Result:
        check = f"manager {manager_id}"
        try:
            if manager_id.startswith("S"):
                response = await slack.usergroups_users_list(usergroup=manager_id)
                count = len(response.get("users") or [])
                return ok(check, f"user group with {count} member{'s' if count != 1 else ''}")
            response = await slack.users_info(user=manager_id)
        except SlackApiError as exc:
            error = error_code(exc)
            if error in ("user_not_found", "no_such_subteam", "subteam_not_found"):
                kind = "user group" if manager_id.startswith("S") else "user"
                return fail(check, f"no such {kind} in this workspace ({error}). Copy the id from Slack (a "
                                   "profile's ⋮ › Copy member ID) into COURSEBOT_MANAGERS.")
            if error == "missing_scope":
                return fail(check, "the token may not read it (missing_scope): reinstall the app with manifest.yml's "
                                   "scopes (users:read, usergroups:read).")
            return fail(check, f"Slack answered {error}.")
        except Exception as exc:
            return fail(check, f"Slack did not answer ({type(exc).__name__}); try again.")
        user = response.get("user") or {}
        if user.get("deleted"):
            return fail(check, f"{user.get('real_name') or user.get('name')} is deactivated: remove the id from "
                               "COURSEBOT_MANAGERS.")
        return ok(check, str(user.get("real_name") or user.get("name") or "found"))

    # ---- the course platform -------------------------------------------------------------

    async def platform(self) -> Result:
        from bot.runtime import make_platform

        settings = self.settings
        if "course_platform" not in settings.model_fields_set:
            return fail("platform", "COURSE_PLATFORM is not set, so serve and worker refuse to start. Set it to "
                                    "nexudus or meltingspot (sandbox serves demo data).")
        if settings.course_platform is Platform.SANDBOX:
            return ok("platform", "sandbox: demo data, no credentials to check (real people never see it unless "
                                  "you mean them to)")
        try:
            settings.require_platform()
        except ConfigError as exc:
            return fail("platform", f"{exc}: set it.")
        platform = make_platform(settings)
        where = settings.nexudus_base_url if settings.course_platform is Platform.NEXUDUS \
            else settings.meltingspot_base_url
        try:
            proved = await asyncio.wait_for(platform.check_access(), timeout=PLATFORM_TIMEOUT)
        except PlatformError as exc:
            return fail("platform", f"{platform.display_name} at {where}: {exc.message}")
        except TimeoutError:
            return fail("platform", f"{platform.display_name} at {where} did not answer within "
                                    f"{PLATFORM_TIMEOUT:g} s. Check the base URL and the network.")
        except Exception as exc:  # e.g. the shared budget's Redis is down (reported above)
            return fail("platform", f"{platform.display_name} at {where}: the check failed ({type(exc).__name__}: "
                                    f"{exc}).")
        finally:
            await platform.aclose()
        return ok("platform", f"{platform.display_name} at {where}: {proved}")


async def run_doctor(settings: Settings, out: TextIO | None = None) -> int:
    return await Doctor(settings, out or sys.stdout).run()

