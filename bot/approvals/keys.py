"""Redis keys of approval requests, their decisions and the sync."""

from __future__ import annotations

from bot.core.keys import DAY, Key

REQUEST = Key("request:{}", 90 * DAY, "an approval request (hash, one JSON value per field), by request id; "
              "no TTL while it waits, 90 days once decided")
REQUESTS_OPEN = Key("requests:open", None, "sorted set of open request ids by time asked")
REQUEST_OF = Key("request-of:{}", 90 * DAY, "platform enrolment id -> its latest request id (compare-and-set, "
                 "so one wait gets one request and one card)")
REQUEST_FOR = Key("request-for:{}:{}", 90 * DAY, "course id + member id -> the latest request id of that "
                  "enrolment, so `/course approve|block` on a waiting member decides its request (and card)")
ACCESS_CLAIM = Key("claim:access:{}:{}", 15, "course id + member id: the claim of the one decision being made on "
                   "that enrolment (JSON {token, actor, action, at}); renewed while the platform write runs, so a "
                   "killed process frees it within seconds (bot.core.lease)")
DECISION_RECORD = Key("decision-record:{}", 90 * DAY, "enrolment id -> the last decision the bot made on it (JSON: "
                      "who, when, from where, reason): what cards, Home, the digest and attribution read")
APPROVALS_GIVEN = Key("approvals-given:{}", 90 * DAY, "request id -> hash user id -> epoch: who approved it so far "
                      "(a quorum of 2 or 3 writes the platform when the last one lands)")
SYNC_CURSOR = Key("sync:cursor", None, "max UpdatedOn seen by the approval sync (platform's clock)")
SYNC_LOCK = Key("lock:sync", 300, "one approval sync at a time across workers")
SYNC_LAST = Key("sync:last", None, "when the approval sync last finished (epoch seconds, our clock)")
SYNC_RECONCILE = Key("sync:reconcile", 6 * 3600, "NX guard: a full re-read of the waiting enrolments at most "
                     "every 6 hours (catches deletions, which an incremental read cannot see)")
COURSE_CACHE = Key("courses:cards", 3600, "course id -> JSON {title, visibility} for approval cards (hash)")
REMINDED = Key("reminded:{}", DAY - 300, "NX guard: at most one reminder a day per waiting request")
ESCALATED = Key("escalated:{}", 90 * DAY, "NX guard: a request waiting past COURSEBOT_ESCALATE_HOURS is raised to "
                "every manager once (removed again only if Slack refused the message)")
CARDS_SUMMARY = Key("cards-summary:{}", DAY, "NX guard: one 'N new requests are waiting' line per run of new "
                    "cards, by the run's oldest request id")
HOME_VIEWERS = Key("home:viewers", None, "sorted set of managers who opened App Home, by when (last 7 days, 50 max)")
DECISIONS_RECENT = Key("decisions:recent", None, "the last 50 decided request ids, newest first (list)")
APPROVE_BATCH = Key("approve-all:{}", 3600, "the request ids behind one 'Approve all N' button (JSON list)")

# Approval rules (bot.approvals.rules): managers' settings, kept until changed; copied to the approvals channel.
RULES = Key("rules", None, "hash: course id (or '*' for every course) -> JSON of its approval rules (approvers, "
            "auto-approve rules, quorum); each change is audited and a copy of the whole book is posted to the "
            "approvals channel, from where it is read back after Redis loses its data")
RULES_LOCK = Key("lock:rules", 30, "one rule change at a time (read, write, audit, copy to Slack in order)")
RULES_CHECKED = Key("rules:checked", None, "set once the rules were looked for in the approvals channel since "
                    "Redis started empty (10 minutes only, when Slack could not be read, so it is tried again)")
RULES_COPY_DUE = Key("rules:copy-due", None, "set when the copy of the rules could not be posted to Slack; the "
                     "next sync posts it")
RULE_RETRY = Key("rules:retry:{}", 3600, "request id: NX guard, an auto-approval the platform failed is tried "
                 "again at most once an hour")
RULE_APPROVED = Key("rules:approved", 15 * DAY, "sorted set of JSON {request, member, course, rule} by time: what "
                    "the auto-approve rules approved (for the digest); entries older than 15 days are dropped")
CARD_LOCK = Key("lock:card:{}", 10, "request id: one update of its card at a time, so many clicks at once "
                "update it once")
