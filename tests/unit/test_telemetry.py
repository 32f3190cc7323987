"""`/metrics` follows Prometheus' naming rules: counters `_total`, durations `_seconds` histograms, build info."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from stream import __version__
from stream.runtime.telemetry import Telemetry


def test_every_metric_family_follows_the_naming_rules() -> None:
    families = list(Telemetry().registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("driftwarden_"), family.name
        if family.type == "counter":  # the client keeps the family name without the suffix it exposes
            assert not family.name.endswith("_total")
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if family.type == "gauge":
            assert not re.search(r"_(total|count|sum|bucket)$", family.name), family.name
    names = {(f.name, f.type) for f in families}
    assert {("driftwarden_ingest_to_clickhouse_seconds", "histogram"),
            ("driftwarden_window_close_lag_seconds", "histogram"), ("driftwarden_consumer_lag_records", "gauge"),
            ("driftwarden_build", "info"), ("driftwarden_too_late_items", "counter")} <= names


def test_exposition_has_totals_histogram_buckets_and_build_info() -> None:
    t = Telemetry()
    t.records.labels("predictions").inc(3)
    t.window_close_lag.observe(0.7)
    t.ingest_latency.labels("outcomes").observe(0.2)
    t.set_consumer_lag([("predictions", 12), ("ground_truth", 0)])
    text = generate_latest(t.registry).decode()
    assert 'driftwarden_records_total{topic="predictions"} 3.0' in text
    assert 'driftwarden_window_close_lag_seconds_bucket{le="1.0"} 1.0' in text
    assert 'driftwarden_window_close_lag_seconds_bucket{le="0.5"} 0.0' in text
    assert 'driftwarden_ingest_to_clickhouse_seconds_count{table="outcomes"} 1.0' in text
    assert 'driftwarden_consumer_lag_records{topic="predictions"} 12.0' in text
    assert re.search(rf'driftwarden_build_info\{{.*version="{re.escape(__version__)}".*\}} 1.0', text)
    # no cumulative count is exposed as a gauge any more
    gauges = re.findall(r"# TYPE (\S+) gauge", text)
    assert not [g for g in gauges if g.endswith(("_items", "_failures"))]


def test_advance_brings_a_counter_up_to_a_running_total_and_never_down() -> None:
    t = Telemetry()
    t.advance(t.too_late, 4)
    t.advance(t.too_late, 4)
    t.advance(t.too_late, 7)
    t.advance(t.too_late, 2)  # a smaller total (another process's count) never lowers a counter
    text = generate_latest(t.registry).decode()
    assert "driftwarden_too_late_items_total 7.0" in text
