"""Kafka over TLS with a client certificate, end to end: a worker, the SDK and the CLI connect through a real TLS
endpoint; an untrusted certificate gives one clear line, not a hang.

tansu 0.6 cannot serve TLS itself (its `--cert` and `--key` flags are in one clap group that admits only one of
them, and it needs both), so Debian's `stunnel` terminates TLS in front of it, requiring a client certificate
signed by the test CA — as a TLS-terminating proxy does in many Kafka deployments. The certificates are made in
the test with `trustme`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from stream.config import Settings
from stream.errors import UserError
from stream.kafka.embedded import tansu_binary
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000


@dataclass
class TlsKafka:
    bootstrap: str
    env: dict[str, str]
    other_ca: Path


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def tls_kafka(tmp_path: Path) -> Iterator[TlsKafka]:
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if stunnel is None:
        pytest.skip("stunnel is not installed (apt-get install stunnel4; .ci/run does)")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    client = ca.issue_cert("driftwarden-client")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    trustme.CA().cert_pem.write_to_path(tmp_path / "other-ca.pem")

    broker_port, tls_port = free_port(), free_port()
    (tmp_path / "stunnel.conf").write_text(
        f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{broker_port}\n"
        f"cert = {tmp_path / 'server.pem'}\nCAfile = {tmp_path / 'ca.pem'}\nverifyChain = yes\n")
    processes = []
    with open(tmp_path / "tansu.log", "wb") as log:
        processes.append(subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{tls_port}", "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL))
    with open(tmp_path / "stunnel.log", "wb") as log:
        processes.append(subprocess.Popen([stunnel, str(tmp_path / "stunnel.conf")], stdout=log, stderr=log,
                                          stdin=subprocess.DEVNULL))
    try:
        wait_until(lambda: _listening(broker_port) and _listening(tls_port), 10, what="tansu and stunnel")
        env = {"DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{tls_port}", "DRIFTWARDEN_KAFKA_FLAVOR": "tansu",
               "DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL": "SSL", "DRIFTWARDEN_KAFKA_SSL_CAFILE": str(tmp_path / "ca.pem"),
               "DRIFTWARDEN_KAFKA_SSL_CERTFILE": str(tmp_path / "client.pem"),
               "DRIFTWARDEN_KAFKA_SSL_KEYFILE": str(tmp_path / "client.key")}
        yield TlsKafka(f"127.0.0.1:{tls_port}", env, tmp_path / "other-ca.pem")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _settings(env: dict[str, str], tmp_path: Path, **override: Any) -> Settings:
    values: dict[str, Any] = {k.removeprefix("DRIFTWARDEN_").lower(): v for k, v in env.items()}
    values.update(override, data_dir=tmp_path / "sdk")
    return Settings(**values)


def test_worker_sdk_and_cli_reach_kafka_over_tls_with_a_client_certificate(
        tls_kafka: TlsKafka, make_worker: Any, tmp_path: Path) -> None:
    from stream.client import Producer

    worker = make_worker("tls", **tls_kafka.env).start()
    assert "security_protocol=SSL" in worker.output() and "ssl_cafile=" in worker.output()
    settings = _settings(tls_kafka.env, tmp_path)
    with Producer(tls_kafka.bootstrap, settings=settings) as producer:
        producer.send_predictions({"prediction_id": f"t{i}", "model_id": "tls", "timestamp": T0 + i,
                                   "features": {"x": float(i)}, "prediction": "yes"} for i in range(20))
        producer.send_ground_truths({"prediction_id": f"t{i}", "label": "yes" if i % 4 else "no",
                                     "timestamp": T0 + 100 + i} for i in range(20))

    def metric(name: str) -> float:
        rows = worker.sql("SELECT sum(value) AS v FROM driftwarden.window_metrics FINAL "
                          f"WHERE metric = '{name}' AND segment = '' AND model_id = 'tls'")
        return float(rows[0]["v"] or 0) if rows else 0.0

    wait_until(lambda: metric("labelled") == 20, 60, 0.3, "20 labelled predictions in window_metrics")
    assert metric("accuracy") == pytest.approx(15 / 20)

    cli = subprocess.run([sys.executable, "-m", "stream.cli", "models", "list"], capture_output=True, text=True,
                         timeout=60, env={**worker.env, "DRIFTWARDEN_DATA_DIR": str(tmp_path / "cli")})
    assert cli.returncode == 0, cli.stderr
    assert "tls" in cli.stdout


def test_an_untrusted_broker_certificate_is_one_clear_line(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    from stream.client import Producer

    settings = _settings(tls_kafka.env, tmp_path, kafka_ssl_cafile=tls_kafka.other_ca)
    with pytest.raises(UserError, match=r"not trusted \(.*\): check DRIFTWARDEN_KAFKA_SSL_CAFILE$") as caught:
        Producer(tls_kafka.bootstrap, settings=settings)
    assert "\n" not in str(caught.value)

    env = {**tls_kafka.env, "DRIFTWARDEN_KAFKA_SSL_CAFILE": str(tls_kafka.other_ca), "PATH": "/usr/bin:/bin",
           "DRIFTWARDEN_WEB_PORT": str(free_port())}
    run = subprocess.run([sys.executable, "-m", "stream.cli", "up"], capture_output=True, text=True,  # its topic
                         timeout=60, env={**env, "DRIFTWARDEN_DATA_DIR": str(tmp_path / "up")})  # check comes first
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.strip().count("\n") == 0 and "not trusted" in run.stderr, run.stderr
