"""The naive baseline of `driftwarden bench`: the straightforward way to write this pipeline with Faust.

Per event: pydantic validation (`stream.contracts.events`), a Faust table read and write keyed by prediction_id for the
join (with its changelog), River ADWIN updates for every numeric feature and, once joined, for the error
stream; joined outcomes are inserted into ClickHouse (chdb) synchronously, in batches of ``--insert-batch``.

Run by the bench as a child process against its broker; it prints one JSON line to stdout about every half
second (``{"consumed": n, "first": t, "now": t}``, wall-clock seconds) and a last one with ``"done": true``
once it has consumed ``--expected`` events, then waits to be stopped. By hand::

    .venv/bin/python benchmarks/naive_faust.py --bootstrap 127.0.0.1:9092 --expected 380000 --data-dir /tmp/naive
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import faust
from river.drift import ADWIN

from stream.contracts.events import GroundTruthEvent, PredictionEvent
from stream.kafka.tansu_compat import faust_overrides
from stream.storage.clickhouse import ClickHouse

APP_ID = "driftwarden-bench-naive"
OUTCOME_COLUMNS = ("prediction_id", "model_id", "prediction", "label", "error", "prediction_time", "label_time")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--expected", type=int, required=True, help="events (predictions + labels) to consume")
    parser.add_argument("--data-dir", type=Path, required=True, help="Faust data and the chdb database")
    parser.add_argument("--predictions-topic", default="predictions")
    parser.add_argument("--ground-truth-topic", default="ground_truth")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--insert-batch", type=int, default=100, help="outcomes per ClickHouse insert")
    parser.add_argument("--tansu", action="store_true", help="short group timeouts for the tansu broker")
    return parser.parse_args(argv)


def report(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Naive:
    """State of the naive pipeline: detectors per model and feature, pending outcome rows, counters."""

    def __init__(self, ch: ClickHouse, expected: int, insert_batch: int) -> None:
        self.ch = ch
        self.expected = expected
        self.insert_batch = insert_batch
        self.feature_detectors: dict[tuple[str, str], ADWIN] = {}
        self.error_detectors: dict[str, ADWIN] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.consumed = 0
        self.joined = 0
        self.drifts = 0
        self.first = 0.0
        self.last_report = 0.0
        self.done = False

    def on_prediction(self, value: bytes) -> dict[str, Any]:
        event = PredictionEvent.model_validate_json(value)
        for name, x in event.features.items():
            if isinstance(x, int | float) and not isinstance(x, bool):
                detector = self.feature_detectors.setdefault((event.model_id, name), ADWIN())
                detector.update(float(x))
                self.drifts += int(detector.drift_detected)
        return {"model_id": event.model_id, "prediction": event.prediction, "score": event.score,
                "ts": event.timestamp.timestamp()}

    def on_label(self, value: bytes) -> dict[str, Any]:
        event = GroundTruthEvent.model_validate_json(value)
        return {"label": event.label, "label_ts": event.timestamp.timestamp()}

    def on_joined(self, prediction_id: str, pred: dict[str, Any], label: dict[str, Any]) -> None:
        p, y = pred["prediction"], label["label"]
        if isinstance(p, int | float) and isinstance(y, int | float) and not isinstance(p, bool):
            error = abs(float(p) - float(y))
        else:
            error = float(str(p) != str(y))
        detector = self.error_detectors.setdefault(pred["model_id"], ADWIN())
        detector.update(error)
        self.drifts += int(detector.drift_detected)
        self.joined += 1
        self.rows.append((prediction_id, pred["model_id"], str(p), str(y), error,
                          dt.datetime.fromtimestamp(pred["ts"], dt.UTC),
                          dt.datetime.fromtimestamp(label["label_ts"], dt.UTC)))
        if len(self.rows) >= self.insert_batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.ch.insert("outcomes", self.rows, OUTCOME_COLUMNS)  # synchronous, on the event loop: naive
            self.rows = []

    def count(self) -> None:
        self.consumed += 1
        now = time.time()
        if self.consumed == 1:
            self.first = now
        if self.consumed >= self.expected and not self.done:
            self.flush()
            self.done = True
            report(consumed=self.consumed, first=self.first, now=now, joined=self.joined, drifts=self.drifts,
                   done=True)
        elif now - self.last_report >= 0.5:
            self.last_report = now
            report(consumed=self.consumed, first=self.first, now=now)


def build(args: argparse.Namespace) -> faust.App:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    ch = ClickHouse(f"chdb://{args.data_dir.resolve() / 'clickhouse'}", "naive")
    ch.command("CREATE DATABASE IF NOT EXISTS naive")
    ch.command("CREATE TABLE IF NOT EXISTS naive.outcomes (prediction_id String, model_id String, "
               "prediction String, label String, error Float64, prediction_time DateTime64(3, 'UTC'), "
               "label_time DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY prediction_id")
    state = Naive(ch, args.expected, args.insert_batch)
    app = faust.App(
        APP_ID, broker=f"kafka://{args.bootstrap}", value_serializer="raw", key_serializer="raw",
        store="memory://", web_enabled=False, datadir=str(args.data_dir / "faust"),
        processing_guarantee="at_least_once", topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest", **faust_overrides(args.tansu),
    )
    inputs = app.topic(args.predictions_topic, args.ground_truth_topic, partitions=args.partitions)
    joins = app.Table("join", partitions=args.partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))

    @app.agent(inputs, name="naive")
    async def naive(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            prediction_id = (message.key or b"").decode()
            waiting = joins.get(prediction_id)
            if message.topic == args.predictions_topic:
                pred = state.on_prediction(message.value)
                if waiting is not None and "label" in waiting:
                    state.on_joined(prediction_id, pred, waiting)
                    del joins[prediction_id]
                else:
                    joins[prediction_id] = pred
            else:
                label = state.on_label(message.value)
                if waiting is not None and "prediction" in waiting:
                    state.on_joined(prediction_id, waiting, label)
                    del joins[prediction_id]
                else:
                    joins[prediction_id] = label
            state.count()

    return app


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = build(args)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
