"""The audit log: every change, refusal and platform error, newest first, bounded (AUDIT_MAX)."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.core import keys
from bot.core.store import Redis


async def audit(redis: Redis, *, actor: str, action: str, target: str, outcome: str, detail: str = "",
                before: Any = None, after: Any = None) -> None:
    """Append to the bounded audit log (newest first). `before` and `after` (JSON values) record what a
    settings change replaced, e.g. a course's approval rules."""
    entry: dict[str, Any] = {"at": time.time(), "actor": actor, "action": action, "target": target,
                             "outcome": outcome}
    if detail:
        entry["detail"] = detail
    if before is not None or after is not None:
        entry["before"], entry["after"] = before, after
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.AUDIT(), json.dumps(entry))
        pipe.ltrim(keys.AUDIT(), 0, keys.AUDIT_MAX - 1)
        await pipe.execute()


async def audit_entries(redis: Redis, limit: int = 50) -> list[dict[str, Any]]:
    raw = await redis.lrange(keys.AUDIT(), 0, limit - 1)
    return [json.loads(item) for item in raw]
