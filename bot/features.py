"""Import the feature modules whose jobs and periodic tasks register themselves.

Each feature adds its module here once; the worker and the serve process call `load()`.
"""

from __future__ import annotations

import importlib

FEATURE_MODULES: list[str] = [
    "bot.approvals_tasks",
    "bot.digest_sender",
    "bot.bulk_jobs",
    "bot.services.courses",  # registers the "complete" kind of bulk job
]


def load() -> None:
    for name in FEATURE_MODULES:
        importlib.import_module(name)
