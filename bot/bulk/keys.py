"""Redis keys of bulk jobs."""

from __future__ import annotations

from bot.core.keys import DAY, Key

JOB = Key("job:{}", 30 * DAY, "bulk job description and counters (hash)")
JOB_DONE = Key("job:{}:done", 30 * DAY, "hash member key -> outcome JSON, written after each member")
JOB_PLAN = Key("job:{}:plan", 30 * DAY, "the job's people (JSON): who to do, and who could not be resolved")
JOB_INFLIGHT = Key("job:{}:inflight", 30 * DAY, "set of member keys whose write started but is not yet in "
                   "JOB_DONE: after a crash, only these are looked up again on the platform")
JOB_CANCEL = Key("job:{}:cancel", 30 * DAY, "set (to the user id) when a manager cancels the job")
JOB_LOCK = Key("lock:job:{}", 15, "one runner per bulk job at a time; extended every few seconds while it runs "
               "(lives JobTimings.lock_seconds: 15 s unless COURSEBOT_JOB_HEARTBEAT_SECONDS is changed)")
