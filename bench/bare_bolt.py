"""The baseline for bench.ack_latency: a Bolt AsyncApp that acks, served like coursebot.

With `BARE_BOLT_ANSWER_AFTER=<seconds>` it also answers through the response URL that long after
the ack: one round trip to a platform that takes that long, and nothing else (the answer floor).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build() -> Starlette:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    answer_after = float(os.environ.get("BARE_BOLT_ANSWER_AFTER") or 0)

    @app.command("/course")
    async def course(ack: Any, respond: Any) -> None:
        await ack()
        if answer_after > 0:
            await asyncio.sleep(answer_after)
            await respond(text="done", response_type="ephemeral")

    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, backlog=4096)
