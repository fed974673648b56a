"""A missing or malformed setting stops the process with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COURSEBOT_", "NEXUDUS_", "MELTING"))}
    clean.pop("COURSE_PLATFORM", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60, cwd="/tmp")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
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
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(env: dict[str, str], variable: str) -> None:
    result = run(["serve"], env)
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
