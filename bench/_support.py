"""Shared plumbing for the benchmarks: run servers in child processes, and measure requests.

The fakes run in their own process so that the process being measured and the bench's
client do not share an interpreter with them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _serve_forever(build: Callable[[], Any], port: int) -> None:
    import uvicorn

    uvicorn.run(build(), host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096)


class ChildServer:
    """An ASGI app built by `build()` (a module-level function) and served in a child process."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.port = free_port()
        self.process = mp.get_context("spawn").Process(target=_serve_forever, args=(build, self.port), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ChildServer:
        self.process.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)


class Command:
    """A `python -m ...` child process, stopped on exit; `cwd` (first on its sys.path) picks the checkout."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None, cwd: str | None = None) -> None:
        self.args, self.env, self.port, self.cwd = args, env, port, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Command:
        self.process = subprocess.Popen([sys.executable, *self.args], env={**os.environ, **self.env},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.cwd)
        if self.port:
            try:
                wait_for_port(self.port)
            except RuntimeError:
                self.process.kill()
                raise RuntimeError((self.process.stderr.read() if self.process.stderr else b"").decode()) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
