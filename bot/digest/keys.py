"""Redis keys of the daily digest."""

from __future__ import annotations

from bot.core.keys import DAY, Key

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
DIGEST_CARD_LOCK = Key("lock:digest-card:{}", 30, "one update at a time of a posted digest message (by ts)")
