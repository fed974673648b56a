"""Every Redis key the bot uses: its purpose and its lifetime, in one place.

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
ENROLMENT_LOCK = Key("lock:enrolment:{}:{}", 30, "one change at a time per course+member")
TOKEN_LOCK = Key("lock:nexudus-token", 30, "one token request at a time")

# Approval requests (issue 3)
REQUEST = Key("request:{}", 90 * DAY, "a pending approval request (JSON), by request id")
REQUESTS_OPEN = Key("requests:open", None, "sorted set of open request ids by time asked")
DECISION = Key("decision:{}", 90 * DAY, "the claim on a request's decision: first SET NX wins")
SYNC_CURSOR = Key("sync:cursor", None, "max UpdatedOn seen by the approval sync (platform's clock)")
SYNC_LOCK = Key("lock:sync", 300, "one approval sync at a time across workers")

# Bulk jobs (issue 4)
JOB = Key("job:{}", 30 * DAY, "bulk job description and counters (hash)")
JOB_DONE = Key("job:{}:done", 30 * DAY, "hash member key -> outcome JSON, written after each member")

# Digest (issue 5)
DIGEST_SENT = Key("digest:{}:{}", 3 * DAY, "channel+local date: SET NX guard, value = message ts")
DIGEST_COUNTS = Key("digest:counts:{}", 30 * DAY, "per local date: enrolments/completions counted (hash)")
