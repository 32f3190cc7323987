"""Kafka security settings turned into client options: one place builds the aiokafka keyword arguments (TLS
context, SASL) and the Faust broker credentials, so every client the project starts connects the same way."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from stream.config import Settings
from stream.contracts.redact import safe_url
from stream.errors import UserError

if TYPE_CHECKING:
    import faust


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL / SASL_SSL (CA file, client certificate and key, hostname check), else None."""
    if s.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
        path = getattr(s, name)
        if path is not None and not path.is_file():
            raise UserError(f"DRIFTWARDEN_{name.upper()}={path} is not a readable file")
    if s.kafka_ssl_keyfile is not None and s.kafka_ssl_certfile is None:
        raise UserError("DRIFTWARDEN_KAFKA_SSL_KEYFILE is set without DRIFTWARDEN_KAFKA_SSL_CERTFILE")
    try:
        context = create_ssl_context(
            cafile=s.kafka_ssl_cafile, certfile=s.kafka_ssl_certfile, keyfile=s.kafka_ssl_keyfile,
            password=s.kafka_ssl_key_password.get_secret_value() or None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UserError(f"cannot load the Kafka TLS files (CA, client certificate or key): {exc}") from None
    context.check_hostname = s.kafka_ssl_check_hostname
    return context


def _require_credentials(s: Settings) -> None:
    if s.kafka_sasl_mechanism == "OAUTHBEARER":
        return  # stream.kafka.oauth.token_provider checks its own settings
    if not s.kafka_sasl_username or not s.kafka_sasl_password.get_secret_value():
        raise UserError(f"DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs "
                        "DRIFTWARDEN_KAFKA_SASL_USERNAME and DRIFTWARDEN_KAFKA_SASL_PASSWORD")


def client_options(s: Settings, embedded: bool = False) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin) to reach the configured Kafka.

    Empty for PLAINTEXT and for the embedded broker (``embedded``), so the default path is unchanged.

    >>> client_options(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
    ...                         kafka_sasl_username="u", kafka_sasl_password="p"))["sasl_mechanism"]
    'SCRAM-SHA-256'
    """
    protocol = s.kafka_security_protocol
    if embedded or protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(s)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL") and s.kafka_sasl_mechanism == "OAUTHBEARER":
        from stream.kafka.oauth import token_provider

        options.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=token_provider(s))
    elif protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        _require_credentials(s)
        options.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                       sasl_plain_password=s.kafka_sasl_password.get_secret_value())
    return options


def faust_credentials(s: Settings, embedded: bool = False,
                      ) -> faust.SASLCredentials | faust.SSLCredentials | faust.OAuthCredentials | None:
    """The same settings as Faust ``broker_credentials`` (None for PLAINTEXT or the embedded broker)."""
    import faust  # here, so that the SDK (which imports this module) does not load Faust

    options = client_options(s, embedded)
    if not options:
        return None
    if "sasl_mechanism" not in options:
        return faust.SSLCredentials(options["ssl_context"])
    if options["sasl_mechanism"] == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=options["sasl_oauth_token_provider"],
                                      ssl_context=options.get("ssl_context"))
    credentials = faust.SASLCredentials(username=options["sasl_plain_username"],
                                        password=options["sasl_plain_password"],
                                        ssl_context=options.get("ssl_context"), mechanism=options["sasl_mechanism"])
    return credentials


def describe(s: Settings, embedded: bool = False) -> dict[str, str]:
    """What a producer needs to connect, secrets masked (for the `driftwarden up` banner and `config`)."""
    if embedded or s.kafka_security_protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    out: dict[str, str] = {"security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL") and s.kafka_sasl_mechanism == "OAUTHBEARER":
        out["sasl_mechanism"] = "OAUTHBEARER"
        if s.kafka_oauth_token_endpoint:
            out.update(oauth_token_endpoint=safe_url(s.kafka_oauth_token_endpoint),
                       oauth_client_id=s.kafka_oauth_client_id, oauth_client_secret="***",
                       **({"oauth_scope": s.kafka_oauth_scope} if s.kafka_oauth_scope else {}))
        elif s.kafka_oauth_token_file:
            out["oauth_token_file"] = str(s.kafka_oauth_token_file)
        else:
            out["oauth_token"] = "***" if s.kafka_oauth_token.get_secret_value() else "(unset)"
    elif s.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        out.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_username=s.kafka_sasl_username,
                   sasl_password="***" if s.kafka_sasl_password.get_secret_value() else "(unset)")
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        out["ssl_cafile"] = str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else "(system CAs)"
        if s.kafka_ssl_certfile:
            out["ssl_certfile"] = str(s.kafka_ssl_certfile)
        out["ssl_check_hostname"] = str(s.kafka_ssl_check_hostname).lower()
    return out


async def tls_problem(bootstrap: str, options: Mapping[str, Any], timeout: float = 5.0) -> str | None:
    """Why a TLS handshake with the first bootstrap server fails (e.g. an untrusted certificate), or None.

    aiokafka itself only reports that it could not bootstrap, after retrying until its timeout.
    """
    context = options.get("ssl_context")
    if context is None:
        return None
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    host = host.strip("[]")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=context, server_hostname=host), timeout)
    except ssl.SSLCertVerificationError as exc:
        return (f"TLS certificate of {host}:{port} not trusted ({exc.verify_message}): "
                "check DRIFTWARDEN_KAFKA_SSL_CAFILE")
    except ssl.SSLError as exc:
        return f"TLS handshake with {host}:{port} failed ({exc.reason or exc}): check the TLS settings"
    except (OSError, TimeoutError, ValueError):
        return None
    writer.close()
    return None


async def check_tls(bootstrap: str, options: Mapping[str, Any]) -> None:
    """Before starting a client over TLS: one handshake with the first bootstrap server, so that an untrusted
    certificate is one clear line at once, not a connection retried until a timeout."""
    problem = await tls_problem(bootstrap, options)
    if problem:
        raise UserError(f"cannot reach Kafka at {bootstrap}: {problem}")
