"""A running worker under hostile input: poison messages become dead letters and the next valid pairs are
processed; future-dated predictions drop no later data; a stage failure ends the process promptly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.helpers import wait_until
from tests.integration.conftest import Worker, worker_env

pytestmark = pytest.mark.integration

BIG = b"1" + b"0" * 400


async def _produce(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _pairs(prefix: str, n: int, now_ms: int, model: str = "robust", regression: bool = False) -> list[Any]:
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(n):
        pid = f"{prefix}-{i}"
        value: Any = float(i % 7) if regression else ("yes" if i % 3 else "no")
        out.append(("predictions", pid.encode(), orjson.dumps({
            "prediction_id": pid, "model_id": model, "timestamp": now_ms - 1000 + i, "prediction": value,
            "features": {"x": float(i % 11), "c": "abc"[i % 3]}})))
        out.append(("ground_truth", pid.encode(), orjson.dumps({"prediction_id": pid, "label": value,
                                                                "timestamp": now_ms + i})))
    return out


def _count(worker: Worker, query: str) -> int:
    return int(worker.sql(query)[0]["n"])


def test_each_poison_message_is_dead_lettered_and_the_next_300_pairs_are_processed(make_worker: Any) -> None:
    worker = make_worker("poison").start()
    bootstrap = worker.runtime()["bootstrap_servers"]
    now = int(time.time() * 1000)
    poison: list[tuple[str, bytes, bytes]] = [
        ("predictions", b"p1", b'{"prediction_id":"p1","model_id":"robust","timestamp":%d,"prediction":%s}'
         % (now, BIG)),
        ("ground_truth", b"p2", b'{"prediction_id":"p2","timestamp":%d,"label":%s}' % (now, BIG)),
        ("predictions", b"p3", b'{"prediction_id":"p3","model_id":"robust","timestamp":%d,"prediction":"a",'
         b'"features":{"x":%d}}' % (now, 2**70)),
        ("predictions", b"p4", orjson.dumps({"prediction_id": "p4", "model_id": "robust", "prediction": "a",
                                             "timestamp": "9999-12-31T23:59:59.999Z"})),
        ("ground_truth", b"p5", orjson.dumps({"prediction_id": "p5", "label": "a",
                                              "timestamp": "0001-01-01T00:00:00Z"})),
        ("predictions", b"p6", orjson.dumps({"prediction_id": "p6", "model_id": "fresh", "prediction": "a",
                                             "timestamp": now, "features": {"": 1}})),
        ("predictions", b"p7", orjson.dumps({"prediction_id": "p7", "model_id": "reg", "prediction": 1.5,
                                             "timestamp": now})),
        ("predictions", b"p8", orjson.dumps({"prediction_id": "p8", "model_id": "reg", "prediction": "yes",
                                             "timestamp": now})),
    ]
    messages: list[tuple[str, bytes, bytes]] = []
    for i, message in enumerate(poison):
        messages.append(message)
        if message[1] == b"p3":  # the 2**70 feature is a float (a feature is a number): its pair is joined
            messages.append(("ground_truth", b"p3", orjson.dumps({"prediction_id": "p3", "label": "a",
                                                                  "timestamp": now})))
        messages += _pairs(f"after{i}", 300, now, model="reg" if i >= 6 else "robust", regression=i >= 6)
    asyncio.run(_produce(bootstrap, messages))
    expected_outcomes = 300 * len(poison) + 1  # and p3
    wait_until(lambda: _count(worker, "SELECT uniqExact(prediction_id) AS n FROM driftwarden.outcomes")
               >= expected_outcomes, 120, 0.5, "every valid pair to be joined")
    assert _count(worker, "SELECT count() AS n FROM driftwarden.outcomes WHERE prediction_id = 'p3'") == 1
    wait_until(lambda: _count(worker, "SELECT count() AS n FROM driftwarden.dead_letters") >= 6, 60, 0.5,
               "the dead letters")
    letters = worker.sql("SELECT offset, reason, error FROM driftwarden.dead_letters ORDER BY topic, offset")
    reasons = sorted(row["reason"] for row in letters)
    assert reasons == sorted(["invalid_value", "invalid_value", "timestamp_out_of_range", "timestamp_out_of_range",
                              "invalid_value", "wrong_prediction_kind"]), letters
    # every valid prediction is counted: p3 (its feature 2**70 is the float 1.18e21) and p7 (no label)
    wait_until(lambda: _count(worker, "SELECT sum(value) AS n FROM driftwarden.window_metrics FINAL WHERE metric = "
                                      "'predictions' AND segment = ''") == expected_outcomes + 1, 60, 0.5,
               "the predictions counted in window_metrics")
    assert worker.process is not None and worker.process.poll() is None


def test_four_future_dated_predictions_do_not_drop_later_data(make_worker: Any) -> None:
    worker = make_worker("future").start()
    bootstrap = worker.runtime()["bootstrap_servers"]
    now = int(time.time() * 1000)
    future = now + 30 * 86_400_000
    ahead = [("predictions", f"f{i}".encode(), orjson.dumps({"prediction_id": f"f{i}", "model_id": "robust",
                                                             "prediction": "a", "timestamp": future}))
             for i in range(4)]
    asyncio.run(_produce(bootstrap, ahead + _pairs("later", 600, now)))
    wait_until(lambda: _count(worker, "SELECT sum(value) AS n FROM driftwarden.window_metrics FINAL WHERE metric = "
                                      "'predictions' AND segment = ''") >= 600, 120, 0.5, "600 predictions counted")
    wait_until(lambda: _count(worker, "SELECT count() AS n FROM driftwarden.dead_letters WHERE reason = "
                                      "'timestamp_in_future'") == 4, 60, 0.5, "four dead letters")
    assert _count(worker, "SELECT uniqExact(prediction_id) AS n FROM driftwarden.outcomes") == 600
    with __import__("urllib.request").request.urlopen(worker.url + "/metrics") as response:
        metrics = response.read().decode()
    assert "driftwarden_too_late_items_total 0.0" in metrics


def test_a_stage_failure_ends_the_process_promptly_with_one_line(tmp_path: Path) -> None:
    """The ingest stage raises a failure that is not a record's fault: the process exits non-zero within
    seconds (instead of hanging on Faust's non-daemon thread) and says why in one line."""
    env = worker_env(tmp_path / "fatal", DRIFTWARDEN_FATAL_EXIT_SECONDS="3")
    inject = ("import sys; from stream.pipeline import ingest; from stream.pipeline.barrier import StageFailure\n"
              "def fail(self, records): raise StageFailure('injected: the join state is inconsistent')\n"
              "ingest.Ingest.process = fail\n"
              "from stream.cli.main import main; sys.argv = ['driftwarden', 'up']; main()")
    log = tmp_path / "fatal.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", inject], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        worker = Worker(tmp_path / "fatal", env, process=process, log=log)
        worker.wait_ready()
        asyncio.run(_produce(worker.runtime()["bootstrap_servers"], _pairs("one", 1, int(time.time() * 1000))))
        sent = time.monotonic()
        wait_until(lambda: process.poll() is not None, 60, 0.1, "the worker to exit after the stage failure")
        code = process.returncode
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text(errors="replace")
    assert code != 0, output
    lines = [line for line in output.splitlines() if "injected: the join state is inconsistent" in line]
    assert len(lines) == 1 and "the ingest stage failed" in lines[0], output
    assert "Traceback" not in output
    print(f"exited with {code} {took:.1f} s after the failing record was produced")


def test_outcomes_keep_every_accepted_event_time_like_the_window_tables(tmp_path: Path) -> None:
    """Outcomes dated 1970, 1971, 2150 and late 2199 are all kept (the old TTL by prediction time dropped old
    ones on insert and wrapped after 2106); they expire by the time they were written."""
    from stream.pipeline.rows import OUTCOME_COLUMNS
    from stream.storage.clickhouse import ClickHouse
    from stream.storage.migrations import migrate

    ch = ClickHouse(f"chdb://{tmp_path / 'ch'}", "driftwarden")
    try:
        migrate(ch, 90)
        times = [0, 31_536_000_000, 5_680_281_600_000, 7_258_118_400_000 - 1]  # 1970, 1971, 2150, 2199-12-31
        ch.insert("outcomes", [(f"p{i}", "m", "1", "", ts, ts, "a", "a", None, {}, ts) for i, ts in enumerate(times)],
                  list(OUTCOME_COLUMNS))
        _, rows = ch.query_rows("SELECT toUnixTimestamp64Milli(prediction_time) FROM driftwarden.outcomes FINAL "
                                "ORDER BY prediction_id")
        assert [r[0] for r in rows] == times
        _, ddl = ch.query_rows("SHOW CREATE TABLE driftwarden.outcomes")
        assert "TTL written_at + toIntervalDay(90)" in ddl[0][0]
    finally:
        ch.close()


def test_a_broker_restarted_empty_is_detected_and_new_traffic_is_processed(make_worker: Any) -> None:
    """A standalone tansu restarted empty on the same port: the worker stops (code 70) instead of taking the
    new records for replays of the old log; restarted, it reads the new log from its start."""
    from stream.kafka.embedded import EmbeddedBroker
    from tests.helpers import free_port

    port = free_port()
    first = EmbeddedBroker(port=port).start()
    bootstrap = first.bootstrap_servers
    worker = make_worker("restart", DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=bootstrap, DRIFTWARDEN_KAFKA_FLAVOR="tansu",
                         DRIFTWARDEN_CHECKPOINT_SECONDS="1")
    second: EmbeddedBroker | None = None
    try:
        worker.start()
        asyncio.run(_produce(bootstrap, _pairs("old", 200, int(time.time() * 1000))))
        outcomes = "SELECT uniqExact(prediction_id) AS n FROM driftwarden.outcomes"
        wait_until(lambda: _count(worker, outcomes) == 200, 90, 0.5, "the first 200 pairs")
        checkpoints = "SELECT count() AS n FROM driftwarden.checkpoints FINAL WHERE stage = 'ingest'"
        wait_until(lambda: _count(worker, checkpoints) > 0, 30, 0.5, "an ingest checkpoint")
        first.stop()
        second = EmbeddedBroker(port=port).start()
        assert worker.process is not None
        wait_until(lambda: worker.process.poll() is not None, 60, 0.2, "the worker to notice the new broker")
        assert worker.process.returncode == 70, worker.output()
        assert "the Kafka broker" in worker.output(), worker.output()
        worker.start()
        asyncio.run(_produce(bootstrap, _pairs("new", 300, int(time.time() * 1000))))
        wait_until(lambda: _count(worker, outcomes) == 500, 90, 0.5, "the 300 new pairs")
        assert _count(worker, "SELECT count() AS n FROM driftwarden.dead_letters") == 0
    finally:
        worker.stop()
        first.stop()
        if second is not None:
            second.stop()
