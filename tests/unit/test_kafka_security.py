"""Kafka security settings become the same options for every client, with secrets masked wherever shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
import trustme

from stream.config import Settings
from stream.errors import UserError
from stream.kafka.security import client_options, describe, faust_credentials


def _ca_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    client = ca.issue_cert("client")
    client.cert_chain_pems[0].write_to_path(tmp_path / "c.pem")
    client.private_key_pem.write_to_path(tmp_path / "c.key")
    return tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key"


def test_plaintext_and_the_embedded_broker_add_no_options() -> None:
    assert client_options(Settings()) == {}
    assert client_options(Settings(kafka_security_protocol="SSL"), embedded=True) == {}
    assert faust_credentials(Settings()) is None


def test_sasl_ssl_options_for_aiokafka_and_faust(tmp_path: Path) -> None:
    cafile, cert, key = _ca_files(tmp_path)
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
                 kafka_sasl_password="pw", kafka_ssl_cafile=cafile, kafka_ssl_certfile=cert, kafka_ssl_keyfile=key,
                 kafka_ssl_check_hostname=False)
    options = client_options(s)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "pw"}
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED and len(context.get_ca_certs()) == 1
    credentials = faust_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == ("u", "pw", "SCRAM-SHA-512")
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None
    tls_only = faust_credentials(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile))
    assert isinstance(tls_only, faust.SSLCredentials) and tls_only.protocol.value == "SSL"


def test_secrets_are_masked_in_config_and_banner(tmp_path: Path) -> None:
    s = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="key", kafka_sasl_password="secret!",
                 kafka_ssl_key_password="kp")
    assert s.masked()["kafka_sasl_password"] == "***" and s.masked()["kafka_ssl_key_password"] == "***"
    assert "secret!" not in repr(s) and "secret!" not in str(s.masked())
    shown = describe(s)
    assert shown == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "key",
                     "sasl_password": "***"}
    assert describe(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_bad_security_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs DRIFTWARDEN_KAFKA_SASL_USERNAME and DRIFTWARDEN_KAFKA_SASL_PASSWORD"):
        client_options(Settings(kafka_security_protocol="SASL_SSL"))
    with pytest.raises(UserError, match=r"DRIFTWARDEN_KAFKA_SSL_CAFILE=.*missing.pem is not a readable file"):
        client_options(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(UserError, match="cannot load the Kafka TLS files"):
        client_options(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "junk.pem"))
    with pytest.raises(ValueError, match="kafka_sasl_mechanism"):
        Settings(kafka_sasl_mechanism="GSSAPI")  # type: ignore[arg-type]
