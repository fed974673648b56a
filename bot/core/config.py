"""Settings, read once from the environment (and `.env`) and validated at start.

The names are the outside contract (`shared/design/contract.md`); a missing or malformed
value stops the process with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import re
import sys
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Platform(StrEnum):
    NEXUDUS = "nexudus"
    MELTINGSPOT = "meltingspot"
    SANDBOX = "sandbox"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None  # set: `serve` takes Slack's requests over Socket Mode
    slack_api_url: str = "https://slack.com/api/"
    # Slack takes about 1 message a second per channel after a short burst. Only a stand-in Slack
    # that takes more (the shell's, the tests') is worth a higher value: it also speeds up updates.
    slack_posts_per_second: int = Field(default=1, ge=1, le=100)
    redis_url: str | None = None
    port: int = Field(default=3000, ge=1, le=65535)

    course_platform: Platform = Platform.SANDBOX
    nexudus_base_url: str = "https://spaces.nexudus.com"
    nexudus_username: str | None = None
    nexudus_password: SecretStr | None = None
    nexudus_writes_per_minute: int = Field(default=60, ge=1)
    nexudus_writes_per_day: int = Field(default=2500, ge=1)
    meltingspot_base_url: str = "https://openapi.meltingspot.io"
    meltingspot_api_key: SecretStr | None = None
    meltingspot_requests_per_10s: int = Field(default=100, ge=1)
    meltingspot_create_members: bool = False  # invite: add people missing from the spot (it emails nobody)
    meltingspot_invite_email: bool = True  # MeltingSpot emails each member invited to a course (--no-email: not)

    coursebot_managers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    coursebot_approvals_channel: str | None = None
    coursebot_digest_channel: str | None = None
    coursebot_digest_time: time = time(9, 0)
    coursebot_timezone: str = "UTC"
    coursebot_stalled_days: int = Field(default=14, ge=1, le=365)
    coursebot_digest_skip_empty: bool = False
    coursebot_sync_seconds: int = Field(default=60, ge=1)
    coursebot_reminder_hours: float = Field(default=24, gt=0)
    coursebot_escalate_hours: float = Field(default=72, gt=0)
    # A running job whose worker is silent this long is taken over by another (bot.core.jobs.JobTimings).
    coursebot_job_heartbeat_seconds: int = Field(default=10, ge=2, le=3600)

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Heroku Redis (and other managed ones) serve rediss:// with a self-signed certificate that
    # cannot be verified; `false` keeps the traffic encrypted but skips the certificate check.
    redis_tls_verify: bool = True

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_ends_in_slash(cls, value: str) -> str:
        _require_http(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_app_token", mode="before")
    @classmethod
    def _app_token(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if not text.strip().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp- (Basic Information › App-Level Tokens)")
        return text.strip()

    @field_validator("nexudus_base_url", "meltingspot_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        _require_http(value)
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("coursebot_managers", mode="before")
    @classmethod
    def _managers(cls, value: Any) -> list[str]:
        items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value or [])
        ids = [item for item in items if item]
        bad = [item for item in ids if not _SLACK_ID.match(item)]
        if bad:
            raise ValueError(f"not a Slack user or user-group ID: {', '.join(bad)}")
        return ids

    @field_validator("coursebot_digest_time", mode="before")
    @classmethod
    def _digest_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
            if not match:
                raise ValueError("must be HH:MM, e.g. 09:00")
            return time(int(match[1]), int(match[2]))
        return value

    @field_validator("coursebot_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("not an IANA time zone, e.g. Europe/Paris") from exc
        return value

    @field_validator("coursebot_approvals_channel", "coursebot_digest_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", value):
            raise ValueError("must be a channel ID such as C0123ABCD (not a #name)")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.coursebot_timezone)

    @property
    def socket_mode(self) -> bool:
        """Slack's requests come over Socket Mode (SLACK_APP_TOKEN set), not to POST /slack/events."""
        return self.slack_app_token is not None

    @property
    def embedded_store(self) -> bool:
        return self.redis_url is None

    def require(self, *names: str) -> None:
        """Stop with a ConfigError if any of these settings is unset."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr):  # an empty variable (SLACK_SIGNING_SECRET=) is not a secret
                value = value.get_secret_value()
            if value in (None, ""):
                raise ConfigError(f"{name.upper()} is required but not set")

    def require_platform_choice(self) -> None:
        """`serve` and `worker` need COURSE_PLATFORM set on purpose: the sandbox default (demo data)
        is for `coursebot shell`, and must never reach a real workspace by omission."""
        if "course_platform" not in self.model_fields_set:
            raise ConfigError("COURSE_PLATFORM is required for serve and worker: set it to nexudus or "
                              "meltingspot (or to sandbox, on purpose, to serve demo data)")

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for every Redis client the bot makes (store, job queue, budgets)."""
        if self.redis_url and self.redis_url.startswith("rediss://") and not self.redis_tls_verify:
            return {"ssl_cert_reqs": "none"}
        return {}

    def require_platform(self) -> None:
        if self.course_platform is Platform.NEXUDUS:
            self.require("nexudus_username", "nexudus_password")
        elif self.course_platform is Platform.MELTINGSPOT:
            self.require("meltingspot_api_key")


def _require_http(value: str) -> None:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s) URL")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a problem becomes a ConfigError naming the first bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None


def exit_on_config_error(exc: ConfigError) -> None:
    print(f"coursebot: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2)
