"""The Faust application and its agents: thin loops over streams that hand batches to the pure stages.

ingest      predictions + ground_truth (co-partitioned by prediction_id) -> dead letters, internal batches
aggregate   internal topic (keyed by model) -> windows
models      compacted models topic -> the registry every worker shares
a timer     writes changed windows to ClickHouse (about once a second) and closes windows when idle
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import faust
import orjson

from stream.aggregate import WINDOW_METRIC_COLUMNS, Aggregator, class_text, ms_to_dt
from stream.clickhouse import ClickHouse
from stream.config import Settings
from stream.contracts import DeadLetter, Limits, ModelSpec
from stream.ingest import Ingest, RawRecord
from stream.registry import RegisteredModel, Registry, encode, infer_spec, spec_json
from stream.sink import Sink
from stream.tansu_compat import faust_overrides
from stream.telemetry import Telemetry

log = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = ("topic", "partition", "offset", "key", "raw", "reason", "error", "time")
MODEL_COLUMNS = ("model_id", "model_version", "spec", "profile", "registered_at")
OUTCOME_COLUMNS = ("prediction_id", "model_id", "model_version", "segment", "prediction_time", "label_time",
                   "prediction", "label", "score", "business", "version")
JOIN_STATS_COLUMNS = ("partition", "metric", "value", "version", "updated_at")


def outcome_rows_of(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows for the ``outcomes`` table; version = label time, so a later label replaces an earlier one."""
    o = batch["outs"]
    model_id = batch["model_id"]
    rows = []
    for i in range(len(o["off"])):
        score = o["score"][i]
        rows.append((
            o["pid"][i], model_id, o["ver"][i], segment_text(o["seg"][i]), ms_to_dt(o["ts"][i]),
            ms_to_dt(o["lts"][i]), class_text(o["pred"][i]), class_text(o["label"][i]),
            None if score != score else score, o["biz"][i], o["lts"][i],
        ))
    return rows


def segment_text(segment: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))
INGEST_BATCH = 2000
AGGREGATE_BATCH = 200


class Runtime:
    """Everything one worker process holds: pure stages, the sink, telemetry, and the Faust app around them."""

    def __init__(self, settings: Settings, bootstrap: str, ch: ClickHouse, sink: Sink, telemetry: Telemetry,
                 embedded_broker: bool) -> None:
        self.settings = settings
        self.ch = ch
        self.sink = sink
        self.telemetry = telemetry
        self.registry = Registry()
        self.ingest = Ingest(
            self.registry, Limits(), settings.topic_predictions, settings.topic_ground_truth,
            settings.max_label_delay_seconds * 1000, settings.duplicate_label_policy,
            auto_register=settings.unregistered_model == "auto_register",
        )
        self.aggregator = Aggregator(self.spec_for)
        self.last_event_monotonic = time.monotonic()
        self.consumed = 0
        self.started = False
        self.on_started: list[Callable[[], Any]] = []
        self.app = self._build_app(bootstrap, embedded_broker)

    def spec_for(self, model_id: str) -> ModelSpec:
        model = self.registry.get(model_id)
        if model is None:  # registered on another worker and not yet seen on the models topic
            raise KeyError(model_id)
        return model.spec

    def _build_app(self, bootstrap: str, embedded_broker: bool) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id, broker=f"kafka://{bootstrap}", value_serializer="raw", key_serializer="raw",
            web_enabled=False, datadir=str(s.data_dir / "faust"), store="memory://",
            processing_guarantee="at_least_once", topic_partitions=s.topic_partitions,
            topic_allow_declare=True, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
            producer_linger_ms=5, broker_max_poll_records=INGEST_BATCH,
            **faust_overrides(embedded_broker),
        )
        predictions = app.topic(s.topic_predictions, partitions=s.topic_partitions)
        ground_truth = app.topic(s.topic_ground_truth, partitions=s.topic_partitions)
        inputs = app.topic(s.topic_predictions, s.topic_ground_truth, partitions=s.topic_partitions)
        outcomes = app.topic(s.topic_outcomes, partitions=s.topic_partitions, internal=True)
        dead_letters = app.topic(s.topic_dead_letters, partitions=s.topic_partitions)
        models = app.topic(s.topic_models, partitions=1, compacting=True)
        self.topics = {"predictions": predictions, "ground_truth": ground_truth, "outcomes": outcomes,
                       "dead_letters": dead_letters, "models": models}

        @app.agent(inputs, name="ingest")
        async def ingest(stream: faust.StreamT[bytes]) -> None:
            async for events in stream.take_events(INGEST_BATCH, within=0.1):  # type: ignore[attr-defined]
                records = [RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                     e.message.value) for e in events]
                await self.handle_ingest(records)

        @app.agent(outcomes, name="aggregate")
        async def aggregate(stream: faust.StreamT[bytes]) -> None:
            async for values in stream.take(AGGREGATE_BATCH, within=0.1):
                for value in values:
                    self.aggregator.apply(orjson.loads(value))
                self.telemetry.replayed.set(self.aggregator.replayed)

        @app.agent(models, name="models")
        async def model_specs(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                try:
                    self.registry.apply_message(event.message.key, event.message.value)
                except ValueError as exc:
                    log.warning("ignoring a bad record on the models topic at offset %s: %s",
                                event.message.offset, str(exc).splitlines()[0])

        @app.timer(s.sink_flush_seconds)
        async def flush() -> None:
            await self.flush_windows()

        @app.timer(max(5.0, s.sink_flush_seconds))
        async def expire() -> None:
            await self.expire_joins()

        @app.task
        async def started() -> None:
            self.started = True
            for callback in self.on_started:
                result = callback()
                if hasattr(result, "__await__"):
                    await result

        return app

    async def handle_ingest(self, records: list[RawRecord]) -> None:
        self.last_event_monotonic = time.monotonic()
        result = self.ingest.process(records)
        self.consumed += len(records)
        for record in records:
            self.telemetry.records.labels(record.topic).inc()
        for model in result.registered:
            await self.publish_model(model)
        outcome_rows: list[tuple[Any, ...]] = []
        for (model_id, _), batch in result.batches.items():
            await self.topics["outcomes"].send(key=model_id.encode(), value=orjson.dumps(batch))
            outcome_rows.extend(outcome_rows_of(batch))
        if outcome_rows:
            self.telemetry.outcomes.inc(len(outcome_rows))
            await self.sink.submit("outcomes", OUTCOME_COLUMNS, outcome_rows)
        if result.dead_letters:
            await self.publish_dead_letters(result.dead_letters)
        self.telemetry.join_waiting.set(sum(len(j) for j in self.ingest.joins.values()))

    async def publish_dead_letters(self, letters: list[DeadLetter]) -> None:
        rows = []
        for letter in letters:
            self.telemetry.dead_letters.labels(letter.reason).inc()
            await self.topics["dead_letters"].send(key=letter.key.encode() if letter.key else None,
                                                   value=letter.model_dump_json().encode())
            rows.append((letter.topic, letter.partition, letter.offset, letter.key, letter.raw, letter.reason,
                         letter.error, letter.time))
        await self.sink.submit("dead_letters", DEAD_LETTER_COLUMNS, rows)

    async def publish_model(self, model: RegisteredModel) -> None:
        key, value = encode(model)
        await self.topics["models"].send(key=key, value=value)
        profile = orjson.dumps(model.profile).decode() if model.profile else ""
        await self.sink.submit("models", MODEL_COLUMNS, [(model.spec.model_id, model.spec.version,
                                                          spec_json(model), profile, dt.datetime.now(dt.UTC))])

    async def expire_joins(self) -> None:
        """Expire waiting predictions and labels older than the maximum label delay; write join statistics."""
        now_ms = int(time.time() * 1000)
        rows: list[tuple[Any, ...]] = []
        now = dt.datetime.now(dt.UTC)
        version = time.time_ns()
        for partition, join in self.ingest.joins.items():
            join.expire(now_ms)
            stats = dict(asdict(join.stats), waiting_predictions=join.n_waiting_predictions,
                         waiting_labels=join.n_waiting_labels)
            rows.extend((partition, name, float(value), version, now) for name, value in stats.items())
        if rows:
            await self.sink.submit("join_stats", JOIN_STATS_COLUMNS, rows)

    async def flush_windows(self, force_idle: bool = False) -> int:
        idle = force_idle or time.monotonic() - self.last_event_monotonic > self.settings.idle_close_seconds
        self.aggregator.tick(int(time.time() * 1000), idle)
        rows = self.aggregator.window_rows()
        self.telemetry.windows_open.set(len(self.aggregator.store.windows))
        if rows:
            await self.sink.submit("window_metrics", WINDOW_METRIC_COLUMNS, rows)
            self.telemetry.rows_written.labels("window_metrics").inc(len(rows))
        self.telemetry.sink_pending.set(self.sink.pending)
        self.telemetry.sink_failures.set(self.sink.stats.failures)
        return len(rows)


__all__ = ["Runtime", "infer_spec"]
