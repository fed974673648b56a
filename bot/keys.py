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
ENROLMENT_LOCK = Key("lock:enrolment:{}:{}", 120, "one change at a time per course+member")
TOKEN_LOCK = Key("lock:nexudus-token", 30, "one token request at a time")

# Approval requests (issue 3)
REQUEST = Key("request:{}", 90 * DAY, "an approval request (hash, one JSON value per field), by request id; "
              "no TTL while it waits, 90 days once decided")
REQUESTS_OPEN = Key("requests:open", None, "sorted set of open request ids by time asked")
REQUEST_OF = Key("request-of:{}", 90 * DAY, "platform enrolment id -> its latest request id (compare-and-set, "
                 "so one wait gets one request and one card)")
DECISION = Key("decision:{}", 90 * DAY, "the claim on a request's decision: first SET NX wins; CLAIM_TTL while "
               "the platform write runs (deleted if it fails, so Retry works), 90 days once done")
CLAIM_TTL = 300
SYNC_CURSOR = Key("sync:cursor", None, "max UpdatedOn seen by the approval sync (platform's clock)")
SYNC_LOCK = Key("lock:sync", 300, "one approval sync at a time across workers")
SYNC_LAST = Key("sync:last", None, "when the approval sync last finished (epoch seconds, our clock)")
SYNC_RECONCILE = Key("sync:reconcile", 6 * 3600, "NX guard: a full re-read of the waiting enrolments at most "
                     "every 6 hours (catches deletions, which an incremental read cannot see)")
COURSE_CACHE = Key("courses:cards", 3600, "course id -> JSON {title, visibility} for approval cards (hash)")
REMINDED = Key("reminded:{}", DAY - 300, "NX guard: at most one reminder a day per waiting request")
HOME_VIEWERS = Key("home:viewers", None, "sorted set of managers who opened App Home, by when (last 7 days, 50 max)")
DECISIONS_RECENT = Key("decisions:recent", None, "the last 50 decided request ids, newest first (list)")
APPROVE_BATCH = Key("approve-all:{}", 3600, "the request ids behind one 'Approve all N' button (JSON list)")

# Bulk jobs (issue 4)
JOB = Key("job:{}", 30 * DAY, "bulk job description and counters (hash)")
JOB_DONE = Key("job:{}:done", 30 * DAY, "hash member key -> outcome JSON, written after each member")
JOB_PLAN = Key("job:{}:plan", 30 * DAY, "the job's people (JSON): who to do, and who could not be resolved")
JOB_INFLIGHT = Key("job:{}:inflight", 30 * DAY, "set of member keys whose write started but is not yet in "
                   "JOB_DONE: after a crash, only these are looked up again on the platform")
JOB_CANCEL = Key("job:{}:cancel", 30 * DAY, "set (to the user id) when a manager cancels the job")
JOB_LOCK = Key("lock:job:{}", 15, "one runner per bulk job at a time; extended every few seconds while it runs")

# Digest (issue 5)
DIGEST_SENT = Key("digest:{}:{}", 3 * DAY, "channel+local date: SET NX guard, value = message ts")
DIGEST_COUNTS = Key("digest:counts:{}", 30 * DAY, "per local date: enrolments/completions counted (hash)")
DIGEST_POSTING = Key("digest:posting:{}:{}", 3 * DAY, "channel+local date: set just before chat.postMessage, "
                     "so a claimer after a crash looks in the channel before posting again")
DIGEST_RETRY = Key("digest:retry:{}:{}", 300, "channel+local date: a failed post waits this long before the next try")
DIGEST_LAST = Key("digest:last:{}", None, "channel -> JSON {date, as_of, ts} of the last digest posted")
DIGEST_CATALOG = Key("digest:catalog", 3600, "course titles and lesson->course map (JSON) for the digest")
DIGEST_LEDGER = Key("digest:ledger", None, "enrolment id -> 'lesson:first-completion-epoch,...' (hash): "
                    "every completed lesson, so course completions need no per-member reads")
DIGEST_LEDGER_META = Key("digest:ledger:meta", None, "hash {synced_until, built_at}: the ledger holds every "
                         "completion created before synced_until (epoch seconds)")
DIGEST_LEDGER_LOCK = Key("lock:digest-ledger", 1800, "one full ledger build at a time")
DIGEST_DONE = Key("digest:done", None, "enrolment id -> epoch a digest first saw it completed ('b' suffix: "
                  "already completed when the first digest took stock); for platforms with participant statuses")
DIGEST_DECISION = Key("digest:decision:{}", 30 * DAY, "enrolment id: first Approve/Block click on a digest wins")
DIGEST_CARD_LOCK = Key("lock:digest-card:{}", 30, "one update at a time of a posted digest message (by ts)")

# Courses and progress (issue 6: /course new, lessons, complete)
COURSE_NEW = Key("course-new:{}", DAY, "team:view id of a /course new form -> 'pending' while its course is being "
                 "created, then 'created:<course id>': one form makes at most one course, however often submitted")
COURSE_CHOICES = Key("course-new:choices:{}", 600, "locations or price plans (JSON) for the form's pickers, "
                     "cached for the type-ahead menus used when there are more than a static menu holds")
COMPLETION_LOCK = Key("lock:completion:{}:{}", 60, "one completion change at a time per enrolment+lesson")
