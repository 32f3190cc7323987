"""Prometheus metrics of one worker (served on ``/metrics``), named by Prometheus' rules.

Counters end in ``_total``; durations are in seconds (``_seconds``) and kept as histograms; gauges are what is
held or waiting right now; ``driftwarden_build_info`` carries the version as labels with the value 1.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from stream import __version__

# From 50 ms (one sink flush) to 10 minutes (a window held back by its allowed lateness).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Telemetry:
    """Counters, gauges and histograms in a registry of their own (no global state: tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.build = Info("driftwarden_build", "Driftwarden version and Python runtime", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self.records = Counter("driftwarden_records_total", "Kafka records consumed", ["topic"], registry=r)
        self.dead_letters = Counter("driftwarden_dead_letters_total", "Records dead-lettered", ["reason"],
                                    registry=r)
        self.outcomes = Counter("driftwarden_outcomes_total", "Predictions joined with their label", registry=r)
        self.replayed = Counter("driftwarden_replayed_items_total", "Items dropped as replays by the aggregator",
                                registry=r)
        self.too_late = Counter("driftwarden_too_late_items_total",
                                "Items for windows already evicted (dropped, counted)", registry=r)
        self.too_late_by_model = Counter("driftwarden_model_too_late_items_total",
                                         "Items for windows already evicted, per model", ["model"], registry=r)
        self.folded = Counter("driftwarden_folded_items_total",
                              "Items whose version or segment value was beyond its limit (counted as __other__)",
                              ["kind"], registry=r)
        self.join_waiting = Gauge("driftwarden_join_waiting", "Predictions and labels waiting for the other side",
                                  registry=r)
        self.windows_open = Gauge("driftwarden_windows_open", "Windows held in memory", registry=r)
        self.rows_written = Counter("driftwarden_rows_written_total", "Rows inserted into ClickHouse", ["table"],
                                    registry=r)
        self.sink_pending = Gauge("driftwarden_sink_pending_batches", "Batches queued for ClickHouse", registry=r)
        self.sink_failures = Counter("driftwarden_sink_failures_total", "Failed ClickHouse inserts (retried)",
                                     registry=r)
        self.drift_events = Counter("driftwarden_drift_events_total", "Drift detector firings",
                                    ["detector", "signal"], registry=r)
        self.alerts = Counter("driftwarden_alerts_total", "Alert events", ["state", "severity"], registry=r)
        self.ingest_latency = Histogram(
            "driftwarden_ingest_to_clickhouse_seconds",
            "From a batch read off Kafka to its rows written to ClickHouse", ["table"], buckets=LATENCY_BUCKETS,
            registry=r)
        self.window_close_lag = Histogram(
            "driftwarden_window_close_lag_seconds", "Wall-clock time between a window's end and its close",
            buckets=LATENCY_BUCKETS, registry=r)
        self.consumer_lag = Gauge("driftwarden_consumer_lag_records",
                                  "Records not yet read by the ingest consumer (high watermark - position)",
                                  ["topic"], registry=r)
        self._totals: dict[int, float] = {}

    def advance(self, counter: Counter, total: float) -> None:
        """Bring ``counter`` up to a running ``total`` kept elsewhere (such as a stage's checkpointed count)."""
        last = self._totals.get(id(counter), 0.0)
        if total > last:
            counter.inc(total - last)
            self._totals[id(counter)] = total

    def set_consumer_lag(self, lag_by_topic: Iterable[tuple[str, int]]) -> None:
        for topic, lag in lag_by_topic:
            self.consumer_lag.labels(topic).set(lag)
