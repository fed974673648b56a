"""`serve` and `worker` as an operator starts them: what they check first, and what they say.

Each process is started the way a deployer would (`python -m bot.cli …`), with its settings in
its environment, against the local Slack stand-in and the test Redis.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

import bot
from bot.core import keys, logs
from devtools.servers import free_port
from devtools.slack_stub import SlackWorkspace, create_app
from tests.conftest import REDIS_URL, SERVERS, SLACK_TOKEN

# One worker runs this module, so its module fixture (`unreachable` starts a serve and a worker that retry)
# runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_startup")

OWN = ("SLACK_", "COURSEBOT_", "NEXUDUS_", "MELTINGSPOT_", "COURSE_PLATFORM", "REDIS_", "LOG_", "PORT")


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN)}
    return {**env, **values}


def slack_env(slack: SlackWorkspace, **values: str) -> dict[str, str]:
    return environment(**{"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": "secret",
                          "SLACK_API_URL": slack.base_url + "/api/", **values})


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd="/tmp")


class Background:
    """A command started now and collected later, while other tests run: its output, and how long
    it ran until it exited (timed by a thread waiting on it, not by whoever collects it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd="/tmp")
        self.seconds = 0.0
        self._output = ("", "")
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        try:
            self._output = self.process.communicate(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.seconds = time.monotonic() - self.started

    def result(self) -> subprocess.CompletedProcess[str]:
        self._thread.join(65)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, *self._output)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env, cwd=log.parent,
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], within: float = 30) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        assert process.poll() is None, f"the process ended ({process.returncode}):\n{log.read_text()}"
        time.sleep(0.02)
    raise AssertionError(f"no line with {text!r} in {within} s:\n{log.read_text()}")


# ---- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_without_a_course_platform_chosen(command: str) -> None:
    result = run([command], environment(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s"))
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("coursebot: configuration error: COURSE_PLATFORM is required")
    assert "sandbox" in line  # it says how to get the demo data on purpose


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("LOG_FORMAT", "xml", "'text' or 'json'"),
    ("REDIS_TLS_VERIFY", "perhaps", "boolean"),
])
def test_a_bad_log_or_redis_setting_stops_with_one_line_naming_it(variable: str, value: str, says: str) -> None:
    result = run(["serve"], environment(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s",
                                        COURSE_PLATFORM="sandbox", **{variable: value}))
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"coursebot: configuration error: {variable}: ") and says in line


def test_log_level_is_read_from_the_dotenv_file_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=LOUD\n")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=environment(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s"))
    assert result.returncode == 2 and "LOG_LEVEL" in one_line(result)


def test_version_is_the_installed_one() -> None:
    result = run(["--version"], environment())
    assert result.returncode == 0
    assert result.stdout.strip() == f"coursebot {importlib.metadata.version('coursebot')}"
    assert bot.__version__ == importlib.metadata.version("coursebot") == "0.2.0"


# ---- the bot token ------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive", "not_authed"])
def test_a_refused_bot_token_stops_the_process_with_one_line_naming_it(
    slack: SlackWorkspace, command: str, error: str
) -> None:
    token = SLACK_TOKEN
    if error == "invalid_auth":
        token = "xoxb-revoked-and-wrong"  # the stand-in refuses any other token, as Slack does
    else:
        slack.fail_next("auth.test", 1, error)
    env = slack_env(slack, SLACK_BOT_TOKEN=token, COURSE_PLATFORM="sandbox", REDIS_URL=REDIS_URL)
    result = run([command], env)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("coursebot: configuration error: SLACK_BOT_TOKEN was refused by Slack")
    assert f"({error})" in line and "reinstall" in line
    assert token not in result.stderr


@dataclass(frozen=True)
class Unreachable:
    slack_url: str
    slack: Background
    redis: Background


@pytest.fixture(scope="module", autouse=True)
def unreachable() -> Iterator[Unreachable]:
    """`serve` with a Slack nobody answers and `worker` with a Redis nobody answers, started as this
    module's first test starts: each spends 4.5 s pausing between its three tries while the other
    tests run. The worker gets a Slack of its own (its token is checked before Redis), so no test's
    injected Slack failure is used up by it."""
    ws = SlackWorkspace(SLACK_TOKEN)
    with SERVERS.serve(create_app(ws)) as slack_url:
        ws.base_url = slack_url
        url = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there
        dead = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
        runs = Unreachable(url, Background(["serve"], environment(
                               SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SLACK_API_URL=url,
                               COURSE_PLATFORM="sandbox")),
                           Background(["worker"], slack_env(ws, COURSE_PLATFORM="sandbox", REDIS_URL=dead)))
        yield runs
        runs.slack.result()
        runs.redis.result()


def test_a_slack_that_cannot_be_reached_is_tried_a_few_times_then_said_in_one_line(unreachable: Unreachable) -> None:
    result, url = unreachable.slack.result(), unreachable.slack_url
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"coursebot: cannot reach Slack at {url}") and "after 3 tries" in line
    assert unreachable.slack.seconds >= 4.5  # it waited between the tries


def test_a_worker_whose_redis_is_unreachable_says_so_in_one_line(unreachable: Unreachable) -> None:
    result = unreachable.redis.result()
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("coursebot: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "Check REDIS_URL" in line and "hunter2" not in result.stderr


# ---- serve -------------------------------------------------------------------------------

def test_serve_says_it_is_serving_only_once_the_port_answers(slack: SlackWorkspace, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = slack_env(slack, COURSE_PLATFORM="sandbox", PORT=str(port), LOG_LEVEL="INFO")
    with started(["serve"], env, log) as process:
        line = wait_for_line(log, "serving", process)
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)  # at once, no retry
        assert response.status_code == 200
    assert line.endswith(f"coursebot {bot.__version__} serving sandbox over HTTP: POST /slack/events; /metrics and "
                         f"/healthz on port {port}")
    text = log.read_text()
    assert "Slack: workspace coursebot-dev, bot user @coursebot" in text
    assert text.index("Slack: workspace") < text.index("serving")


def test_serve_on_a_port_already_taken_never_says_serving(slack: SlackWorkspace) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = slack_env(slack, COURSE_PLATFORM="sandbox", PORT=str(port), LOG_LEVEL="INFO")
        result = run(["serve"], env)
    assert result.returncode != 0
    assert "serving" not in result.stderr
    assert "address already in use" in result.stderr


def test_json_logs_are_one_object_per_line(slack: SlackWorkspace, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = slack_env(slack, COURSE_PLATFORM="sandbox", PORT=str(port), LOG_LEVEL="INFO", LOG_FORMAT="json")
    with started(["serve"], env, log) as process:
        wait_for_line(log, "serving", process)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e["level"] == "WARNING" and "REDIS_URL is not set" in e["message"] for e in entries)
    assert any(e["logger"] == "coursebot" and "serving sandbox" in e["message"] for e in entries)
    assert SLACK_TOKEN not in log.read_text()


def test_json_logs_redact_secrets_in_messages_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("INFO", ["hunter2-password"], "json")
        log = logging.getLogger("coursebot.test")
        log.info("logging in with hunter2-password and xoxb-123-456-abc")
        try:
            raise RuntimeError("token xoxb-999-888-zzz refused")
        except RuntimeError:
            log.exception("it failed")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "logging in with [redacted] and [redacted]"
    assert first["level"] == "INFO" and first["logger"] == "coursebot.test" and "exc" not in first
    assert second["message"] == "it failed"
    assert "RuntimeError: token [redacted] refused" in second["exc"] and "xoxb-999" not in second["exc"]


# ---- worker -------------------------------------------------------------------------------

def test_a_worker_beats_exports_its_metrics_and_leaves_on_sigterm(slack: SlackWorkspace, tmp_path: Path) -> None:
    metrics_port = free_port()
    log = tmp_path / "worker.log"
    env = slack_env(slack, COURSE_PLATFORM="sandbox", REDIS_URL=REDIS_URL, LOG_LEVEL="INFO")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with started(["worker", "--metrics-port", str(metrics_port)], env, log) as process:
            wait_for_line(log, "worker started", process)
            deadline = time.monotonic() + 10
            while not client.zrange(keys.WORKERS(), 0, -1):
                assert time.monotonic() < deadline, "no heartbeat"
                time.sleep(0.05)
            [member] = client.zrange(keys.WORKERS(), 0, -1)
            assert member == f"{socket.gethostname()}:{process.pid}"
            assert 0 < client.ttl(keys.WORKERS()) <= keys.WORKER_SEEN_SECONDS
            synced = 'coursebot_periodic_runs_total{outcome="ok",task="approval_sync"}'
            deadline = time.monotonic() + 10
            while True:  # the first sync may still be running when the heartbeat is seen
                page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
                if synced in page or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert "# TYPE coursebot_jobs_total counter" in page
            assert synced in page
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        assert client.zrange(keys.WORKERS(), 0, -1) == []  # a clean stop is not counted as a live worker
    finally:
        client.close()
