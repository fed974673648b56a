"""A missing or malformed setting stops the process with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# One worker runs this module, so its module fixture (`serve_runs` starts one process per bad setting)
# runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_config")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COURSEBOT_", "NEXUDUS_", "MELTING"))}
    clean.pop("COURSE_PLATFORM", None)
    clean.pop("REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env={**clean, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/tmp")


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


BAD_SETTINGS = [
    ({}, "SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSEBOT_DIGEST_TIME": "9am"},
     "COURSEBOT_DIGEST_TIME"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSEBOT_TIMEZONE": "Mars/Olympus"},
     "COURSEBOT_TIMEZONE"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSE_PLATFORM": "moodle"},
     "COURSE_PLATFORM"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSE_PLATFORM": "nexudus"},
     "NEXUDUS_USERNAME"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "http"}, "PORT"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSEBOT_MANAGERS": "@alice"},
     "COURSEBOT_MANAGERS"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "NEXUDUS_WRITES_PER_MINUTE": "0"},
     "NEXUDUS_WRITES_PER_MINUTE"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "COURSEBOT_JOB_HEARTBEAT_SECONDS": "1"},
     "COURSEBOT_JOB_HEARTBEAT_SECONDS"),
]


@pytest.fixture(scope="module")
def serve_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """`coursebot serve` with each bad setting, the processes started all at once (each one's time is
    mostly Python starting up), by the variable each one names."""
    started = {variable: start(["serve"], env) for env, variable in BAD_SETTINGS}
    return {variable: finish(process) for variable, process in started.items()}


@pytest.mark.parametrize(("env", "variable"), BAD_SETTINGS)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(
    env: dict[str, str], variable: str, serve_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = serve_runs[variable]
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    for value in env.values():
        if value.startswith("xoxb"):
            assert value not in result.stderr


def test_the_shell_runs_a_script_on_the_embedded_defaults() -> None:
    result = subprocess.run([sys.executable, "-m", "bot.cli", "shell"], input="/course help\n/course courses\n",
                            capture_output=True, text=True, timeout=120, cwd="/tmp",
                            env={k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "COURSE_PLATFORM")})
    assert result.returncode == 0, result.stderr
    assert "/course enrol" in result.stdout
    assert "Founders Circle" in result.stdout
