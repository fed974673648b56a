"""`coursebot shell` as a newcomer uses it: scripted on standard input, sandbox and embedded store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# One worker runs this module, so its module fixture (`shells` starts one shell per script)
# runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_shell")

SCRIPTS = {
    "enrol": '/course enrol "Community Onboarding" <@U1002|ada>\n/course status onboarding <@U1002|ada>\n',
    "press": "/course pending founders\n1\n",
    "form": "/course new\nset title Pottery\nsubmit\nset location 1\nset host ada lovelace\n"
            "set visibility 3\nsubmit\n/course courses\n",
}


Runs = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def shells() -> Runs:
    """Each script in its own `coursebot shell`, the shells started all at once (each one's time is
    mostly Python starting up); each shell has its own embedded store and stand-in Slack."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "COURSE_PLATFORM", "COURSEBOT_MANAGERS")}
    started = {name: subprocess.Popen([sys.executable, "-m", "bot.cli", "shell"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp", env=env)
               for name in SCRIPTS}
    results = {}
    for name, process in started.items():
        try:
            stdout, stderr = process.communicate(SCRIPTS[name], timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results


def shell(shells: Runs, name: str) -> str:
    result = shells[name]
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_newcomer_enrols_someone_and_sees_it_in_the_status(shells: Runs) -> None:
    out = shell(shells, "enrol")
    assert "Ada Haddad" in out and "enrolled" in out
    assert "✅ approved" in out


def test_buttons_are_numbered_and_can_be_pressed(shells: Runs) -> None:
    out = shell(shells, "press")
    assert "[1] Approve" in out
    assert "approved" in out.split("> 1", 1)[1]


def test_a_form_is_filled_and_submitted_from_the_shell(shells: Runs) -> None:
    out = shell(shells, "form")
    assert "location:" in out  # the first submit is refused inline: the location is missing
    assert "created Pottery" in out
    assert "Pottery (id" in out.split("/course courses", 1)[1]
