"""Does requirements.txt (what Heroku and the Dockerfile install) still satisfy pyproject.toml?

Every dependency in pyproject's `[project].dependencies` must be pinned (`==`) in requirements.txt
at a version inside its range, and the file must end by installing the bot itself (a line `.`), so
that `coursebot` is on the PATH where Heroku runs the Procfile. Offline and fast: it reads the two
files and nothing else. CI runs `python -m devtools.requirements_check`; it exits 1 listing what is
wrong. To regenerate the file, see README › Deployment.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

SELF = "."


def pins(requirements_text: str) -> tuple[dict[str, str], list[str], bool]:
    """(name -> pinned version, lines that are not exact pins, whether the bot itself is installed)."""
    pinned: dict[str, str] = {}
    loose: list[str] = []
    installs_self = False
    for raw in requirements_text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        if line == SELF:
            installs_self = True
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            loose.append(line)
            continue
        exact = [s for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(exact) != 1:
            loose.append(line)
            continue
        pinned[canonicalize_name(requirement.name)] = exact[0].version
    return pinned, loose, installs_self


def problems(pyproject_text: str, requirements_text: str) -> list[str]:
    project = tomllib.loads(pyproject_text)["project"]
    pinned, loose, installs_self = pins(requirements_text)
    found = [f"not an exact pin: {line}" for line in loose]
    for spec in project.get("dependencies", []):
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        version = pinned.get(name)
        if version is None:
            found.append(f"{requirement.name} (pyproject: {spec}) is not pinned in requirements.txt")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement.name}=={version} in requirements.txt is outside pyproject's {spec}")
    if not installs_self:
        found.append("requirements.txt does not install the bot itself: end it with a line `.`")
    return found


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    found = problems((root / "pyproject.toml").read_text(), (root / "requirements.txt").read_text())
    for problem in found:
        print(f"requirements.txt: {problem}", file=sys.stderr)
    if found:
        print("Regenerate it (README › Deployment, 'requirements.txt').", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
