"""The shape of every Redis key (`Key`: pattern, lifetime, purpose) and the core's own keys.

Each feature keeps its keys beside its code: `bot/approvals/keys.py`, `bot/bulk/keys.py`,
`bot/digest/keys.py`, `bot/courses/keys.py`, `bot/platforms/keys.py` (the platform read cache).
`ALL_KEY_MODULES` names them, so one look lists them all.

All keys live under one prefix (`coursebot:`) so a shared Redis can be inspected or
flushed for the bot alone (`redis-cli --scan --pattern 'coursebot:*'`).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "coursebot"

DAY = 24 * 3600


@dataclass(frozen=True)
class Key:
    pattern: str
    ttl: int | None  # seconds; None = kept until removed
    purpose: str

    def __call__(self, *parts: object) -> str:
        return f"{PREFIX}:" + self.pattern.format(*parts)


# Identity and permissions
LINK = Key("link:{}", None, "Slack user id -> platform member (id or email) recorded by /course link")
SLACK_EMAIL = Key("slack:email:{}", 3600, "cache of a Slack user's profile email")
USERGROUP = Key("slack:usergroup:{}", 300, "cache of a user group's members (JSON list)")
AUDIT = Key("audit", None, "audit log, newest first, trimmed to AUDIT_MAX entries")
AUDIT_MAX = 10_000

# Locks (redis-py Lock: SET NX PX with a token; released by compare-and-delete)
ENROLMENT_LOCK = Key("lock:enrolment:{}:{}", 120, "one change at a time per course+member")
TOKEN_LOCK = Key("lock:nexudus-token", 30, "one token request at a time")

# Operations (bot/health.py, bot/doctor.py)
WORKER_BEAT_SECONDS = 20  # how often each worker writes its heartbeat
WORKER_SEEN_SECONDS = 120  # a worker whose last beat is older is counted as gone
WORKERS = Key("workers", WORKER_SEEN_SECONDS, "worker heartbeats (sorted set): member host:pid, score = unix time "
              "of its last beat; /healthz and /metrics count the members seen within WORKER_SEEN_SECONDS")
DOCTOR_PROBE = Key("doctor:probe:{}", 60, "written, read back and deleted by `coursebot doctor` to prove Redis "
                   "takes writes")

# Posting to Slack (bot.slack.poster). The pace itself is kept by `limits` under coursebot:limits:
# slack:post:<channel>, slack:update:<channel> and slack:update (moving windows).
SLACK_HOLD = Key("slack:hold:{}:{}", 300, "post or update + channel ('*': the workspace): Slack answered 429, "
                 "so every process waits out its Retry-After (this key's lifetime, at most 300 s)")


ALL_KEY_MODULES = ("bot.core.keys", "bot.approvals.keys", "bot.bulk.keys", "bot.digest.keys", "bot.courses.keys",
                   "bot.platforms.keys")
