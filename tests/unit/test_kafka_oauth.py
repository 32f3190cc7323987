"""SASL/OAUTHBEARER: the token providers (static, file, OIDC client credentials against a local token
endpoint), the client options every aiokafka client and Faust get, one-line errors, and secrets masked."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.errors import UserError
from stream.kafka.clients import unreachable
from stream.kafka.oauth import (
    ClientCredentialsTokenProvider,
    FileTokenProvider,
    StaticTokenProvider,
    token_provider,
)
from stream.kafka.security import client_options, describe, faust_credentials

SECRET = "client-secret-value"


def oauth(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"kafka_bootstrap_servers": "kafka.example:9093", "kafka_security_protocol": "SASL_SSL",
                              "kafka_sasl_mechanism": "OAUTHBEARER", **overrides}
    return Settings(**values)


async def test_a_static_token_reaches_every_aiokafka_client_and_faust() -> None:
    s = oauth(kafka_security_protocol="SASL_PLAINTEXT", kafka_oauth_token="tok-1")
    options = client_options(s)
    assert options["sasl_mechanism"] == "OAUTHBEARER" and "sasl_plain_username" not in options
    provider = options["sasl_oauth_token_provider"]
    assert isinstance(provider, StaticTokenProvider) and await provider.token() == "tok-1"
    assert client_options(s)["sasl_oauth_token_provider"] is provider  # one provider: its token is reused
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **options)  # aiokafka accepts the options
    await producer.stop()
    credentials = faust_credentials(s)
    assert isinstance(credentials, faust.OAuthCredentials) and credentials.oauth_cb is provider
    assert client_options(s, embedded=True) == {}  # the embedded broker stays PLAINTEXT


def test_over_tls_faust_gets_the_tls_context_too() -> None:
    credentials = faust_credentials(oauth(kafka_oauth_token="tok-1"))
    assert isinstance(credentials, faust.OAuthCredentials) and credentials.ssl_context is not None
    assert str(credentials.protocol.value) == "SASL_SSL"


@pytest.mark.parametrize(("overrides", "message"), [
    ({}, "needs exactly one of DRIFTWARDEN_KAFKA_OAUTH_TOKEN, _TOKEN_FILE or _TOKEN_ENDPOINT"),
    ({"kafka_oauth_token": "t", "kafka_oauth_token_file": "/tmp/x"},
     "(set: DRIFTWARDEN_KAFKA_OAUTH_TOKEN, DRIFTWARDEN_KAFKA_OAUTH_TOKEN_FILE)"),
    ({"kafka_oauth_token_endpoint": "https://idp.example/token"},
     "needs DRIFTWARDEN_KAFKA_OAUTH_CLIENT_ID and DRIFTWARDEN_KAFKA_OAUTH_CLIENT_SECRET"),
])
def test_incomplete_oauth_settings_are_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as raised:
        client_options(oauth(**overrides))
    assert message in str(raised.value) and "\n" not in str(raised.value)


async def test_a_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    os.utime(path, (1_000_000, 1_000_000))
    provider = token_provider(oauth(kafka_oauth_token_file=path))
    assert isinstance(provider, FileTokenProvider) and await provider.token() == "first"
    path.write_text("second")
    os.utime(path, (1_000_100, 1_000_100))
    assert await provider.token() == "second"
    path.write_text("")
    os.utime(path, (1_000_200, 1_000_200))
    with pytest.raises(UserError, match="is empty"):
        await provider.token()
    with pytest.raises(UserError, match=r"cannot read the Kafka OAuth token file .*missing"):
        await FileTokenProvider(tmp_path / "missing").token()


class TokenEndpoint:
    """A local OIDC token endpoint (client credentials), counting the grants it issued."""

    def __init__(self, expires_in: int | None = 3600) -> None:
        self.issued = 0
        self.forms: list[dict[str, str]] = []
        self.expires_in = expires_in

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        expected = "Basic " + base64.b64encode(f"c1:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        await asyncio.sleep(0.05)  # concurrent callers overlap here
        self.issued += 1
        body: dict[str, Any] = {"access_token": f"at-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, TokenEndpoint]]:
    state = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/oauth2/token", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/oauth2/token")), state
    finally:
        await server.close()


async def test_client_credentials_are_exchanged_once_and_refreshed_before_expiry(
        endpoint: tuple[str, TokenEndpoint]) -> None:
    url, state = endpoint
    provider = token_provider(oauth(kafka_oauth_token_endpoint=url, kafka_oauth_client_id="c1",
                                    kafka_oauth_client_secret=SECRET, kafka_oauth_scope="kafka"))
    assert isinstance(provider, ClientCredentialsTokenProvider)
    tokens = await asyncio.gather(*(provider.token() for _ in range(5)))  # five connections at once
    assert tokens == ["at-1"] * 5 and state.issued == 1
    assert state.forms[0] == {"grant_type": "client_credentials", "scope": "kafka"}
    assert await provider.token() == "at-1" and state.issued == 1  # cached
    provider._expires = 0.0  # as if the refresh margin before expiry was reached
    assert await provider.token() == "at-2" and state.issued == 2


async def test_a_short_lived_token_without_margin_is_kept_half_its_life(endpoint: tuple[str, TokenEndpoint]) -> None:
    url, state = endpoint
    state.expires_in = 30  # shorter than the 60 s refresh margin
    provider = ClientCredentialsTokenProvider(url, "c1", SECRET)
    before = time.monotonic()
    await provider.token()
    assert 14 < provider._expires - before < 16


async def test_refused_or_unreachable_token_endpoints_are_one_line_without_the_secret(
        endpoint: tuple[str, TokenEndpoint]) -> None:
    url, _ = endpoint
    with pytest.raises(UserError) as refused:
        await ClientCredentialsTokenProvider(url, "c1", "wrong-" + SECRET).token()
    assert "refused client 'c1' (HTTP 401, invalid_client)" in str(refused.value)
    with pytest.raises(UserError) as unreachable_endpoint:
        await ClientCredentialsTokenProvider("http://127.0.0.1:1/token", "c1", SECRET, timeout=2).token()
    assert "cannot get a Kafka OAuth token from the OAuth token endpoint" in str(unreachable_endpoint.value)
    for error in (refused.value, unreachable_endpoint.value):
        assert SECRET not in str(error) and "\n" not in str(error)


def test_oauth_secrets_are_masked_in_config_banner_errors_and_reprs() -> None:
    s = oauth(kafka_oauth_token_endpoint="https://user:pw@idp.example/token", kafka_oauth_client_id="c1",
              kafka_oauth_client_secret=SECRET)
    shown = str(s.masked()) + str(describe(s)) + repr(token_provider(s))
    assert SECRET not in shown and "pw@" not in shown
    assert s.masked()["kafka_oauth_client_secret"] == "***"
    assert describe(s)["sasl_mechanism"] == "OAUTHBEARER" and describe(s)["oauth_client_id"] == "c1"
    static = oauth(kafka_oauth_token="tok-secret")
    assert "tok-secret" not in str(static.masked()) + str(describe(static)) + repr(token_provider(static))
    assert describe(static)["oauth_token"] == "***"
    error = unreachable("kafka.example:9093", TimeoutError(), client_options(static))
    assert "OAUTHBEARER" in str(error) and "DRIFTWARDEN_KAFKA_OAUTH_" in str(error) and "tok-secret" not in str(error)
