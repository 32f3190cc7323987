"""SASL/OAUTHBEARER token providers for aiokafka (and Faust, which passes them to aiokafka).

aiokafka asks an ``AbstractTokenProvider`` for a token on every connection. Three sources, from the settings:
a static token (``DRIFTWARDEN_KAFKA_OAUTH_TOKEN``), a file re-read when it changes (a token a sidecar
refreshes, ``DRIFTWARDEN_KAFKA_OAUTH_TOKEN_FILE``), or the OAuth 2.0 client-credentials grant against an OIDC
token endpoint (``DRIFTWARDEN_KAFKA_OAUTH_TOKEN_ENDPOINT`` with client id, secret and scope), cached until
shortly before it expires. The grant is one form POST, made with aiohttp (authlib's async client needs httpx,
which the project does not install). Tokens and secrets never appear in errors or in ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from aiokafka.abc import AbstractTokenProvider

from stream.config import Settings
from stream.contracts.redact import safe_url
from stream.errors import UserError

REFRESH_MARGIN_SECONDS = 60.0  # fetch a new token this long before the old one expires
DEFAULT_LIFETIME_SECONDS = 300.0  # when the endpoint does not say (no expires_in)


class StaticTokenProvider(AbstractTokenProvider):
    """One token from the settings."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=***)"


class FileTokenProvider(AbstractTokenProvider):
    """The token in a file (surrounding whitespace stripped), re-read when the file's modification time moves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[float, str] | None = None

    async def token(self) -> str:
        try:
            mtime = self.path.stat().st_mtime
            if self._cached is None or self._cached[0] != mtime:
                self._cached = (mtime, self.path.read_text().strip())
        except OSError as exc:
            raise UserError(f"cannot read the Kafka OAuth token file DRIFTWARDEN_KAFKA_OAUTH_TOKEN_FILE={self.path} "
                            f"({exc.strerror or type(exc).__name__})") from None
        if not self._cached[1]:
            raise UserError(f"the Kafka OAuth token file {self.path} is empty")
        return self._cached[1]

    def __repr__(self) -> str:
        return f"FileTokenProvider(path={str(self.path)!r})"


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """OAuth 2.0 client credentials (RFC 6749 4.4): POST ``grant_type=client_credentials`` (and ``scope``) to
    the token endpoint with the client id and secret as HTTP basic auth; the ``access_token`` is reused until
    ``REFRESH_MARGIN_SECONDS`` before ``expires_in`` runs out."""

    def __init__(self, endpoint: str, client_id: str, client_secret: str, scope: str = "",
                 timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.fetches = 0

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:  # a lock belongs to one event loop
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:  # one fetch when several connections ask at once
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = await self._fetch()
                self._expires = time.monotonic() + max(lifetime - REFRESH_MARGIN_SECONDS, lifetime / 2)
        return self._token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        where = f"the OAuth token endpoint {safe_url(self.endpoint)}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session, \
                    session.post(self.endpoint, data=form, headers={"Authorization": self._basic_auth()}) as response:
                body: Any = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UserError(f"cannot get a Kafka OAuth token from {where} ({type(exc).__name__}): check "
                            "DRIFTWARDEN_KAFKA_OAUTH_TOKEN_ENDPOINT") from None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            reason = body.get("error", "") if isinstance(body, dict) else ""
            raise UserError(f"{where} refused client {self.client_id!r} (HTTP {status}"
                            f"{', ' + str(reason)[:100] if reason else ''}): check DRIFTWARDEN_KAFKA_OAUTH_CLIENT_ID, "
                            "_CLIENT_SECRET and _SCOPE")
        lifetime = body.get("expires_in")
        return body["access_token"], float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 \
            else DEFAULT_LIFETIME_SECONDS

    def _basic_auth(self) -> str:
        """RFC 6749 2.3.1: id and secret form-encoded, then HTTP basic auth."""
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self._secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def __repr__(self) -> str:
        return (f"ClientCredentialsTokenProvider(endpoint={safe_url(self.endpoint)!r}, "
                f"client_id={self.client_id!r}, secret=***)")


_providers: dict[tuple[str, ...], AbstractTokenProvider] = {}


def token_provider(s: Settings) -> AbstractTokenProvider:
    """The provider of the settings (one per process and configuration, so every client reuses its token)."""
    key = (s.kafka_oauth_token.get_secret_value(), str(s.kafka_oauth_token_file or ""),
           s.kafka_oauth_token_endpoint or "", s.kafka_oauth_client_id,
           s.kafka_oauth_client_secret.get_secret_value(), s.kafka_oauth_scope)
    found = _providers.get(key)
    if found is None:
        found = _providers[key] = _provider(s)
    return found


def _provider(s: Settings) -> AbstractTokenProvider:
    sources = [name for name, on in (("DRIFTWARDEN_KAFKA_OAUTH_TOKEN", s.kafka_oauth_token.get_secret_value()),
                                     ("DRIFTWARDEN_KAFKA_OAUTH_TOKEN_FILE", s.kafka_oauth_token_file),
                                     ("DRIFTWARDEN_KAFKA_OAUTH_TOKEN_ENDPOINT", s.kafka_oauth_token_endpoint)) if on]
    if len(sources) != 1:
        raise UserError("DRIFTWARDEN_KAFKA_SASL_MECHANISM=OAUTHBEARER needs exactly one of "
                        "DRIFTWARDEN_KAFKA_OAUTH_TOKEN, _TOKEN_FILE or _TOKEN_ENDPOINT"
                        + (f" (set: {', '.join(sources)})" if sources else ""))
    if s.kafka_oauth_token_endpoint:
        if not s.kafka_oauth_client_id or not s.kafka_oauth_client_secret.get_secret_value():
            raise UserError("DRIFTWARDEN_KAFKA_OAUTH_TOKEN_ENDPOINT needs DRIFTWARDEN_KAFKA_OAUTH_CLIENT_ID and "
                            "DRIFTWARDEN_KAFKA_OAUTH_CLIENT_SECRET")
        return ClientCredentialsTokenProvider(s.kafka_oauth_token_endpoint, s.kafka_oauth_client_id,
                                              s.kafka_oauth_client_secret.get_secret_value(), s.kafka_oauth_scope)
    if s.kafka_oauth_token_file:
        return FileTokenProvider(s.kafka_oauth_token_file)
    return StaticTokenProvider(s.kafka_oauth_token.get_secret_value())
