"""Run an ASGI app on a free loopback port in a background thread (the shell's Slack stand-in, test fakes).

Starting a server costs little, but stopping one takes about 0.15 s (uvicorn's shutdown waits on
its 0.1 s ticks). A test suite therefore keeps its servers for the whole session: either one per
fake, which the test resets (`NexudusFake.reset()`...), or a `ServerPool` whose servers are lent
to one app after another.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import uvicorn
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """`with ServerThread(app) as base_url:` serves `app` until the block ends."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            timeout_keep_alive=30, backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class AppSwitch:
    """An ASGI app that hands each request to the app mounted now (503 while none is)."""

    def __init__(self, app: ASGIApp | None = None) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            if scope["type"] == "http":
                await PlainTextResponse("nothing is served here now", status_code=503)(scope, receive, send)
            return
        await app(scope, receive, send)


class ServerPool:
    """Loopback servers kept running and lent out: `with pool.serve(app) as base_url:` serves `app`
    on an idle server of the pool (a new one if none is idle) until the block ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[ServerThread, AppSwitch]] = []
        self._all: list[ServerThread] = []

    @contextmanager
    def serve(self, app: ASGIApp) -> Iterator[str]:
        with self._lock:
            entry = self._idle.pop() if self._idle else None
        if entry is None:
            switch = AppSwitch()
            server = ServerThread(switch)
            server.start()
            with self._lock:
                self._all.append(server)
            entry = (server, switch)
        server, switch = entry
        switch.app = app
        try:
            yield server.url
        finally:
            switch.app = None
            with self._lock:
                self._idle.append(entry)

    def close(self) -> None:
        with self._lock:
            servers, self._all, self._idle = self._all, [], []
        for server in servers:
            server.stop()
