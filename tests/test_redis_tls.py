"""Redis over TLS with a self-signed certificate, as Heroku Redis serves it: refused by default
with a hint, and used everywhere (store, job queue, budgets) with REDIS_TLS_VERIFY=false."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.core import store
from bot.core.audit import audit, audit_entries
from bot.core.config import Settings
from bot.core.jobs import SaqJobQueue
from bot.core.pacing import Budget, make_storage, smooth_per_seconds
from bot.startup import StartupError, check_redis
from devtools.servers import free_port


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server speaking only TLS, with a certificate nobody signed; its rediss:// URL."""
    if not shutil.which("openssl") or not shutil.which("redis-server"):
        pytest.skip("needs openssl and redis-server")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                               "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                               "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if server.poll() is not None:
                pytest.skip("this redis-server was built without TLS")
            try:
                redis.Redis.from_url(url, ssl_cert_reqs="none").ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def settings(url: str, **values: object) -> Settings:
    return Settings(_env_file=None, redis_url=url, **values)  # type: ignore[call-arg]


async def test_a_self_signed_certificate_is_refused_by_default_with_the_setting_that_fixes_it(tls_redis: str) -> None:
    with pytest.raises(StartupError) as refused:
        await check_redis(settings(tls_redis), attempts=1)
    assert refused.value.exit_code == 1
    assert "certificate could not be verified" in str(refused.value)
    assert "set REDIS_TLS_VERIFY=false" in str(refused.value)


async def test_redis_tls_verify_false_is_used_by_the_store_the_queue_and_the_budgets(tls_redis: str) -> None:
    config = settings(tls_redis, redis_tls_verify=False)
    await check_redis(config)
    client = store.connect(config)
    try:
        await audit(client, actor="U1", action="test", target="tls", outcome="ok")
        assert (await audit_entries(client))[0]["target"] == "tls"
    finally:
        await client.aclose()
    queue = SaqJobQueue(tls_redis, **config.redis_options())
    try:
        await queue.enqueue("bulk", key="bulk:tls", job_id="tls")
        assert await queue.depth() == 1
    finally:
        await queue.aclose()
    budget = Budget(make_storage(tls_redis, **config.redis_options()), "tls-test", smooth_per_seconds(5, 1))
    await budget.acquire(max_wait=1)


def test_the_tls_option_applies_to_rediss_urls_only() -> None:
    assert settings("redis://127.0.0.1:6379/0", redis_tls_verify=False).redis_options() == {}
    assert settings("rediss://example.com:6380/0").redis_options() == {}
    assert settings("rediss://example.com:6380/0", redis_tls_verify=False).redis_options() == {"ssl_cert_reqs": "none"}
