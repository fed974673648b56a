"""The deployment files, checked as far as this machine can (no Docker engine, no Heroku):
compose.yml parses and says what the bot needs from Redis; the Dockerfile copies files that exist
and runs as a non-root user with a health check; requirements.txt satisfies pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

from devtools.requirements_check import problems

ROOT = Path(__file__).resolve().parents[1]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_compose_runs_redis_with_persistence_and_no_eviction_then_serve_and_worker_from_one_image() -> None:
    compose = yaml.safe_load((ROOT / "compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "serve", "worker"}
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert services["redis"]["volumes"] == ["redis-data:/data"] and "redis-data" in compose["volumes"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("serve", "worker"):
        service = services[name]
        assert service["build"] == "." and service["image"] == services["serve"]["image"]
        assert service["env_file"] == ".env"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["serve"]["command"] == ["coursebot", "serve"]
    assert services["serve"]["ports"] == ["3000:3000"]
    assert services["worker"]["command"] == ["coursebot", "worker"]
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_the_dockerfile_builds_from_files_that_exist_as_a_non_root_user_with_a_health_check() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _target = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    copied = {source for instruction, args in steps if instruction == "COPY" for source in args.split()[:-1]}
    assert {pattern.rstrip("*") for pattern in packages["include"]} <= copied  # every package is in the image
    assert "requirements.txt" in copied and "README.md" in copied  # pyproject's readme, needed to build
    [user] = [args for instruction, args in steps if instruction == "USER"]
    assert user not in ("root", "0")
    [health] = [args for instruction, args in steps if instruction == "HEALTHCHECK"]
    assert '"python", "-c"' in health and "/healthz" in health and "urllib.request" in health
    assert steps[-1] == ("CMD", '["coursebot", "serve"]')
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored and ".git" in ignored


def test_requirements_txt_pins_every_dependency_inside_its_range_and_installs_the_bot() -> None:
    assert problems((ROOT / "pyproject.toml").read_text(), (ROOT / "requirements.txt").read_text()) == []


def test_the_requirements_check_finds_a_missing_an_out_of_range_and_a_loose_pin() -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["httpx>=0.28,<1", "redis>=5.2", "click>=8.1"]\n'
    requirements = "httpx==1.0.0\n    # via x\nclick>=8\n"
    assert problems(pyproject, requirements) == [
        "not an exact pin: click>=8",
        "httpx==1.0.0 in requirements.txt is outside pyproject's httpx>=0.28,<1",
        "redis (pyproject: redis>=5.2) is not pinned in requirements.txt",
        "click (pyproject: click>=8.1) is not pinned in requirements.txt",
        "requirements.txt does not install the bot itself: end it with a line `.`",
    ]


def test_heroku_gets_a_python_version_the_project_supports_and_the_procfile_of_the_contract() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"3\.\d+", version) and SpecifierSet(requires).contains(version + ".0")
    assert dockerfile()[0][1] == f"python:{version}-slim"
    assert (ROOT / "Procfile").read_text().splitlines() == ["web: coursebot serve", "worker: coursebot worker"]
