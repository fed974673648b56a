"""One retry policy for every platform call (tenacity).

Retried: timeouts and connection errors, 5xx, and throttling (Nexudus answers 409,
others 429) after the `Retry-After` the server asks for. Everything else is returned to
the adapter, which turns it into a sentence. After the last try, PlatformUnavailable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bot.core import metrics
from bot.platforms.base import PlatformUnavailable

log = logging.getLogger(__name__)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verified TLS context every platform client shares (httpx's defaults: certifi, or
    SSL_CERT_FILE/SSL_CERT_DIR). httpx would load the CA bundle again for each client, tens of
    milliseconds of CPU each time a runtime starts."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    throttle_statuses: frozenset[int] = frozenset({429})


class Lane(StrEnum):
    """The kind of a platform request, for `Lanes`."""

    LIST = "list"  # a collection read page by page: may be long (whole tables, many pages)
    READ = "read"  # one record, or a filtered look-up that finds a few
    WRITE = "write"


@dataclass(frozen=True)
class Lanes:
    """How many requests of each kind one adapter keeps in flight at once.

    The bound protects the process: requests queued inside httpx's connection pool spend CPU on
    every pool event (encode/httpx#3215), which slows the acknowledgements Slack waits for, while
    a request waiting on a semaphore costs nothing. One bound per kind means slow lists cannot
    hold every slot: a look-up or a write always has its own. The token request is apart (one at
    a time, under the adapter's own lock), so the pool holds `total + 1` connections.
    """

    list: int = 4
    read: int = 4
    write: int = 2

    @property
    def total(self) -> int:
        return self.list + self.read + self.write

    def semaphores(self) -> dict[Lane, asyncio.Semaphore]:
        return {Lane.LIST: asyncio.Semaphore(max(1, self.list)), Lane.READ: asyncio.Semaphore(max(1, self.read)),
                Lane.WRITE: asyncio.Semaphore(max(1, self.write))}


class OutcomeUnknown(PlatformUnavailable):
    """A write timed out or failed on the server side: it may or may not have been applied.

    `reason`: "timeout", "connection error" or "HTTP <status>"."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def may_still_land(self) -> bool:
        """The request may still be running at the platform (no answer, or a gateway gave up waiting),
        so a look right now cannot prove it was not applied."""
        return self.reason in ("timeout", "connection error", "HTTP 502", "HTTP 504")


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class RetryingSender:
    """Sends a request built by `make_request`, again and again until it is not retryable."""

    def __init__(self, platform: str, policy: RetryPolicy) -> None:
        self.platform = platform
        self.policy = policy

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return float(min(exc.retry_after, self.policy.max_delay)) + random.uniform(0, 0.25)
        backoff: float = self.policy.base_delay * 2.0 ** (state.attempt_number - 1)
        return min(backoff, self.policy.max_delay) * random.uniform(0.5, 1.0)

    async def send(
        self, make_request: Callable[[], Awaitable[httpx.Response]], what: str, *, idempotent: bool = True
    ) -> httpx.Response:
        """Send with retries. A non-idempotent request (a create) is retried only when the
        server said it did nothing (throttling); other failures raise OutcomeUnknown so the
        caller can look before it tries again."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._once(make_request, what)
                    except _Retryable as exc:
                        if not idempotent and exc.reason != "throttled":
                            raise OutcomeUnknown(
                                f"{self.platform} did not confirm the change ({exc.reason}).", exc.reason
                            ) from None
                        raise
        except _Retryable as exc:
            raise PlatformUnavailable(
                f"{self.platform} did not answer properly ({exc.reason}) after "
                f"{self.policy.attempts} tries; nothing was changed by this attempt. Try again in a minute."
            ) from None
        raise AssertionError("unreachable")

    async def _once(self, make_request: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
        """One attempt; every attempt is counted in coursebot_platform_requests_total."""
        try:
            response = await make_request()
        except httpx.TimeoutException as exc:
            self._count(_method(exc, what), "error")
            log.warning("%s: %s timed out", self.platform, what)
            raise _Retryable("timeout") from None
        except httpx.TransportError as exc:
            self._count(_method(exc, what), "error")
            log.warning("%s: %s failed: %s", self.platform, what, type(exc).__name__)
            raise _Retryable("connection error") from None
        self._count(_method(response, what), response.status_code)
        if response.status_code in self.policy.throttle_statuses:
            log.info("%s: %s throttled (%s), waiting", self.platform, what, response.status_code)
            raise _Retryable("throttled", _retry_after(response) or 1.0)
        if response.status_code >= 500:
            log.warning("%s: %s answered %s", self.platform, what, response.status_code)
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        return response

    def _count(self, method: str, status: int | str) -> None:
        metrics.observe_platform_request(self.platform.lower(), method, status)


def _method(outcome: httpx.Response | httpx.TransportError, what: str) -> str:
    """The HTTP method of the request behind a response or a transport error."""
    try:
        return outcome.request.method
    except RuntimeError:  # httpx raises it when no request is attached; `what` starts with the method
        return what.split(" ", 1)[0].upper()
