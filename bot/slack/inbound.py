"""The door of `POST /slack/events`: size, signature and shape are checked before Bolt sees a request.

- A body over 1 MB is refused (413) before it is read whole: Slack's requests are a few KB.
- The signature is checked here (timestamp within 5 minutes, HMAC of the raw body): a missing,
  malformed or wrong one is refused (401) with one short log line, never the body.
- A signed request that is not what Slack sends (a payload that is not JSON, a command without
  a user) is refused (400), instead of failing deep inside with a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> Response:
        return PlainTextResponse(self.reason, status_code=self.status)


async def read_body(request: Request) -> bytes:
    """The raw body, refused past MAX_BODY without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise Rejected(413, "request too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Rejected(413, "request too large")
    return bytes(body)


def check_signature(verifier: SignatureVerifier, request: Request, body: bytes) -> None:
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        raise Rejected(401, "invalid request")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise Rejected(401, "invalid request")


def check_shape(request: Request, body: bytes) -> None:
    """Refuse what Slack never sends: each kind of request with the fields every listener relies on."""
    content_type = request.headers.get("content-type", "")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    if content_type.startswith("application/json"):
        data = _json(text)
        if data.get("type") == "event_callback" and not isinstance(data.get("event"), dict):
            raise Rejected(400, "event without an event")
        return
    form = {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}
    if "payload" in form:
        payload = _json(form["payload"])
        kind = payload.get("type")
        if not isinstance(kind, str):
            raise Rejected(400, "payload without a type")
        user = payload.get("user")
        if kind in ("block_actions", "view_submission", "block_suggestion", "view_closed") and not (
                isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"]):
            raise Rejected(400, "payload without a user")
        return
    if "command" in form:
        if not form.get("user_id") or not form["command"].startswith("/"):
            raise Rejected(400, "command without a user")
        return
    if "ssl_check" not in form:
        raise Rejected(400, "not a Slack request")


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise Rejected(400, "payload is not JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "payload is not a JSON object")
    return data


async def admit(request: Request, verifier: SignatureVerifier) -> None:
    """Read and check the request (raises Rejected); Bolt then reads the body from Starlette's cache."""
    try:
        body = await read_body(request)
        check_signature(verifier, request, body)
        check_shape(request, body)
    except Rejected as exc:
        log.warning("refused a request to /slack/events: %s (%s)", exc.reason, exc.status)
        raise
    request._body = body  # Starlette's own cache, which the Bolt adapter's `await request.body()` reads
