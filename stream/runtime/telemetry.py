"""Prometheus metrics of one worker (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Telemetry:
    """Counters and gauges in a registry of their own (no global state, so tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter("driftwarden_records_total", "Kafka records consumed", ["topic"], registry=r)
        self.dead_letters = Counter("driftwarden_dead_letters_total", "Records dead-lettered", ["reason"],
                                    registry=r)
        self.outcomes = Counter("driftwarden_outcomes_total", "Predictions joined with their label", registry=r)
        self.replayed = Gauge("driftwarden_replayed_items", "Items dropped as replays by the aggregator",
                              registry=r)
        self.too_late = Gauge("driftwarden_too_late_items", "Items for windows already evicted (dropped, counted)",
                              registry=r)
        self.join_waiting = Gauge("driftwarden_join_waiting", "Predictions and labels waiting for the other side",
                                  registry=r)
        self.windows_open = Gauge("driftwarden_windows_open", "Windows held in memory", registry=r)
        self.rows_written = Counter("driftwarden_rows_written_total", "Rows inserted into ClickHouse", ["table"],
                                    registry=r)
        self.sink_pending = Gauge("driftwarden_sink_pending_batches", "Batches queued for ClickHouse", registry=r)
        self.sink_failures = Gauge("driftwarden_sink_failures", "Failed ClickHouse inserts (retried)", registry=r)
        self.drift_events = Counter("driftwarden_drift_events_total", "Drift detector firings",
                                    ["detector", "signal"], registry=r)
        self.alerts = Counter("driftwarden_alerts_total", "Alert events", ["state", "severity"], registry=r)
