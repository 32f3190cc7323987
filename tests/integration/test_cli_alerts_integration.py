"""`driftwarden alerts` against the real embedded broker (tansu) and a real `driftwarden up` worker."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from stream.alerts.silences import SILENCES_TOPIC, Silences
from stream.alerts.state import AlertTracker
from stream.cli import common as cli
from stream.cli.alerts import _lit, alerts_app
from stream.cli.silences import silences_app
from stream.config import Settings
from stream.contracts.events import AlertEvent
from stream.errors import UserError
from stream.kafka.embedded import EmbeddedBroker
from stream.runtime.service import ensure_topics
from tests.helpers import wait_until
from tests.integration.kafka import read_topic

pytestmark = pytest.mark.integration

ALERTS_CLI = [sys.executable, "-c",
              "from stream.cli.alerts import _lit, alerts_app; alerts_app(prog_name='driftwarden alerts')"]


@pytest.fixture
def env(broker: EmbeddedBroker, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")}
    return base | {"DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                   "DRIFTWARDEN_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}


async def topic_layout(bootstrap: str, topic: str) -> tuple[int, str]:
    """Partition count and cleanup.policy of a topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
    return len(described[0]["partitions"]), entries["cleanup.policy"]


async def publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def alert(state: str, model: str = "fraud", minute: int = 0) -> AlertEvent:
    return AlertEvent(
        alert_id=f"{model}-acc-episode-000000000000", state=state, severity="critical", model_id=model,  # type: ignore[arg-type]
        model_version="1", rule="acc", metric="accuracy", observed=0.7, threshold=0.8,
        time=datetime(2024, 5, 1, 12, minute, tzinfo=UTC), message=f"accuracy of {model} v1 is {state}",
        evidence_sql="SELECT 1",
    )


def encoded(event: AlertEvent) -> tuple[bytes, bytes]:
    return event.model_id.encode(), event.model_dump_json().encode()


def test_silence_and_unsilence_publish_records_that_read_back(env: dict[str, str]) -> None:
    bootstrap = env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"]
    runner = CliRunner()
    empty = runner.invoke(alerts_app, ["silences"], env=env)  # the topic does not exist yet
    assert (empty.exit_code, empty.output) == (0, "no active silences\n")

    first = runner.invoke(alerts_app, ["silence", "fraud", "--for", "2h", "--reason", "deploy window"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("silenced model fraud (all rules) until ")
    assert first.output.endswith(" (2h from now); reason: deploy window\n")
    second = runner.invoke(alerts_app, ["silence", "fraud", "--rule", "acc", "--until", "2099-01-01T00:00:00Z"],
                           env=env)
    assert second.exit_code == 0, second.output
    assert "silenced model fraud rule 'acc' until 2099-01-01T00:00:00Z" in second.output
    third = runner.invoke(alerts_app, ["unsilence", "fraud"], env=env)
    assert third.exit_code == 0, third.output
    assert third.output.startswith("ended the silence of model fraud (all rules) (it ran until ")

    assert asyncio.run(topic_layout(bootstrap, SILENCES_TOPIC)) == (1, "compact")
    records = asyncio.run(read_topic(bootstrap, SILENCES_TOPIC))
    assert [key for _, key, _ in records] == [b"fraud|*", b"fraud|acc", b"fraud|*"]
    values = [orjson.loads(v) for _, _, v in records]
    user = getpass.getuser()
    assert [(v["model_id"], v["rule"], v["reason"], v["created_by"]) for v in values] == [
        ("fraud", None, "deploy window", user), ("fraud", "acc", "", user), ("fraud", None, "", user)]

    def ts(text: str) -> datetime:
        return datetime.fromisoformat(text)

    assert ts(values[0]["until"]) - ts(values[0]["created_at"]) == timedelta(hours=2)
    assert ts(values[1]["until"]) == datetime(2099, 1, 1, tzinfo=UTC)
    assert ts(values[2]["until"]) == ts(values[2]["created_at"]) >= ts(values[1]["created_at"])
    now = datetime.now(UTC)
    assert abs(now - ts(values[2]["created_at"])) < timedelta(minutes=1)

    book, tracker = Silences(), AlertTracker()
    for _, key, value in records:
        book.apply_message(key, value)
    book.apply_to([("fraud", tracker)], now)
    assert tracker.is_silenced("fraud", "acc", now) and not tracker.is_silenced("fraud", "other", now)

    listed = runner.invoke(alerts_app, ["silences", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [(s["model_id"], s["rule"], s["until"]) for s in orjson.loads(listed.output)] == [
        ("fraud", "acc", "2099-01-01T00:00:00Z")]
    table = runner.invoke(alerts_app, ["silences", "--all"], env=env)
    assert table.exit_code == 0 and "2 silences" in table.output and "ended" in table.output

    again = runner.invoke(alerts_app, ["unsilence", "fraud"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output == ("model fraud (all rules) had no active silence; recorded its end anyway\n"
                            "active silences of model fraud: --rule 'acc'\n")
    assert len(asyncio.run(read_topic(bootstrap, SILENCES_TOPIC))) == 4


def test_silence_without_kafka_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")}
    env["DRIFTWARDEN_DATA_DIR"] = str(tmp_path)
    result = CliRunner().invoke(silences_app, ["add", "fraud", "--for", "1h"], env=env)
    assert isinstance(result.exception, UserError) and "no service running" in str(result.exception)
    with EmbeddedBroker() as gone:
        address = gone.bootstrap_servers
    env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"] = address
    result = CliRunner().invoke(silences_app, ["list"], env=env)
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith(f"cannot reach Kafka at {address}")


def test_tail_from_beginning_prints_published_alerts(env: dict[str, str]) -> None:
    bootstrap = env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"]
    asyncio.run(ensure_topics(bootstrap, Settings(kafka_bootstrap_servers=bootstrap)))
    firing, resolved = alert("firing"), alert("resolved", minute=10)
    asyncio.run(publish(bootstrap, "alerts", [(b"fraud", b"{not an alert"), encoded(firing), encoded(resolved)]))
    done = subprocess.run([*ALERTS_CLI, "tail", "--from-beginning", "--max", "2"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2024-05-01 12:00:00Z  FIRING    critical  fraud v1  acc  #fraud-acc-ep  accuracy of fraud v1 is firing",
        "2024-05-01 12:10:00Z  RESOLVED  critical  fraud v1  acc  #fraud-acc-ep  accuracy of fraud v1 is resolved",
    ]
    assert "following topic 'alerts'" in done.stderr and "from the beginning" in done.stderr
    assert "skipping record" in done.stderr and "not an alert event" in done.stderr


def test_tail_starts_at_the_end_filters_by_model_and_stops_on_ctrl_c(env: dict[str, str], tmp_path: Path) -> None:
    bootstrap = env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"]
    asyncio.run(ensure_topics(bootstrap, Settings(kafka_bootstrap_servers=bootstrap)))
    asyncio.run(publish(bootstrap, "alerts", [encoded(alert("firing", minute=1)), encoded(alert("resolved"))]))
    out, err = tmp_path / "tail.out", tmp_path / "tail.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen([*ALERTS_CLI, "tail", "--model", "fraud"], env=env, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: "following topic" in err.read_text(), 30, 0.05, "tail to be positioned")
        new = alert("firing", minute=30)
        asyncio.run(publish(bootstrap, "alerts", [encoded(alert("firing", "churn", 31)), encoded(new)]))
        wait_until(lambda: "12:30:00Z" in out.read_text(), 30, 0.05, "the new alert to be printed")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert out.read_text().splitlines() == [
        "2024-05-01 12:30:00Z  FIRING    critical  fraud v1  acc  #fraud-acc-ep  accuracy of fraud v1 is firing"]
    errors = err.read_text()
    assert "stopped after 1 alerts" in errors and "Traceback" not in errors and "from the end" in errors


def test_tail_without_the_alerts_topic_is_one_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(alerts_app, ["tail"], env=env)
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == (f"no topic 'alerts' at {env['DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS']}: "
                                     "start `driftwarden up` once to create it")


def test_list_against_a_running_worker(make_worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = make_worker("alerts").start()
    env = worker.env
    runner = CliRunner()
    result = runner.invoke(alerts_app, ["list"], env=env)
    assert (result.exit_code, result.output) == (0, "no alerts in the last 24h\n")
    result = runner.invoke(alerts_app, ["list", "--since", "all", "--format", "json"], env=env)
    assert (result.exit_code, result.output) == (0, "[]\n")
    result = runner.invoke(alerts_app, ["list", "--format", "csv", "--state", "resolved"], env=env)
    assert result.output == ("time_utc,state,episode,severity,model_id,model_version,segment,rule,metric,observed,"
                             "threshold,message,alert_id\n")
    sneaky = "x' OR 1=1; DROP TABLE driftwarden.alerts; --"
    result = runner.invoke(alerts_app, ["list", "--model", sneaky], env=env)
    assert (result.exit_code, result.output) == (0, f"no alerts in the last 24h for model {sneaky}\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UserError, match="only SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN run here, not DropQuery"):
        cli.run_query("DROP TABLE driftwarden.alerts")
    # literals survive the guard and mean to the engine exactly what was quoted
    tricky = [sneaky, "a--b", "a---b/*c*/", "back\\slash\\", "it's", "--", "/*", "-\\--"]
    for text in tricky:
        assert cli.run_query(f"SELECT {_lit(text)} AS v") == (["v"], [[text]]), text
    # the time_utc column of `alerts list` (toString of the table's DateTime64(3, 'UTC'))
    assert cli.run_query("SELECT toString(toDateTime64('2024-05-01 12:05:00.250', 3, 'UTC')) AS t") == (
        ["t"], [["2024-05-01 12:05:00.250"]])
    assert worker.sql("EXISTS TABLE driftwarden.alerts") == [{"result": 1}]

    # the running service's broker is found through its runtime file (no Kafka configured here)
    assert "DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS" not in env
    silenced = runner.invoke(alerts_app, ["silence", "fraud", "--for", "90m"], env=env)
    assert silenced.exit_code == 0, silenced.output
    listed = runner.invoke(alerts_app, ["silences", "--format", "json"], env=env)
    assert [s["model_id"] for s in orjson.loads(listed.output)] == ["fraud"]
    assert worker.stop() == 0
