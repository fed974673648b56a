"""The uvicorn server `coursebot serve` runs, in HTTP mode and in Socket Mode alike.

Two differences from `uvicorn.run`: uvicorn's own log lines go through the bot's handler
(LOG_FORMAT, secrets redacted) instead of uvicorn's, and `on_started` is called once the port
is bound, so "serving" is never logged by a process that could not bind its port.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import uvicorn


class WebServer(uvicorn.Server):
    def __init__(self, app: Any, *, port: int, host: str = "0.0.0.0",
                 on_started: Callable[[], None] | None = None) -> None:
        super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None,
                                        access_log=False, backlog=2048))
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # runs the app's lifespan, then binds the port (or logs why not and exits)
        if self.started and self.on_started is not None:
            self.on_started()
