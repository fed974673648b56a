"""Every Prometheus metric the bot exports, in one registry: `GET /metrics` on `serve`
(and `coursebot worker --metrics-port N`) shows exactly these.

The registry is the bot's own, not prometheus_client's global default, so nothing else in the
process (libraries, tests) adds to it. Each metric is counted in the process where the thing
happens; Prometheus adds up the processes. What is read from Redis (queue depth, workers seen)
is read at scrape time, so it is the same from every process.

Label values are few and known (command and action ids, Slack's error codes, HTTP statuses), never
user input. Outcomes of commands and clicks: `ok`, `refused` (not allowed), `invalid` (bad input,
nothing changed), `error` (the platform or Slack failed).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

COMMANDS = Counter("coursebot_commands", "Slash commands handled, by /course subcommand and outcome.",
                   ["command", "outcome"], registry=REGISTRY)
CLICKS = Counter("coursebot_clicks", "Button clicks and other block actions, by action id and outcome.",
                 ["action", "outcome"], registry=REGISTRY)
ACK_SECONDS = Histogram("coursebot_ack_seconds", "From a Slack request's arrival to its acknowledgement "
                        "(Slack gives up after 3 s).", ["kind"], registry=REGISTRY,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0))
ANSWER_SECONDS = Histogram("coursebot_answer_seconds", "From a Slack request's arrival to the answer the user "
                           "sees (after the ack: platform work included).", ["kind"], registry=REGISTRY,
                           buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
PLATFORM_REQUESTS = Counter("coursebot_platform_requests", "HTTP requests to the course platform, every attempt "
                            "(retries included), by status; 409/429 are throttling, 'error' means no response.",
                            ["platform", "method", "status"], registry=REGISTRY)
SLACK_API_ERRORS = Counter("coursebot_slack_api_errors", "Slack Web API calls that failed after slack_sdk's "
                           "retries, by method and Slack's error code ('connection_error': no answer).",
                           ["method", "error"], registry=REGISTRY)
JOBS = Counter("coursebot_jobs", "Queued background jobs run (each attempt), by kind and outcome "
               "(ok, error, interrupted).", ["kind", "outcome"], registry=REGISTRY)
PERIODIC = Counter("coursebot_periodic_runs", "Runs of periodic tasks (approval sync, digest), by task and outcome.",
                   ["task", "outcome"], registry=REGISTRY)

# Read from Redis at scrape time by `serve` only (the same from every process, so one exports them).
SHARED = CollectorRegistry(auto_describe=True)
QUEUE_DEPTH = Gauge("coursebot_queue_depth", "Jobs waiting in the Redis queue, not yet taken by a worker "
                    "(0 with the embedded store, whose jobs start at once).", registry=SHARED)
WORKERS_SEEN = Gauge("coursebot_workers_seen", "Workers whose heartbeat is in Redis (seen in the last 2 minutes).",
                     registry=SHARED)


def observe_command(name: str, outcome: str, ack_seconds: float | None = None) -> None:
    """One /course subcommand handled (`name` as in the grammar: enrol, approve, …)."""
    COMMANDS.labels(name, outcome).inc()
    if ack_seconds is not None:
        ACK_SECONDS.labels("command").observe(ack_seconds)


def observe_click(action: str, outcome: str, ack_seconds: float | None = None) -> None:
    """One block action (`action`: the action id, e.g. approval_approve)."""
    CLICKS.labels(action, outcome).inc()
    if ack_seconds is not None:
        ACK_SECONDS.labels("click").observe(ack_seconds)


def observe_ack(kind: str, seconds: float) -> None:
    """An acknowledgement of another kind of request (view submission, options, event)."""
    ACK_SECONDS.labels(kind).observe(seconds)


def observe_answer(kind: str, seconds: float) -> None:
    """The user's answer was sent (`kind`: command, click, view)."""
    ANSWER_SECONDS.labels(kind).observe(seconds)


def observe_platform_request(platform: str, method: str, status: int | str) -> None:
    PLATFORM_REQUESTS.labels(platform, method, str(status)).inc()


def observe_slack_error(method: str, error: str) -> None:
    SLACK_API_ERRORS.labels(method, error).inc()


def observe_job(kind: str, outcome: str) -> None:
    JOBS.labels(kind, outcome).inc()


def observe_periodic(task: str, outcome: str) -> None:
    PERIODIC.labels(task, outcome).inc()


def exposition(*, shared: bool = False) -> bytes:
    """This process's metrics in Prometheus text format; `shared`: with those read from Redis too."""
    text = generate_latest(REGISTRY)
    return text + generate_latest(SHARED) if shared else text


def serve_on(port: int) -> None:
    """Export this process's metrics on `port` (a thread): for `coursebot worker --metrics-port`."""
    start_http_server(port, registry=REGISTRY)
