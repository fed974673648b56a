"""The layout's promises, checked: production entry points load no developer tool."""

from __future__ import annotations

import subprocess
import sys


def test_production_entry_points_do_not_load_devtools() -> None:
    code = (
        "import sys, asyncio\n"
        "import bot.app, bot.worker, bot.cli, bot.digest_command, bot.background, handlers.wiring\n"
        "from bot.render.terminal import TerminalView\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'devtools')\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
