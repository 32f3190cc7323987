"""The Faust application and its agents: thin loops over streams that hand batches to the pure stages.

ingest      predictions + ground_truth (co-partitioned by prediction_id) -> dead letters, internal batches;
            read with aiokafka in large batches (stream.kafka.ingest_consumer), not per message through Faust
aggregate   internal topic (keyed by model) -> windows
models      compacted models topic -> the registry every worker shares
a timer     writes changed windows to ClickHouse (about once a second) and closes windows when idle
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from stream.alerts.alertmanager import AlertmanagerSender
from stream.alerts.history import active_events, active_query
from stream.alerts.silences import SILENCES_TOPIC, Silences
from stream.alerts.state import AlertTracker
from stream.alerts.webhook import WebhookSender, WebhookTarget
from stream.config import Settings
from stream.contracts.events import AlertEvent, DeadLetter, ModelSpec
from stream.contracts.registry import RegisteredModel, Registry, encode, infer_spec
from stream.contracts.state_codec import StateDecodeError
from stream.errors import UserError
from stream.kafka.epoch import EPOCH_KEY, offsets_of_epoch, read_epoch
from stream.kafka.ingest_consumer import IngestConsumer
from stream.kafka.payloads import payload_decoders
from stream.kafka.security import client_options, faust_credentials
from stream.kafka.tansu_compat import faust_overrides
from stream.kafka.topics import epoch_topic
from stream.monitor.report import (
    DATA_QUALITY_COLUMNS,
    DRIFT_EVENT_COLUMNS,
    FEATURE_DRIFT_COLUMNS,
    WindowReport,
)
from stream.pipeline.aggregate import WINDOW_METRIC_COLUMNS, Aggregator
from stream.pipeline.barrier import StageFailure, describe, isolate
from stream.pipeline.ingest import Ingest, RawRecord, batch_items, item_dead_letter, select_items, split_batch
from stream.pipeline.pairing import COMPARISON_COLUMNS
from stream.pipeline.rows import (
    ALERT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    JOIN_STATS_COLUMNS,
    MODEL_COLUMNS,
    OUTCOME_COLUMNS,
    model_row,
    outcome_rows_of,
)
from stream.runtime.telemetry import Telemetry
from stream.storage.checkpoint import CheckpointStore
from stream.storage.clickhouse import ClickHouse
from stream.storage.sink import Sink

log = logging.getLogger(__name__)

INGEST_BATCH = 5000
AGGREGATE_BATCH = 200
CHECKPOINT_MAX_HELD = 50_000  # records held un-acked before a checkpoint is forced


class Runtime:
    """Everything one worker process holds: pure stages, the sink, telemetry, and the Faust app around them."""

    def __init__(self, settings: Settings, bootstrap: str, ch: ClickHouse, sink: Sink, telemetry: Telemetry,
                 tansu: bool) -> None:
        self.settings = settings
        self.ch = ch
        self.sink = sink
        self.telemetry = telemetry
        self.registry = Registry()
        self.ingest = Ingest(
            self.registry, settings.limits, settings.topic_predictions, settings.topic_ground_truth,
            settings.max_label_delay_seconds * 1000, settings.duplicate_label_policy,
            auto_register=settings.unregistered_model == "auto_register", bounds=settings.ingest_bounds,
            payloads=payload_decoders(settings),
        )
        self.aggregators: dict[int, Aggregator] = {}
        self.checkpoints = CheckpointStore(ch, sink)
        self.streams: dict[str, faust.StreamT[bytes]] = {}
        self.locks = {"ingest": asyncio.Lock(), "aggregate": asyncio.Lock()}
        self.held: dict[str, list[faust.EventT[bytes]]] = {"aggregate": []}
        self.touched: dict[str, set[int]] = {"ingest": set(), "aggregate": set()}
        self.last_checkpoint = {"ingest": time.monotonic(), "aggregate": time.monotonic()}
        self.restored_ingest: set[int] = set()
        # The embedded broker starts empty: checkpointed state still holds, its offsets do not.
        self.fresh_broker = settings.embedded_kafka
        self.epoch: int | None = None  # of the broker's log (stream.kafka.epoch); kept with the checkpoints
        self.alerts_published: list[AlertEvent] = []
        self.webhook: WebhookSender | None = None
        if settings.webhook_url:
            self.webhook = WebhookSender([WebhookTarget(settings.webhook_url, settings.webhook_min_severity,
                                                        settings.webhook_secret)])
        self.alertmanager: AlertmanagerSender | None = None
        if settings.alertmanager_urls:
            self.alertmanager = AlertmanagerSender(settings.alertmanager_urls, settings.public_base_url,
                                                   resend_seconds=settings.alertmanager_resend_seconds)
        self.last_event_monotonic = time.monotonic()
        self.consumed = 0
        self.started = False
        self.stopping = False
        self.ingest_records_since_checkpoint = 0
        self.failure = ""
        self.on_failure: list[Callable[[], None]] = []
        self.on_started: list[Callable[[], Any]] = []
        self.silences = Silences()
        self.too_late_logged: dict[str, tuple[int, float]] = {}  # model -> (count logged, monotonic time)
        self.app = self._build_app(bootstrap, tansu)

    def monitor_trackers(self) -> list[tuple[str, AlertTracker]]:
        return [(model_id, monitor.tracker) for aggregator in self.aggregators.values()
                for model_id, monitor in aggregator.monitors.items()]

    @property
    def aggregated_predictions(self) -> int:
        return sum(a.predictions for a in self.aggregators.values())

    def load_registry(self) -> int:
        """Fill the registry from ClickHouse's models table (blocking; at start, before the worker runs)."""
        _, rows = self.ch.query_rows(f"SELECT spec, profile FROM {self.ch.database}.models FINAL")
        for spec, profile in rows:
            self.registry.put(RegisteredModel(spec=ModelSpec.model_validate_json(spec),
                                              profile=orjson.loads(profile) if profile else None))
        return len(rows)

    def final_rows(self) -> list[tuple[Any, ...]]:
        """Window rows not yet written, for the last write after the worker stopped."""
        rows: list[tuple[Any, ...]] = []
        for aggregator in self.aggregators.values():
            rows.extend(aggregator.window_rows())
        return rows

    def spec_for(self, model_id: str) -> ModelSpec:
        model = self.registry.get(model_id)
        if model is None:  # registered on another worker and not yet seen on the models topic
            raise KeyError(model_id)
        return model.spec

    def _build_app(self, bootstrap: str, tansu: bool) -> faust.App:
        s = self.settings
        security = client_options(s, s.embedded_kafka)
        app = faust.App(
            s.app_id, broker=f"kafka://{bootstrap}", value_serializer="raw", key_serializer="raw",
            web_enabled=False, datadir=str(s.data_dir / "faust"), store="memory://",
            processing_guarantee="at_least_once", topic_partitions=s.topic_partitions,
            topic_allow_declare=True, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
            producer_linger_ms=5, broker_max_poll_records=INGEST_BATCH,
            broker_credentials=faust_credentials(s, s.embedded_kafka),
            **faust_overrides(tansu),
        )
        predictions = app.topic(s.topic_predictions, partitions=s.topic_partitions)
        ground_truth = app.topic(s.topic_ground_truth, partitions=s.topic_partitions)
        outcomes = app.topic(s.topic_outcomes, partitions=s.topic_partitions, internal=True)
        dead_letters = app.topic(s.topic_dead_letters, partitions=s.topic_partitions)
        alerts = app.topic(s.topic_alerts, partitions=s.topic_partitions)
        models = app.topic(s.topic_models, partitions=1, compacting=True)
        self.topics = {"predictions": predictions, "ground_truth": ground_truth, "outcomes": outcomes,
                       "dead_letters": dead_letters, "models": models,
                       "alerts": alerts}

        self.ingest_consumer = IngestConsumer(
            bootstrap, (s.topic_predictions, s.topic_ground_truth), f"{s.app_id}-ingest", tansu,
            self.ingest_batch, self.checkpoint_ingest_locked, self.forget_ingest, self.locks["ingest"],
            INGEST_BATCH, security)

        @app.task
        async def ingest() -> None:
            async with self.fatal_on_error("ingest"):  # e.g. the consumer failing: stop, do not read on silently
                await self.ingest_consumer.run()

        @app.agent(outcomes, name="aggregate")
        async def aggregate(stream: faust.StreamT[bytes]) -> None:
            self.streams["aggregate"] = stream
            async for events in stream.noack_take(AGGREGATE_BATCH, within=0.1):  # type: ignore[attr-defined]
                async with self.locks["aggregate"], self.fatal_on_error("aggregate"):
                    for event in events:
                        partition = event.message.partition
                        aggregator = self.aggregators.get(partition) or await self.restore_aggregator(partition)
                        aggregator.apply(orjson.loads(event.message.value), event.message.offset)
                        self.touched["aggregate"].add(partition)
                        if aggregator.poisoned:
                            await self.publish_dead_letters(self._item_letters(aggregator.poisoned))
                            aggregator.poisoned.clear()
                    self.held["aggregate"].extend(events)
                    self.last_event_monotonic = time.monotonic()
                    self.telemetry.advance(self.telemetry.replayed, sum(a.replayed for a in self.aggregators.values()))
                    self.telemetry.advance(self.telemetry.too_late,
                                           sum(a.store.too_late for a in self.aggregators.values()))
                    self.count_too_late_and_folded()
                    if self._checkpoint_due("aggregate"):
                        await self.checkpoint_aggregate()

        @app.task
        async def silences() -> None:
            """Silences from their compacted topic, read without a group from the beginning on every worker
            and every start (a group would give the one partition to one worker, and resume past old ones)."""
            from stream.kafka.clients import follow
            from stream.kafka.topics import ensure_silences_topic

            try:
                await ensure_silences_topic(bootstrap, security=security)
                async with contextlib.aclosing(follow(bootstrap, SILENCES_TOPIC, from_beginning=True,
                                                      security=security)) as records:
                    async for record in records:
                        try:
                            self.silences.apply_message(record.key, record.value)
                        except ValueError as exc:
                            log.warning("ignoring a bad record on %s at offset %s: %s", SILENCES_TOPIC,
                                        record.offset, exc)
                            continue
                        async with self.locks["aggregate"]:
                            self.silences.apply_to(self.monitor_trackers())
            except UserError as exc:
                log.error("alert silences are not applied: %s", exc)

        @app.timer(s.checkpoint_seconds)
        async def checkpoint() -> None:
            await self.checkpoint_ingest()
            async with self.locks["aggregate"]:
                await self.checkpoint_aggregate()

        @app.agent(models, name="models")
        async def model_specs(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                try:
                    model = self.registry.apply_message(event.message.key, event.message.value)
                    if model is not None:
                        await self.sink.submit("models", MODEL_COLUMNS, [model_row(model)])
                except ValueError as exc:
                    log.warning("ignoring a bad record on the models topic at offset %s: %s",
                                event.message.offset, str(exc).splitlines()[0])

        @app.timer(s.sink_flush_seconds)
        async def flush() -> None:
            async with self.fatal_on_error("window flush"):
                await self.flush_windows()

        @app.timer(s.checkpoint_seconds)
        async def watch_epoch() -> None:
            async with self.fatal_on_error("broker watch"):
                await self.check_epoch(bootstrap, security)

        @app.timer(max(5.0, s.sink_flush_seconds))
        async def expire() -> None:
            async with self.fatal_on_error("join expiry"):
                await self.expire_joins()

        @app.task
        async def started() -> None:
            if self.webhook is not None:
                await self.webhook.start()
            if self.alertmanager is not None:
                await self.seed_alertmanager(self.alertmanager)
                await self.alertmanager.start()
            self.started = True
            for callback in self.on_started:
                result = callback()
                if hasattr(result, "__await__"):
                    await result

        return app

    async def seed_alertmanager(self, sender: AlertmanagerSender) -> None:
        """Hand the sender the alerts firing now (``driftwarden alerts active``), so a restart keeps re-sending them."""
        try:
            columns, rows = await self.ch.aquery_rows(active_query(self.ch.database))
        except Exception as exc:  # the stream still runs; only the re-sends of earlier alerts are missing
            log.warning("alerts firing before the restart not re-sent to Alertmanager (alerts table unreadable: %s)",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return
        events = active_events(columns, rows)
        sender.seed(events)
        if events:
            log.info("re-sending %d alerts that fired before the restart to Alertmanager", len(events))

    @contextlib.asynccontextmanager
    async def fatal_on_error(self, stage: str) -> AsyncIterator[None]:
        """An unexpected error stops the worker instead of letting Faust restart the agent past the batch: its
        records were never acked, so the next start reads them again from the last checkpoint."""
        try:
            yield
        except Exception as exc:
            log.debug("the %s stage failed", stage, exc_info=True)
            self.failure = f"the {stage} stage failed: {describe(exc)}"
            exit_soon(self.failure, self.settings.fatal_exit_seconds)
            for callback in self.on_failure:
                callback()
            await asyncio.Event().wait()  # hold the batch until the worker stops

    async def final_checkpoint(self) -> None:
        """Checkpoint and ack everything held, before Faust waits for un-acked records on shutdown; from now
        on every batch is checkpointed at once, so that wait always ends."""
        self.stopping = True
        if self.failure:  # a failed batch may be half applied: never checkpoint it
            self.ingest_consumer.stopping = True
            return
        await self.checkpoint_ingest()
        self.ingest_consumer.stopping = True
        async with self.locks["aggregate"]:
            await self.checkpoint_aggregate()

    def _checkpoint_due(self, stage: str) -> bool:
        held = self.ingest_records_since_checkpoint if stage == "ingest" else len(self.held[stage])
        return (self.stopping or held >= CHECKPOINT_MAX_HELD
                or time.monotonic() - self.last_checkpoint[stage] >= self.settings.checkpoint_seconds)

    def _of_epoch(self, offsets: dict[str, int]) -> dict[str, int]:
        """Checkpointed offsets, or {} when they point into a broker log that is gone (another epoch)."""
        if self.epoch is None:
            return {k: v for k, v in offsets.items() if k != EPOCH_KEY}
        kept = offsets_of_epoch(offsets, self.epoch)
        if not kept and offsets:
            log.warning("checkpointed offsets %s belong to another broker epoch: reading the new log from its "
                        "start", offsets)
        return kept

    def _with_epoch(self, offsets: dict[str, int], state: bytes) -> tuple[dict[str, int], bytes]:
        return ({**offsets, EPOCH_KEY: self.epoch} if self.epoch is not None else offsets), state

    async def check_epoch(self, bootstrap: str, security: Mapping[str, Any] | None) -> None:
        """Stop (to restart from the checkpoints) when the broker's log was replaced under the worker."""
        if self.epoch is None:
            return
        try:
            found = await read_epoch(bootstrap, epoch_topic(self.settings.app_id), security=security)
        except (TimeoutError, UserError, KafkaError, OSError) as exc:  # unreachable now: not a new log
            log.warning("cannot read the broker epoch (%s); trying again later", describe(exc))
            return
        if found != self.epoch:
            raise StageFailure(f"the Kafka broker's log was replaced (epoch {self.epoch} is now {found}): "
                               "it lost its data")

    async def restore_ingest(self, partitions: set[int]) -> None:
        """Load the checkpoint of input partitions seen for the first time (before their first record)."""
        for partition in sorted(partitions - self.restored_ingest):
            found = await asyncio.to_thread(self.checkpoints.load, "ingest", partition)
            if found is not None:
                offsets, state = found
                try:
                    self.ingest.restore(partition, {} if self.fresh_broker else self._of_epoch(offsets), state)
                except (ValueError, KeyError, TypeError) as exc:  # a broken checkpoint is treated as absent
                    log.warning("ingest partition %s: checkpoint refused (%s: %s); starting it afresh from Kafka",
                                partition, type(exc).__name__, str(exc)[:200])
                    self.ingest.forget(partition)
                else:
                    log.info("ingest partition %s restored at offsets %s", partition, found[0])
            self.restored_ingest.add(partition)

    def profile_for(self, model_id: str) -> dict[str, Any] | None:
        model = self.registry.get(model_id)
        return None if model is None else model.profile

    async def restore_aggregator(self, partition: int) -> Aggregator:
        found = await asyncio.to_thread(self.checkpoints.load, "aggregate", partition)
        db = self.settings.clickhouse_database
        if found is None:
            aggregator = Aggregator(self.spec_for, profile_for=self.profile_for, database=db,
                                    max_versions=self.settings.max_versions_per_model,
                                    max_segment_values=self.settings.max_segment_values)
        else:
            try:
                aggregator = Aggregator.restore(found[1], self.spec_for, self.profile_for, db,
                                                self.settings.max_versions_per_model,
                                                self.settings.max_segment_values)
            except StateDecodeError as exc:  # never executed: treated as absent, rebuilt from Kafka
                log.warning("aggregate partition %s: %s; starting it afresh from Kafka", partition, exc)
                found = None
                aggregator = Aggregator(self.spec_for, profile_for=self.profile_for, database=db,
                                        max_versions=self.settings.max_versions_per_model,
                                        max_segment_values=self.settings.max_segment_values)
        if found is not None:
            if self.fresh_broker or not self._of_epoch(found[0]):
                aggregator.next_offset = 0
            log.info("aggregate partition %s restored at offset %s", partition, aggregator.next_offset)
        self.aggregators[partition] = aggregator
        return aggregator

    async def _ack_held(self, stage: str) -> None:
        stream = self.streams[stage]
        for event in self.held[stage]:
            await stream.ack(event)
        self.held[stage].clear()
        self.last_checkpoint[stage] = time.monotonic()

    async def ingest_batch(self, records: list[RawRecord]) -> None:
        """One batch from the ingest consumer (called with the ingest lock held)."""
        async with self.fatal_on_error("ingest"):
            await self.restore_ingest({r.partition for r in records})
            self.ingest.sources = self.ingest_consumer.partitions
            await self.handle_ingest(records)
            if self._checkpoint_due("ingest"):
                await self.checkpoint_ingest_locked()

    def forget_ingest(self, partitions: set[int]) -> None:
        """Drop the state of input partitions this worker lost in a rebalance (checkpointed just before)."""
        for partition in partitions:
            self.ingest.forget(partition)
            self.restored_ingest.discard(partition)
            self.touched["ingest"].discard(partition)

    async def checkpoint_ingest(self) -> None:
        async with self.locks["ingest"]:
            await self.checkpoint_ingest_locked()

    async def checkpoint_ingest_locked(self) -> None:
        """Persist join state and offsets of the partitions read since the last checkpoint, then commit."""
        self.last_checkpoint["ingest"] = time.monotonic()
        if not self.touched["ingest"]:
            return
        await self.app.producer.flush()  # internal batches and dead letters are in Kafka before we commit
        await self.checkpoints.save("ingest", [(p, *self._with_epoch(*self.ingest.checkpoint(p)))
                                               for p in sorted(self.touched["ingest"])])
        self.touched["ingest"].clear()
        self.ingest_records_since_checkpoint = 0
        await self.ingest_consumer.commit()

    async def checkpoint_aggregate(self) -> None:
        """Persist the windows of the partitions read since the last checkpoint, then ack them."""
        if not self.held["aggregate"]:
            self.last_checkpoint["aggregate"] = time.monotonic()
            return
        await self.checkpoints.save("aggregate", [
            (p, *self._with_epoch({"outcomes": self.aggregators[p].next_offset}, self.aggregators[p].snapshot()))
            for p in sorted(self.touched["aggregate"])])
        self.touched["aggregate"].clear()
        await self._ack_held("aggregate")

    async def handle_ingest(self, records: list[RawRecord]) -> None:
        self.last_event_monotonic = read_at = time.monotonic()
        result = self.ingest.process(records)
        self.touched["ingest"].update(r.partition for r in records)
        self.ingest_records_since_checkpoint += len(records)
        self.consumed += len(records)
        for topic, count in Counter(r.topic for r in records).items():
            self.telemetry.records.labels(topic).inc(count)
        for model in result.registered:
            await self.publish_model(model)
        outcome_rows: list[tuple[Any, ...]] = []
        poisoned: list[tuple[Mapping[str, Any], str, int, str]] = []
        for (model_id, _), whole in result.batches.items():
            try:  # the per-record barrier of serialisation and row building: split only on failure
                parts = [([orjson.dumps(c) for c in split_batch(whole)], outcome_rows_of(whole))]
            except Exception:
                parts = _serialised_items(whole, poisoned)
            for chunks, rows in parts:
                for chunk in chunks:
                    await self.topics["outcomes"].send(key=model_id.encode(), value=chunk)
                outcome_rows.extend(rows)
        if poisoned:
            result.dead_letters.extend(self._item_letters(poisoned))
        if outcome_rows:
            self.telemetry.outcomes.inc(len(outcome_rows))
            await self.sink.submit("outcomes", OUTCOME_COLUMNS, outcome_rows, since=read_at)
        if result.dead_letters:
            await self.publish_dead_letters(result.dead_letters, since=read_at)
        self.telemetry.join_waiting.set(sum(len(j) for j in self.ingest.joins.values()))

    def too_late_by_model(self) -> dict[str, int]:
        """Items dropped as too late (their window evicted), per model, since the state began."""
        totals: Counter[str] = Counter()
        for aggregator in self.aggregators.values():
            totals.update(aggregator.store.too_late_by_model)
        return dict(totals)

    def count_too_late_and_folded(self) -> None:
        """Telemetry of items dropped as too late and of folded versions and segment values; one log line per
        model and window length while items keep arriving too late."""
        now = time.monotonic()
        for model_id, total in self.too_late_by_model().items():
            self.telemetry.advance(self.telemetry.too_late_by_model.labels(model_id), total)
            logged, at = self.too_late_logged.get(model_id, (0, -1e18))
            model = self.registry.get(model_id)
            every = model.spec.monitor.window_seconds if model is not None else 60
            if total > logged and now - at >= every:
                log.warning("model %s: %d items dropped as too late since the last report (%d in all): their "
                            "windows were evicted, older than the maximum label delay behind the newest events",
                            model_id, total - logged, total)
                self.too_late_logged[model_id] = (total, now)
        for kind, total in (("version", sum(a.versions.folded for a in self.aggregators.values())),
                            ("segment_value", sum(a.segment_values.folded for a in self.aggregators.values()))):
            self.telemetry.advance(self.telemetry.folded.labels(kind), total)

    def _item_letters(self, items: list[tuple[Mapping[str, Any], str, int, str]]) -> list[DeadLetter]:
        topics = (self.settings.topic_predictions, self.settings.topic_ground_truth)
        return [item_dead_letter(batch, side, i, topics, error, self.settings.limits)
                for batch, side, i, error in items]

    async def publish_dead_letters(self, letters: list[DeadLetter], since: float | None = None) -> None:
        rows = []
        for letter in letters:
            self.telemetry.dead_letters.labels(letter.reason).inc()
            await self.topics["dead_letters"].send(key=letter.key.encode() if letter.key else None,
                                                   value=letter.model_dump_json().encode())
            rows.append((letter.topic, letter.partition, letter.offset, letter.key, letter.raw, letter.reason,
                         letter.error, letter.time))
        await self.sink.submit("dead_letters", DEAD_LETTER_COLUMNS, rows, since=since)

    async def publish_model(self, model: RegisteredModel) -> None:
        key, value = encode(model)
        await self.topics["models"].send(key=key, value=value)
        await self.sink.submit("models", MODEL_COLUMNS, [model_row(model)])

    async def expire_joins(self) -> None:
        """Expire waiting predictions and labels older than the maximum label delay; write join statistics.

        Assigned partitions are restored first: after a restart with nothing left to read, a partition would
        otherwise never be restored, so its waiting items would never expire and its statistics never be written.
        """
        async with self.locks["ingest"]:  # a rebalance holds it while it changes the assignment
            await self.restore_ingest(self.ingest_consumer.assigned_partitions())
        now_ms = int(time.time() * 1000)
        rows: list[tuple[Any, ...]] = []
        now = dt.datetime.now(dt.UTC)
        version = time.time_ns()
        for partition, join in self.ingest.joins.items():
            self.ingest.expire(partition, now_ms)
            stats = dict(asdict(join.stats), waiting_predictions=join.n_waiting_predictions,
                         waiting_labels=join.n_waiting_labels)
            rows.extend((partition, name, float(value), version, now) for name, value in stats.items())
        if rows:
            await self.sink.submit("join_stats", JOIN_STATS_COLUMNS, rows)

    async def publish_alerts(self, alerts: list[AlertEvent]) -> None:
        """Alert events to the alerts topic (keyed by model, so one model's alerts stay ordered), ClickHouse
        and the webhook and Alertmanager, if configured (both only enqueue)."""
        rows = []
        for alert in alerts:
            self.telemetry.alerts.labels(alert.state, alert.severity).inc()
            log.warning("alert %s: %s", alert.state, alert.message)
            await self.topics["alerts"].send(key=alert.model_id.encode(), value=alert.model_dump_json().encode())
            rows.append(tuple(getattr(alert, c) for c in ALERT_COLUMNS))
            if self.webhook is not None:
                self.webhook.submit(alert)
            if self.alertmanager is not None:
                self.alertmanager.submit(alert)
        self.alerts_published.extend(alerts)
        await self.sink.submit("alerts", ALERT_COLUMNS, rows)

    def drained(self) -> bool:
        """Whether nothing waits to be read by either stage: only then may idle windows close by the wall clock.
        Right after a (re)start nothing was read *yet*, which is not idleness: closing the restored windows then,
        before the backlog is read, would leave that backlog out of their drift and quality results."""
        if not self.ingest_consumer.drained:
            return False
        consumer = self.app.consumer
        topic = self.settings.topic_outcomes
        for partition, aggregator in self.aggregators.items():
            high = consumer.highwater(TP(topic, partition))
            if high is None or aggregator.next_offset < high:
                return False
        return True

    async def flush_windows(self, force_idle: bool = False, close_all: bool = False) -> int:
        idle = force_idle or (time.monotonic() - self.last_event_monotonic > self.settings.idle_close_seconds
                              and self.drained())
        rows: list[tuple[Any, ...]] = []
        reports: list[WindowReport] = []
        detections: list[tuple[Any, ...]] = []
        comparisons: list[tuple[Any, ...]] = []
        async with self.locks["aggregate"]:
            self.silences.apply_to(self.monitor_trackers())  # also monitors created since the last silence
            for aggregator in self.aggregators.values():
                reports.extend(aggregator.tick(int(time.time() * 1000), idle, close_all))
                rows.extend(aggregator.window_rows())
                detections.extend(aggregator.take_detections())
                comparisons.extend(aggregator.comparison_rows())
        self.telemetry.windows_open.set(sum(len(a.store.windows) for a in self.aggregators.values()))
        closed_at = dt.datetime.now(dt.UTC)
        for report in reports:
            if report.closes_window:
                self.telemetry.window_close_lag.observe(max(0.0, (closed_at - report.window_end).total_seconds()))
        version = time.time_ns()
        tables = {
            "window_metrics": (WINDOW_METRIC_COLUMNS, rows),
            "drift_events": (DRIFT_EVENT_COLUMNS, detections),
            "feature_drift": ((*FEATURE_DRIFT_COLUMNS, "version"),
                              [(*r, version) for report in reports for r in report.feature_drift]),
            "data_quality": ((*DATA_QUALITY_COLUMNS, "version"),
                             [(*r, version) for report in reports for r in report.data_quality]),
            "model_comparisons": (COMPARISON_COLUMNS, comparisons),
        }
        for table, (columns, table_rows) in tables.items():
            if table_rows:
                await self.sink.submit(table, columns, table_rows)
                self.telemetry.rows_written.labels(table).inc(len(table_rows))
        for row in detections:
            self.telemetry.drift_events.labels(row[2], row[3]).inc()
        alerts = [alert for report in reports for alert in report.alerts]
        if alerts:
            await self.publish_alerts(alerts)
        self.telemetry.sink_pending.set(self.sink.pending)
        self.telemetry.advance(self.telemetry.sink_failures, self.sink.stats.failures)
        self.telemetry.set_consumer_lag(self.ingest_consumer.lag().items())
        return len(rows)


def _serialised_items(batch: dict[str, Any], poisoned: list[tuple[Mapping[str, Any], str, int, str]],
                      ) -> list[tuple[list[bytes], list[tuple[Any, ...]]]]:
    """Serialise a batch record whose whole serialisation failed item by item (the barrier's split); the
    items that fail go to ``poisoned``."""
    def run(items: Sequence[tuple[str, int]]) -> tuple[list[bytes], list[tuple[Any, ...]]]:
        part = select_items(batch, items)
        return [orjson.dumps(c) for c in split_batch(part)], outcome_rows_of(part)

    return isolate(batch_items(batch), run,
                   lambda item, exc: poisoned.append((batch, *item, f"serialisation: {describe(exc)}")))


def exit_soon(reason: str, seconds: float) -> None:
    """Make sure the process ends with code 70 within ``seconds`` of a stage failure, even if the orderly
    shutdown hangs (Faust keeps a non-daemon thread that can block the interpreter's exit)."""

    def hard_exit() -> None:
        time.sleep(seconds)
        fatal_exit(f"{reason}; the worker did not stop within {seconds:g} s")

    threading.Thread(target=hard_exit, name="driftwarden-fatal-exit", daemon=True).start()


_fatal_lock = threading.Lock()


def fatal_exit(reason: str) -> None:
    """Say ``reason`` in one line on stderr and end the process at once with code 70. Safe after a stage
    failure: the failed batch was never checkpointed, so a restart reads it again."""
    with _fatal_lock:  # the watchdog and the orderly path: only one of them speaks
        sys.stderr.write(f"error: {reason}. Restarting resumes from the last checkpoint\n")
        sys.stderr.flush()
        os._exit(EXIT_STAGE_FAILURE)


EXIT_STAGE_FAILURE = 70  # EX_SOFTWARE


__all__ = ["EXIT_STAGE_FAILURE", "Runtime", "exit_soon", "fatal_exit", "infer_spec"]
