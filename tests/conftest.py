"""Shared fixtures: a real Redis server, a local Nexudus, a local Slack, and the bot between them.

Tests reach the bot only the way Slack does: signed HTTP requests to POST /slack/events
(through `devtools.shell.Shell`, which also renders replies as the shell shows them).

The local servers start once per session: Nexudus, MeltingSpot and Slack each serve one fake
that every test gets reset to a new one's state (`reset()`), then seeded as before; a fake a
test builds itself is served by `SERVERS` (a pool of servers lent to one app after another).
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr

from bot.core.config import Platform, Settings
from devtools.fakes.meltingspot import MeltingSpotFake
from devtools.fakes.nexudus import NexudusFake
from devtools.servers import ServerPool, ServerThread
from devtools.shell import Shell
from devtools.slack_stub import SlackWorkspace, create_app


def _worker_redis_url(url: str) -> str:
    """One Redis database per pytest-xdist worker (gw0 keeps the given one, gw1 the next...): the
    tests flush their database, so two workers must never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return urlunsplit(parts._replace(path=f"/{int(db or 0) + offset}")) if db.isdigit() or not db else url


REDIS_URL = _worker_redis_url(os.environ.get("COURSEBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"))

MANAGER = "U0MANAGER"
OUTSIDER = "U0OUTSIDER"
GENERAL = "C0GENERAL"
APPROVALS = "C0APPROVALS"
SLACK_TOKEN = "xoxb-test"
SLACK_SPEED = 4
"""The tests' Slack takes messages this many times faster than Slack (4 a second per channel after a
burst of 5) and the bot is told so (SLACK_POSTS_PER_SECOND): the same pacing, a quarter of the
waiting. A test that needs Slack's own pace (tests/test_posting.py) sets both back to 1."""


def _start_redis_if_missing() -> None:
    """On a fresh machine with redis-server installed but not running, start a throwaway one."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
        return
    except redis.ConnectionError:
        pass
    finally:
        client.close()
    if shutil.which("redis-server") is None:
        pytest.exit(f"tests need a Redis server at {REDIS_URL} (install redis-server, or set "
                    "COURSEBOT_TEST_REDIS_URL)", returncode=3)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
                    "--appendonly", "no"], check=True, capture_output=True)
    for _ in range(50):
        try:
            redis.Redis.from_url(REDIS_URL).ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)


def pytest_configure(config: pytest.Config) -> None:
    _start_redis_if_missing()
    # The processes the tests start (pytest-xdist's workers, and serve, worker, doctor and shell:
    # about fifty) would each compile the bot's source again where the environment forbids writing
    # bytecode: compile it once here, before any of them starts, and let them keep what they compile.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers
        root = Path(__file__).resolve().parent.parent
        for package in ("bot", "handlers", "devtools"):
            compileall.compile_dir(root / package, quiet=1)


SERVERS = ServerPool()
"""`with SERVERS.serve(app) as url:` serves an app a test builds itself, on a server kept for the session."""


@pytest.fixture(scope="session", autouse=True)
def _server_pool() -> Iterator[ServerPool]:
    yield SERVERS
    SERVERS.close()


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@dataclass
class Tenant:
    """A small Nexudus tenant: what the tests seed, by name."""

    fake: NexudusFake
    url: str
    courses: dict[str, dict[str, Any]]
    people: dict[str, dict[str, Any]]


@pytest.fixture(scope="session")
def nexudus_server() -> Iterator[Tenant]:
    fake = NexudusFake()
    with ServerThread(fake.app) as url:
        yield Tenant(fake, url, {}, {})


@pytest.fixture
def blank_nexudus(nexudus_server: Tenant) -> Tenant:
    """The session's local Nexudus, as a new `NexudusFake()`: no records yet."""
    nexudus_server.fake.reset()
    return Tenant(nexudus_server.fake, nexudus_server.url, {}, {})


@pytest.fixture
def nexudus(blank_nexudus: Tenant) -> Tenant:
    fake = blank_nexudus.fake
    business = fake.add_business("Main Street Hub")
    host = fake.add_coworker("Hanna Host", "host@example.com")
    courses = {
        "onboarding": fake.add_course("Community Onboarding", visibility=1, business_id=business["Id"],
                                      host_id=host["Id"]),
        "founders": fake.add_course("Founders Circle", visibility=3, business_id=business["Id"], host_id=host["Id"]),
        "figma": fake.add_course("Advanced Figma Workshop", visibility=4, business_id=business["Id"],
                                 host_id=host["Id"]),
        "figma2": fake.add_course("Figma Basics", visibility=1, business_id=business["Id"], host_id=host["Id"]),
    }
    people = {
        "ada": fake.add_coworker("Ada Lovelace", "ada@example.com", company_name="Analytical Engines"),
        "joann": fake.add_coworker("Jo Ann", "joann@example.com"),
        "ann": fake.add_coworker("Ann Other", "ann@example.com"),
        "eve": fake.add_coworker("Eve <!channel> <https://evil.example|Reset password>", "eve@example.com",
                                 company_name="<!here> & Co"),
        "grace": fake.add_coworker("Grace Hopper", "grace@work.example"),
    }
    for title in ("Welcome", "House rules", "Booking rooms"):
        fake.add_lesson(courses["onboarding"]["Id"], title, display_order=len(title))
    fake.add_enrolment(courses["founders"]["Id"], people["ann"]["Id"], approved=False)
    return Tenant(fake, blank_nexudus.url, courses, people)


@pytest.fixture(scope="session")
def meltingspot_server() -> Iterator[tuple[MeltingSpotFake, str]]:
    fake = MeltingSpotFake()
    with ServerThread(fake.app) as url:
        yield fake, url


@pytest.fixture
def meltingspot(meltingspot_server: tuple[MeltingSpotFake, str]) -> Callable[..., tuple[MeltingSpotFake, str]]:
    """`fake, url = meltingspot(api_key, **options)`: the session's local MeltingSpot, as a new
    `MeltingSpotFake(api_key, **options)`."""
    fake, url = meltingspot_server

    def new(api_key: str = "ms_secret", **options: Any) -> tuple[MeltingSpotFake, str]:
        fake.reset(api_key=api_key, **options)
        return fake, url

    return new


@pytest.fixture(scope="session")
def slack_server() -> Iterator[SlackWorkspace]:
    ws = SlackWorkspace(SLACK_TOKEN)
    with ServerThread(create_app(ws)) as url:
        ws.base_url = url
        yield ws


@pytest.fixture
def slack(slack_server: SlackWorkspace) -> SlackWorkspace:
    ws = slack_server
    ws.reset(SLACK_TOKEN)
    ws.limit_posts(per_second=SLACK_SPEED)
    ws.add_user(MANAGER, "manager", "manager@example.com", real_name="Mia Manager")
    ws.add_user(OUTSIDER, "outsider", "outsider@example.com", real_name="Olly Outsider")
    ws.add_user("U0ADA", "ada", "ada@example.com", real_name="Ada Lovelace")
    ws.add_user("U0GRACE", "grace", "grace@home.example", real_name="Grace Hopper")
    ws.add_user("U0NOBODY", "nobody", "nobody@example.com", real_name="No Body")
    ws.add_channel(GENERAL, "general", [MANAGER, OUTSIDER, "U0ADA", "U0GRACE"])
    ws.add_channel(APPROVALS, "approvals", [MANAGER])
    return ws


def nexudus_settings(tenant: Tenant, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "course_platform": Platform.NEXUDUS,
        "nexudus_base_url": tenant.url,
        "nexudus_username": tenant.fake.username,
        "nexudus_password": SecretStr(tenant.fake.password),
        "nexudus_writes_per_minute": 600,
        "coursebot_managers": [MANAGER],
        "coursebot_approvals_channel": APPROVALS,
        "slack_bot_token": SecretStr(SLACK_TOKEN),
        "slack_signing_secret": SecretStr("unused"),
        "slack_posts_per_second": SLACK_SPEED,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def meltingspot_settings(url: str, api_key: str = "ms_secret", **overrides: Any) -> Settings:
    """The bot on the local MeltingSpot at `url` (the `meltingspot` fixture's), like `nexudus_settings`."""
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "course_platform": Platform.MELTINGSPOT,
        "meltingspot_base_url": url,
        "meltingspot_api_key": SecretStr(api_key),
        "coursebot_managers": [MANAGER],
        "coursebot_approvals_channel": APPROVALS,
        "slack_bot_token": SecretStr(SLACK_TOKEN),
        "slack_signing_secret": SecretStr("unused"),
        "slack_posts_per_second": SLACK_SPEED,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def bot(nexudus: Tenant, slack: SlackWorkspace) -> AsyncIterator[Shell]:
    async with Shell(nexudus_settings(nexudus), as_user=MANAGER, workspace=slack) as shell:
        shell.channel = GENERAL
        yield shell
